"""One stack per stage of a key rotation (tsegossip.rotation): gate → keyring change or fragments → gate.

install, use and remove are one `tsegossip_keyring` each (the call, and the keyring conditions that make
the stage start and end, by fingerprint); configs is the servers' and every group's fragments delivered
again with the new key and nothing restarted (`rewrite`). The phase gates around each are the phase
steps' own: every listed node alive in the one phase, every member accounted for, and the key each
member encrypts with before / after the stage held by every member.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..rotation import (KeyName, RotationPlan, RotationStage, StageKind, keyring_rejoin_stack_id,
                        keyring_repair_stack_id, rejoin_calls)
from ..expectations import SERVERS, addresses_by_node
from ..spec import Rollout, ServerType
from ._cdk import Construct, TerraformStack
from .bindings import KeyringResource
from .gossip import (GossipClientConfig, GossipServerParams, PhaseGate, common_attributes, skippable_nodes,
                     stack_basics)
from .props import GossipClientConfigProps, GossipServerParamsProps, PhaseGateProps, PropsError, _fail, _fingerprint


@dataclass(frozen=True, kw_only=True)
class RotationStackProps:
    """A rotation's plan and one of its stages (never a key: fingerprints only)."""

    plan: RotationPlan
    stage: RotationStage
    previous: RotationStack | None = None
    """default: none; the stack this one depends on (the previous stage)."""
    state_dir: str | None = None
    """default: Terraform's local backend in the working directory; else <state_dir>/<stack>.tfstate."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.plan, RotationPlan):
            raise _fail(owner, "plan", f"{type(self.plan).__name__} given; allowed: a rotation.RotationPlan")
        if self.stage not in self.plan.stages + self.plan.undo:
            raise _fail(owner, "stage", f"{getattr(self.stage, 'stack', self.stage)!r} is not a stage of this plan; "
                                        "allowed: " + ", ".join(s.stack for s in self.plan.stages + self.plan.undo))
        for which in (KeyName.OLD, KeyName.NEW):
            _fingerprint(owner, self.plan.fingerprint(which))


def _env(r: Rollout, which: KeyName) -> str:
    return r.key_env if which is KeyName.OLD else (r.rotate_to_env or "")


class RotationStack(TerraformStack):
    """One rotation stage as one Terraform stack; the id is the rotation plan's stack id."""

    def __init__(self, scope: Construct, id: str, props: RotationStackProps) -> None:
        if not isinstance(props, RotationStackProps):
            raise PropsError(f"RotationStack {id}: props is a {type(props).__name__}; allowed: RotationStackProps")
        if id != props.stage.stack:
            raise PropsError(f"RotationStack id {id!r} is not the plan's stack id {props.stage.stack!r}")
        super().__init__(scope, id)
        self.props = props
        plan, stage, r = props.plan, props.stage, props.plan.rollout
        previous = stack_basics(self, props.state_dir, props.previous)
        fp = plan.fingerprint
        nodes = addresses_by_node(r)
        expected = {n: plan.phase for n in nodes}
        addresses = {**nodes, **{u.name: u.http_addr for u in r.unmanaged if u.http_addr}}

        def gate(when: str, sends: KeyName, **extra) -> PhaseGateProps:
            # the gate finds the key every member sends with at that moment in every keyring
            common = {**common_attributes(r, id, fp(sends), previous_stack=previous), "key_env": _env(r, sends)}
            return PhaseGateProps(**common, when=when, expected=expected, **extra)

        fixed = {u.phase for u in r.unmanaged if u.phase is not None}
        skip = skippable_nodes(r)  # down_nodes = skip: such a node may be down; it becomes a straggler
        # A keyring stage's resource lists the keyring before its call (its conditions include the key every
        # member sends with) and proves it after: the gates around it do not list it again (a keyring listing
        # is a serf query over the whole pool, ~0.2-0.5 s; BENCHMARKS.md "Key rotation").
        proven = None if stage.kind is StageKind.CONFIGS else "tsegossip_keyring.keyring"
        self.gate_before = PhaseGate(self, "gate-before", gate(
            "before", stage.before.primary, addresses=addresses,
            present=tuple(sorted({plan.phase} | fixed, key=lambda p: p.rank)), coexisting=(plan.phase,),
            servers_unlisted=r.servers.type is ServerType.TSE, unmanaged={u.name: u.label for u in r.unmanaged},
            may_be_down=skip, keyring_proven_by=proven))
        movers: list = []
        if stage.kind is StageKind.CONFIGS:
            # forward: the new key; undo3: back to the old one
            movers += _rewrites(self, r, id, fp(stage.key), _env(r, stage.key), plan, previous, [self.gate_before])
        else:
            k = stage.key
            self.keyring = KeyringResource(self, "keyring", {
                **_keyring_base(r, id, _env(r, k), fp(k)), "previous_stack": previous, "operation": _operation(stage),
                **_conditions(stage.requires, stage.verifies, fp), "members": nodes, "may_be_down": skip or None,
            }, depends_on=[self.gate_before])
            movers.append(self.keyring)
        self.gate_after = PhaseGate(self, "gate-after", gate("after", stage.after.primary, addresses=nodes,
                                                             may_be_down=skip, keyring_proven_by=proven),
                                    depends_on=movers)


