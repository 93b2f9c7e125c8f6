"""The L2 constructs: one plan step as one Terraform stack.

`PhaseStack` lays a step out as gate(before) → server params (when the servers move) →
one client config per moved group → gate(after). Props are flat frozen dataclasses in
Consul's and the planner's words, checked when they are built; the rule that spans
constructs (no two roles side by side in phases that cannot gossip) is a node validation
that fails synth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..expectations import skippable_nodes
from ..keys import GossipKey, KeyShown
from ..phases import why_incompatible
from ..planner import SERVERS, Move, Plan, Step, StepKind, prove
from ..spec import Rollout, ServerType
from ._cdk import Construct, IValidation, LocalBackend, TerraformStack, implements
from .bindings import ClientConfigResource, PhaseGateResource, ServerParamsResource, TsegossipProvider, resources_in
from .props import (
    GossipClientConfigProps,
    GossipServerParamsProps,
    PhaseGateProps,
    PropsError,
    _fail,
    _fingerprint,
    expectations,
)


# ---- constructs ----------------------------------------------------------------------------

def _checked(owner: str, id: str, props: Any, allowed: type) -> Any:
    if not isinstance(props, allowed):
        raise PropsError(f"{owner} {id}: props is a {type(props).__name__}; allowed: {allowed.__name__}")
    return props


class GossipServerParams(ServerParamsResource):
    """The servers' gossip parameters for one step (TSE console or self-managed fragments)."""

    def __init__(self, scope: Construct, id: str, props: GossipServerParamsProps, *,
                 depends_on: Sequence[Any] | None = None) -> None:
        self.props = _checked("GossipServerParams", id, props, GossipServerParamsProps)
        super().__init__(scope, id, props.attributes(), depends_on=depends_on)


class GossipClientConfig(ClientConfigResource):
    """One client group's gossip fragment for one step: a single resource covering all its nodes."""

    def __init__(self, scope: Construct, id: str, props: GossipClientConfigProps, *,
                 depends_on: Sequence[Any] | None = None) -> None:
        self.props = _checked("GossipClientConfig", id, props, GossipClientConfigProps)
        super().__init__(scope, id, props.attributes(), depends_on=depends_on)


class PhaseGate(PhaseGateResource):
    """Before/after expectations of a step: each node's phase, all alive."""

    def __init__(self, scope: Construct, id: str, props: PhaseGateProps, *,
                 depends_on: Sequence[Any] | None = None) -> None:
        self.props = _checked("PhaseGate", id, props, PhaseGateProps)
        super().__init__(scope, id, props.attributes(), depends_on=depends_on)


def stack_basics(stack: TerraformStack, state_dir: str | None, previous: TerraformStack | None = None) -> str | None:
    """What every tsegossip stack starts with: the provider, the state file (<state_dir>/<id>.tfstate when given,
    else Terraform's default), the dependency on the stack before it. Returns that stack's id (None: the first)."""
    TsegossipProvider(stack)
    if state_dir:
        LocalBackend(stack, path=f"{state_dir.rstrip('/')}/{stack.node.id}.tfstate")
    if previous is None:
        return None
    stack.add_dependency(previous)
    return previous.node.id


def common_attributes(r: Rollout, stack: str, key_fingerprint: str, **extra: Any) -> dict[str, Any]:
    """The props every resource of a stack shares: rollout, stack, key variable and fingerprint, where to observe."""
    return dict(
        rollout=r.name, stack=stack, key_env=r.key_env, key_fingerprint=key_fingerprint,
        http_addr=r.servers.http_addr, token_env=r.consul.token_env, cacert_env=r.consul.cacert_env,
        client_cert_env=r.consul.client_cert_env, client_key_env=r.consul.client_key_env, **extra,
    )


