"""A repair of stragglers as one Terraform stack: gate(before) → the stragglers' moves → gate(after).

The same resources as a plan step, on a subset of nodes: a server params / client config resource
per role and starting phase, listing only that role's stragglers, with allow_jump (each goes straight
to its role's phase; why that is safe: tsegossip/repairplan.py). The before-gate checks everyone else
where the planned state puts them and each straggler where its own API showed it when the repair was
planned (`repairing`; it need not be a member); the after-gate checks every listed node, stragglers
included, alive in the state's phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..expectations import SERVERS, addresses_by_node, phases_by_node
from ..keys import GossipKey, KeyShown
from ..repairplan import Repair
from ..spec import Rollout, ServerType
from ._cdk import Construct, TerraformStack
from .gossip import GossipClientConfig, GossipServerParams, PhaseGate, common_attributes, skippable_nodes, stack_basics
from .props import GossipClientConfigProps, GossipServerParamsProps, PhaseGateProps, PropsError, _fail, _fingerprint


@dataclass(frozen=True, kw_only=True)
class RepairStackProps:
    """The repair (from repairplan), its rollout, and the key's fingerprint (never the key)."""

    rollout: Rollout
    repair: Repair
    key_fingerprint: str
    state_dir: str | None = None
    """default: terraform.<stack>.tfstate in the working directory; else <state_dir>/<stack>.tfstate."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.rollout, Rollout):
            raise _fail(owner, "rollout", f"{type(self.rollout).__name__} given; allowed: a spec.Rollout")
        if not isinstance(self.repair, Repair):
            raise _fail(owner, "repair", f"{type(self.repair).__name__} given; allowed: a repairplan.Repair")
        _fingerprint(owner, self.key_fingerprint)

    @classmethod
    def of(cls, rollout: Rollout, repair: Repair, key: GossipKey | KeyShown, state_dir: str | None = None) -> RepairStackProps:
        return cls(rollout=rollout, repair=repair, key_fingerprint=key.fingerprint, state_dir=state_dir)


class RepairStack(TerraformStack):
    """One repair as one stack; the id is the repair's stack id (stable for the same stragglers)."""

    def __init__(self, scope: Construct, id: str, props: RepairStackProps) -> None:
        if not isinstance(props, RepairStackProps):
            raise PropsError(f"RepairStack {id}: props is a {type(props).__name__}; allowed: RepairStackProps")
        if id != props.repair.stack:
            raise PropsError(f"RepairStack id {id!r} is not the repair's stack id {props.repair.stack!r}")
        super().__init__(scope, id)
        self.props = props
        r, repair = props.rollout, props.repair
        stack_basics(self, props.state_dir)
        common = common_attributes(r, id, props.key_fingerprint)
        stragglers = repair.stragglers
        after = phases_by_node(r, repair.state)
        before = {n: p for n, p in after.items() if n not in stragglers}
        addresses = addresses_by_node(r)
        may_be_down = {n: role for n, role in skippable_nodes(r).items() if n not in stragglers}
        coexisting = repair.proof.coexisting
        self.gate_before = PhaseGate(self, "gate-before", PhaseGateProps(
            **common, when="before", expected=before,
            addresses={**addresses, **{u.name: u.http_addr for u in r.unmanaged if u.http_addr}},
            present=coexisting, coexisting=coexisting, servers_unlisted=r.servers.type is ServerType.TSE,
            unmanaged={u.name: u.label for u in r.unmanaged}, may_be_down=may_be_down, repairing=stragglers))
        upstream: list[Any] = [self.gate_before]
        movers: list[Any] = []
        for m in repair.moves:
            if m.role == SERVERS:
                s = r.servers
                res = GossipServerParams(self, m.resource, GossipServerParamsProps(
                    **common, server_type=s.type.value, phase=m.after, from_phase=m.before, allow_jump=True,
                    nodes={n.name: n.http_addr for n in s.nodes if n.name in m.nodes}, config_path=s.config_path,
                    restart_command=s.restart_command, delivery=s.delivery,
                    timeout_seconds=r.timeouts.batch_seconds, poll_seconds=r.timeouts.poll_seconds),
                    depends_on=upstream)
                upstream = [res]  # servers first, as in a step: clients move once the servers are back
            else:
                g = r.group(m.role)
                res = GossipClientConfig(self, m.resource, GossipClientConfigProps(
                    **common, group=g.name, phase=m.after, from_phase=m.before, repair=True,
                    nodes={n.name: n.http_addr for n in g.nodes if n.name in m.nodes}, config_path=g.config_path,
                    restart_command=g.restart_command, batch_size=g.batch_size, delivery=g.delivery,
                    timeout_seconds=r.timeouts.batch_seconds, poll_seconds=r.timeouts.poll_seconds),
                    depends_on=upstream)
            movers.append(res)
        self.movers = movers
        self.gate_after = PhaseGate(self, "gate-after", PhaseGateProps(
            **common, when="after", expected=after, addresses=addresses, may_be_down=may_be_down),
            depends_on=movers)