def _keyring_base(r: Rollout, stack: str, key_env: str, fingerprint: str) -> dict:
    """A tsegossip_keyring's attributes every keyring change shares."""
    return {"rollout": r.name, "stack": stack, "key_env": key_env, "key_fingerprint": fingerprint,
            "http_addr": r.servers.http_addr, "token_env": r.consul.token_env, "cacert_env": r.consul.cacert_env,
            "client_cert_env": r.consul.client_cert_env, "client_key_env": r.consul.client_key_env,
            "timeout_seconds": r.timeouts.batch_seconds, "poll_seconds": r.timeouts.poll_seconds,
            "keyring_files": _keyring_files(r) or None}


def _keyring_files(r: Rollout) -> dict[str, str]:
    """Role -> {"delivery", "files": node -> <data_dir>/serf/local.keyring} for the roles with data_dir."""
    roles = [(SERVERS, r.servers)] if r.servers.type is not ServerType.TSE else []
    roles += [(g.name, g) for g in r.client_groups]
    out = {}
    for role, x in roles:
        if x.data_dir:
            files = {n.name: f"{x.data_dir.replace('{node}', n.name)}/serf/local.keyring" for n in x.nodes}
            out[role] = json.dumps({"delivery": x.delivery.to_doc(), "files": files}, sort_keys=True,
                                   separators=(",", ":"))
    return out


def _conditions(requires, verifies, fp) -> dict:
    return {"held_before": ",".join(fp(x) for x in requires.held_by_all) or None,
            "primary_before": fp(requires.primary_on_all) if requires.primary_on_all else None,
            "held_after": ",".join(fp(x) for x in verifies.held_by_all) or None,
            "primary_after": fp(verifies.primary_on_all) if verifies.primary_on_all else None,
            "absent_after": ",".join(fp(x) for x in verifies.held_by_none) or None}


def _rewrites(stack: TerraformStack, r: Rollout, id: str, fingerprint: str, key_env: str, plan: RotationPlan,
              previous: str | None, after: list, only: set[str] | None = None) -> list:
    """The configs stage's movers: the servers' and each group's fragments delivered again with the key in
    key_env, nothing restarted (`rewrite`). `only`: just these nodes (a rejoin's stragglers); roles without
    one of them get no resource."""
    common = {**common_attributes(r, id, fingerprint, previous_stack=previous), "key_env": key_env}
    keep = (lambda nodes: nodes) if only is None else (lambda nodes: [n for n in nodes if n.name in only])
    out = []
    s = r.servers
    tse = s.type is ServerType.TSE  # the console's save with the new key: TSE rolls its servers
    if only is None or keep(s.nodes):
        out.append(GossipServerParams(stack, "servers", GossipServerParamsProps(
            **common, server_type=s.type.value, phase=plan.phase, from_phase=plan.phase, rewrite=True,
            instance_id=s.instance_id, region=s.region,
            nodes={n.name: n.http_addr for n in keep(s.nodes)}, config_path=s.config_path,
            restart_command=s.restart_command, delivery=s.delivery, down_nodes=s.down_nodes,
            timeout_seconds=r.timeouts.tse_seconds if tse else r.timeouts.batch_seconds,
            poll_seconds=r.timeouts.poll_seconds), depends_on=after))
    for g in r.client_groups:
        if only is not None and not keep(g.nodes):
            continue
        out.append(GossipClientConfig(stack, f"client-{g.name}", GossipClientConfigProps(
            **common, group=g.name, phase=plan.phase, from_phase=plan.phase, rewrite=True,
            nodes={n.name: n.http_addr for n in keep(g.nodes)}, config_path=g.config_path,
            restart_command=g.restart_command, batch_size=g.batch_size, down_nodes=g.down_nodes,
            delivery=g.delivery, timeout_seconds=r.timeouts.batch_seconds,
            poll_seconds=r.timeouts.poll_seconds), depends_on=after))
    return out