@dataclass(frozen=True, kw_only=True)
class PhaseStackProps:
    """One planned step, the rollout it belongs to, and the key's fingerprint (never the key)."""

    rollout: Rollout
    step: Step
    key_fingerprint: str
    previous: PhaseStack | None = None
    """default: none; the stack this one depends on (the previous step)."""
    state_dir: str | None = None
    """default: Terraform's local backend in the working directory (terraform.<stack>.tfstate);
    else the state file is <state_dir>/<stack>.tfstate, so two rollouts never share state."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if self.state_dir is not None and (not isinstance(self.state_dir, str) or not self.state_dir.strip()):
            raise _fail(owner, "state_dir", f"{self.state_dir!r} given; allowed: a directory path or None")
        if not isinstance(self.rollout, Rollout):
            raise _fail(owner, "rollout", f"{type(self.rollout).__name__} given; allowed: a spec.Rollout")
        if not isinstance(self.step, Step):
            raise _fail(owner, "step", f"{type(self.step).__name__} given; allowed: a planner.Step")
        _fingerprint(owner, self.key_fingerprint)
        if self.previous is not None and not isinstance(self.previous, PhaseStack):
            raise _fail(owner, "previous", f"{type(self.previous).__name__} given; allowed: a PhaseStack or None")

    @classmethod
    def for_step(cls, plan: Plan, step: Step, key: GossipKey | KeyShown, previous: PhaseStack | None = None,
                 state_dir: str | None = None) -> PhaseStackProps:
        return cls(rollout=plan.rollout, step=step, key_fingerprint=key.fingerprint, previous=previous,
                   state_dir=state_dir)


@implements(IValidation)
class _NoSplitRule:
    """Fails synth when the constructs in a stack would run incompatible phases side by side."""

    def __init__(self, stack: PhaseStack) -> None:
        self._stack = stack

    def validate(self) -> list[str]:
        return self._stack.problems()


class PhaseStack(TerraformStack):
    """One plan step as one Terraform stack; the id is the planner's stack id."""

    def __init__(self, scope: Construct, id: str, props: PhaseStackProps) -> None:
        if not isinstance(props, PhaseStackProps):
            raise PropsError(f"PhaseStack {id}: props is a {type(props).__name__}; allowed: PhaseStackProps")
        if id != props.step.stack:
            raise PropsError(f"PhaseStack id {id!r} is not the planner's stack id {props.step.stack!r}; "
                             "stack ids are the plan's, so deploy commands and state stay stable")
        super().__init__(scope, id)
        self.props = props
        r, step = props.rollout, props.step
        previous = stack_basics(self, props.state_dir, props.previous)

        common = common_attributes(r, id, props.key_fingerprint, previous_stack=previous)
        expected_before, expected_after, addresses = expectations(r, step)
        # The before-gate also accounts for every member of the pool: an alive member the spec does not
        # list must be safe with the phases that coexist during this step (tsegossip/accounting.py).
        fixed = {u.phase for u in r.unmanaged if u.phase is not None}
        may_be_down = skippable_nodes(r)
        self.gate_before = PhaseGate(self, "gate-before", PhaseGateProps(
            **common, when="before", expected=expected_before,
            addresses={**addresses, **{u.name: u.http_addr for u in r.unmanaged if u.http_addr}},
            present=tuple(sorted(set(step.before.joined().values()) | fixed, key=lambda p: p.rank)),
            coexisting=step.proof.coexisting, servers_unlisted=r.servers.type is ServerType.TSE,
            unmanaged={u.name: u.label for u in r.unmanaged}, may_be_down=may_be_down))
        upstream: list[Any] = [self.gate_before]
        self.server_params: GossipServerParams | None = None
        move = step.move_of(SERVERS)
        if move is not None:
            s = r.servers
            tse = s.type is ServerType.TSE
            self.server_params = GossipServerParams(self, "servers", GossipServerParamsProps(
                **common, server_type=s.type.value, phase=move.after, from_phase=move.before,
                allow_jump=step.kind is StepKind.SERVERS and move.is_jump,
                instance_id=s.instance_id, region=s.region,
                nodes={n.name: n.http_addr for n in s.nodes}, config_path=s.config_path,
                restart_command=s.restart_command, delivery=s.delivery, down_nodes=s.down_nodes,
                timeout_seconds=r.timeouts.tse_seconds if tse else r.timeouts.batch_seconds,
                poll_seconds=r.timeouts.poll_seconds), depends_on=upstream)
            upstream = [self.server_params]
        self.client_configs: dict[str, GossipClientConfig] = {}
        sequential = r.client_groups_restart == "sequential"
        for m in step.moves:
            if m.role == SERVERS:
                continue
            g = r.group(m.role)
            if sequential and self.client_configs:
                # Terraform applies independent resources at once; the previous group is a dependency here
                upstream = [list(self.client_configs.values())[-1]]
            self.client_configs[g.name] = GossipClientConfig(self, f"client-{g.name}", GossipClientConfigProps(
                **common, group=g.name, phase=m.after, from_phase=m.before or g.phase, joining=m.before is None,
                nodes={n.name: n.http_addr for n in g.nodes}, config_path=g.config_path,
                restart_command=g.restart_command, batch_size=g.batch_size, delivery=g.delivery,
                down_nodes=g.down_nodes,
                timeout_seconds=r.timeouts.batch_seconds, poll_seconds=r.timeouts.poll_seconds),
                depends_on=upstream)
        movers = [*([self.server_params] if self.server_params else []), *self.client_configs.values()]
        self.gate_after = PhaseGate(self, "gate-after", PhaseGateProps(
            **common, when="after", expected=expected_after, addresses=addresses, may_be_down=may_be_down),
            depends_on=movers or upstream)
        self.node.add_validation(_NoSplitRule(self))

    def problems(self) -> list[str]:
        """Every pair of roles that could not gossip while this stack deploys (the node validation).

        The stack's resources, not the plan, say what moves: a resource added by hand is checked too.
        The pairwise check itself is the planner's `prove`, so plan and synth cannot disagree.
        """
        before = self.props.step.before
        out: list[str] = []
        moves: list[Move] = []
        jump_ok = False
        movers = [c for c in resources_in(self) if isinstance(c, (GossipServerParams, GossipClientConfig))]
        for c in movers:
            p = c.props
            role = SERVERS if isinstance(c, GossipServerParams) else p.group
            if isinstance(c, GossipClientConfig) and p.joining:
                moves.append(Move(role, None, p.phase, 0))
                continue
            known = before.phase_of(role) if role in before.roles() else None
            if known is not None and known is not p.from_phase:
                out.append(f"{c.node.id}: moves {role} from {p.from_phase}, but before this step {role} are {known}")
            moves.append(Move(role, p.from_phase, p.phase, 0))
            if isinstance(c, GossipServerParams) and p.allow_jump:
                jump_ok = True
        jump_ok = jump_ok and len(movers) == 1
        unknown = tuple((m.role, None) for m in moves if m.role not in before.roles())
        proof = prove(replace(before, clients=before.clients + unknown), tuple(moves))
        for c in proof.splits:
            if c.role_a == c.role_b == SERVERS and jump_ok:
                continue
            out.append(f"stack {self.node.id} puts {c.role_a}@{c.phase_a} beside {c.role_b}@{c.phase_b}, which cannot "
                       f"gossip: {why_incompatible(c.phase_a, c.phase_b)}; allowed: equal or adjacent phases "
                       "(only the direct strategy's servers-only step may split the servers transiently)")
        return out
