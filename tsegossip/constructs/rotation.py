"""One stack per stage of a key rotation (tsegossip.rotation): gate → keyring change or fragments → gate.

install, use and remove are one `tsegossip_keyring` each (the call, and the keyring conditions that make
the stage start and end, by fingerprint); configs is the servers' and every group's fragments delivered
again with the new key and nothing restarted (`rewrite`). The phase gates around each are the phase
steps' own: every listed node alive in the one phase, every member accounted for, and the key each
member encrypts with before / after the stage held by every member.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..rotation import KeyName, RotationPlan, RotationStage, StageKind, keyring_repair_stack_id
from ..spec import Rollout, ServerType
from ._cdk import Construct, TerraformStack
from .bindings import KeyringResource
from .gossip import GossipClientConfig, GossipServerParams, PhaseGate, common_attributes, stack_basics
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


def _nodes(r: Rollout) -> dict[str, str]:
    out = {n.name: n.http_addr for n in r.servers.nodes} if r.servers.type is not ServerType.TSE else {}
    for g in r.client_groups:
        out.update({n.name: n.http_addr for n in g.nodes})
    return out


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
        nodes = _nodes(r)
        expected = {n: plan.phase for n in nodes}
        addresses = {**nodes, **{u.name: u.http_addr for u in r.unmanaged if u.http_addr}}

        def gate(when: str, sends: KeyName, **extra) -> PhaseGateProps:
            # the gate finds the key every member sends with at that moment in every keyring
            common = {**common_attributes(r, id, fp(sends), previous_stack=previous), "key_env": _env(r, sends)}
            return PhaseGateProps(**common, when=when, expected=expected, **extra)

        fixed = {u.phase for u in r.unmanaged if u.phase is not None}
        self.gate_before = PhaseGate(self, "gate-before", gate(
            "before", stage.before.primary, addresses=addresses,
            present=tuple(sorted({plan.phase} | fixed, key=lambda p: p.rank)), coexisting=(plan.phase,),
            servers_unlisted=r.servers.type is ServerType.TSE, unmanaged={u.name: u.label for u in r.unmanaged}))
        movers: list = []
        if stage.kind is StageKind.CONFIGS:
            # forward: the new key; undo3: back to the old one
            common = {**common_attributes(r, id, fp(stage.key), previous_stack=previous),
                      "key_env": _env(r, stage.key)}
            s = r.servers
            tse = s.type is ServerType.TSE  # the console's save with the new key: TSE rolls its servers
            servers = GossipServerParams(self, "servers", GossipServerParamsProps(
                **common, server_type=s.type.value, phase=plan.phase, from_phase=plan.phase, rewrite=True,
                instance_id=s.instance_id, region=s.region,
                nodes={n.name: n.http_addr for n in s.nodes}, config_path=s.config_path,
                restart_command=s.restart_command, delivery=s.delivery,
                timeout_seconds=r.timeouts.tse_seconds if tse else r.timeouts.batch_seconds,
                poll_seconds=r.timeouts.poll_seconds), depends_on=[self.gate_before])
            movers.append(servers)
            for g in r.client_groups:
                movers.append(GossipClientConfig(self, f"client-{g.name}", GossipClientConfigProps(
                    **common, group=g.name, phase=plan.phase, from_phase=plan.phase, rewrite=True,
                    nodes={n.name: n.http_addr for n in g.nodes}, config_path=g.config_path,
                    restart_command=g.restart_command, batch_size=g.batch_size,
                    delivery=g.delivery, timeout_seconds=r.timeouts.batch_seconds,
                    poll_seconds=r.timeouts.poll_seconds), depends_on=[self.gate_before]))
        else:
            k = stage.key
            self.keyring = KeyringResource(self, "keyring", {
                "rollout": r.name, "stack": id, "previous_stack": previous, "operation": _operation(stage),
                "key_env": _env(r, k), "key_fingerprint": fp(k),
                "held_before": ",".join(fp(x) for x in stage.requires.held_by_all) or None,
                "primary_before": fp(stage.requires.primary_on_all) if stage.requires.primary_on_all else None,
                "held_after": ",".join(fp(x) for x in stage.verifies.held_by_all) or None,
                "primary_after": fp(stage.verifies.primary_on_all) if stage.verifies.primary_on_all else None,
                "absent_after": ",".join(fp(x) for x in stage.verifies.held_by_none) or None,
                "http_addr": r.servers.http_addr, "members": nodes,
                "token_env": r.consul.token_env, "cacert_env": r.consul.cacert_env,
                "client_cert_env": r.consul.client_cert_env, "client_key_env": r.consul.client_key_env,
                "timeout_seconds": r.timeouts.batch_seconds, "poll_seconds": r.timeouts.poll_seconds,
            }, depends_on=[self.gate_before])
            movers.append(self.keyring)
        self.gate_after = PhaseGate(self, "gate-after", gate("after", stage.after.primary, addresses=nodes),
                                    depends_on=movers)


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
        base = {"rollout": r.name, "stack": id, "key_env": r.key_env, "key_fingerprint": fingerprint,
                "http_addr": r.servers.http_addr, "members": _nodes(r),
                "token_env": r.consul.token_env, "cacert_env": r.consul.cacert_env,
                "client_cert_env": r.consul.client_cert_env, "client_key_env": r.consul.client_key_env,
                "timeout_seconds": r.timeouts.batch_seconds, "poll_seconds": r.timeouts.poll_seconds}
        self.install = KeyringResource(self, "install", {**base, "operation": "install", "held_after": fingerprint})
        self.use = KeyringResource(self, "use", {**base, "operation": "use", "held_before": fingerprint,
                                                 "held_after": fingerprint, "primary_after": fingerprint},
                                   depends_on=[self.install])