def _operation(stage: RotationStage) -> str:
    """The keyring call of a stage; an undo of install is a remove (of the new key)."""
    if stage.undoes and stage.kind is StageKind.INSTALL:
        return "remove"
    return {StageKind.INSTALL: "install", StageKind.USE: "use", StageKind.REMOVE: "remove"}[stage.kind]


class KeyringRepairStack(TerraformStack):
    """A stale keyring put right through the keyring API: the key in key_env installed on every member and
    made every member's primary (POST, then PUT), no file deleted and nothing restarted. For agents whose
    serf/local.keyring holds an older set and so ignores `encrypt` in their config (Consul logs "keyring
    doesn't include key provided with -encrypt, using keyring"). Older keys stay installed: removing one is a
    rotation's `remove`, proven on its own."""

    def __init__(self, scope: Construct, rollout: Rollout, fingerprint: str, state_dir: str | None = None) -> None:
        _fingerprint("KeyringRepairStack", fingerprint)
        id = keyring_repair_stack_id(rollout, fingerprint)
        super().__init__(scope, id)
        r = rollout
        stack_basics(self, state_dir)
        base = {**_keyring_base(r, id, r.key_env, fingerprint), "members": addresses_by_node(r)}
        self.install = KeyringResource(self, "install", {**base, "operation": "install", "held_after": fingerprint})
        self.use = KeyringResource(self, "use", {**base, "operation": "use", "held_before": fingerprint,
                                                 "held_after": fingerprint, "primary_after": fingerprint},
                                   depends_on=[self.install])



class KeyringRejoinStack(TerraformStack):
    """Stragglers of a rotation brought back through the keyring API (rotation.rejoin_calls): the others send
    with the old key again until the stragglers, members again, hold the new one; then forward. Each call is
    one `tsegossip_keyring`, proven on the live keyring; then the stragglers' fragments are delivered with the
    new key (nothing restarted) and the after-gate checks every listed node alive with the new key."""

    def __init__(self, scope: Construct, plan: RotationPlan, stragglers: dict[str, str], old_removed: bool,
                 state_dir: str | None = None) -> None:
        r = plan.rollout
        nodes = addresses_by_node(r)
        unknown = sorted(set(stragglers) - set(nodes))
        if unknown or not stragglers:
            raise PropsError(f"KeyringRejoinStack: stragglers {unknown or '(none)'}: allowed: listed nodes of "
                             f"rollout {r.name} ({', '.join(sorted(nodes))})")
        id = keyring_rejoin_stack_id(r)
        super().__init__(scope, id)
        stack_basics(self, state_dir)
        fp = plan.fingerprint
        # every other node of a down_nodes = skip role may still be down: it stays a straggler for a later rejoin
        down = {**skippable_nodes(r), **stragglers}
        previous: list = []
        self.calls = []
        awaited = False
        for i, call in enumerate(rejoin_calls(old_removed), 1):
            c = KeyringResource(self, f"call-{i}-{call.operation}-{call.key}", {
                **_keyring_base(r, id, _env(r, call.key), fp(call.key)), "operation": call.operation,
                **_conditions(call.requires, call.verifies, fp), "members": nodes,
                "may_be_down": (down if not awaited else {n: x for n, x in down.items() if n not in stragglers})
                or None,
                "await_members": ",".join(sorted(stragglers)) if call.awaits else None,
            }, depends_on=previous)
            awaited = awaited or call.awaits
            self.calls.append(c)
            previous = [c]
        self.rewrites = _rewrites(self, r, id, fp(KeyName.NEW), _env(r, KeyName.NEW), plan, None, previous,
                                  only=set(stragglers))
        expected = {n: plan.phase for n in nodes}
        common = {**common_attributes(r, id, fp(KeyName.NEW)), "key_env": _env(r, KeyName.NEW)}
        still = {n: x for n, x in skippable_nodes(r).items() if n not in stragglers}
        self.gate_after = PhaseGate(self, "gate-after", PhaseGateProps(
            **common, when="after", expected=expected, addresses=nodes, may_be_down=still),
            depends_on=self.rewrites or previous)
