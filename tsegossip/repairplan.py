"""The repair of stragglers as a plan: which nodes move from what they run to what their role runs.

A straggler is a listed node whose own API shows a phase other than the one its role is in (it was
down during a step and came back with its old config, or was skipped under `down_nodes: skip`).
The repair moves just those nodes, each straight to its role's phase in a planned state. Why that
is safe even when it skips phases: a straggler two phases away is already apart from the cluster
(phases gossip only when equal or adjacent), so while it restarts it is either where it is now or in
its role's phase, which the plan's own proof showed gossips with every other role. The proof below
checks the second half pair by pair; the first is stated as a note per straggler.

Pure functions, like the planner: no I/O. The stragglers come from a live check (tsegossip/repair.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import PlanError
from .expectations import SERVERS
from .phases import Phase, compatible, why_incompatible
from .planner import PairCheck, Plan, Proof, State
from .spec import Rollout, ServerType


@dataclass(frozen=True)
class RepairMove:
    """Some nodes of one role, all in `before` now, moved to `after` (their role's phase)."""

    role: str
    before: Phase
    after: Phase
    nodes: tuple[str, ...]

    @property
    def resource(self) -> str:
        """The construct id: one resource per role and starting phase (a resource starts from one phase)."""
        return f"{'servers' if self.role == SERVERS else 'client-' + self.role}-from-{self.before.value}"


@dataclass(frozen=True)
class Repair:
    """One repair stack: the planned state it restores, the moves, and their proof."""

    stack: str
    at: str                        # the stack whose `after` state this is, or `today` (the spec's phases)
    state: State
    moves: tuple[RepairMove, ...]
    proof: Proof
    notes: tuple[str, ...]         # per straggler: apart from the cluster now or not, and why

    @property
    def stragglers(self) -> dict[str, Phase]:
        """Node -> the phase it runs now."""
        return {n: m.before for m in self.moves for n in m.nodes}

    def as_dict(self) -> dict:
        """What `tsegossip repair` writes for main.py to synthesize (TSEGOSSIP_REPAIR): no key, no secret."""
        return {"stack": self.stack, "at": self.at, "state": self.state.as_dict(),
                "moves": [{"role": m.role, "before": m.before.value, "after": m.after.value, "nodes": list(m.nodes)}
                          for m in self.moves]}


def repair_stack_id(rollout: Rollout, moves: tuple[RepairMove, ...]) -> str:
    """Stable per repair: the same stragglers going to the same phases get the same stack (and state), so
    a rerun after a failure resumes it; another repair gets a stack of its own and never replaces one."""
    text = ";".join(f"{m.role}:{m.before.value}>{m.after.value}:{','.join(m.nodes)}" for m in moves)
    return f"{rollout.name}-repair-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _role_of(rollout: Rollout) -> dict[str, str]:
    out = {n.name: SERVERS for n in rollout.servers.nodes}
    out.update({n.name: g.name for g in rollout.client_groups for n in g.nodes})
    return out


def plan_repair(rollout: Rollout, state: State, at: str, stragglers: Mapping[str, Phase]) -> Repair:
    """The repair moving each straggler (node -> the phase its own API shows) to its role's phase in `state`.

    Raises PlanError naming the node when it cannot be repaired this way.
    """
    if not stragglers:
        raise PlanError("no stragglers to repair: every listed node that answers runs its role's phase")
    roles = _role_of(rollout)
    grouped: dict[tuple[str, Phase], list[str]] = {}
    notes: list[str] = []
    for node, now in sorted(stragglers.items()):
        role = roles.get(node)
        if role is None:
            raise PlanError(f"straggler {node!r} is not a node of the spec; listed nodes: servers.nodes[].name, "
                            "client_groups[].nodes[].name (an unlisted member is listed first, then repaired)")
        if role == SERVERS and rollout.servers.type is ServerType.TSE:
            raise PlanError(f"{node} is a TSE server: TSE rolls its servers itself; save the parameters again in "
                            "the console")
        want = state.phase_of(role)
        if want is None:
            raise PlanError(f"{node} is in group {role}, which has not joined at {at}: nothing to repair it to")
        if now is want:
            raise PlanError(f"{node} already runs {want}, its role's phase at {at}: it is not a straggler")
        grouped.setdefault((role, now), []).append(node)
        apart = [(r, p) for r, p in state.joined().items() if not compatible(now, p)]
        if apart:
            r, p = apart[0]
            notes.append(f"{node} ({role}) runs {now}: apart from the cluster now, it cannot gossip with {r} in {p} "
                         f"({why_incompatible(now, p)}); the repair ends that")
        else:
            notes.append(f"{node} ({role}) runs {now}: still gossips with every role (adjacent phases); the repair "
                         f"moves it to {want} with the rest of {role}")
    moves = tuple(RepairMove(role, now, state.phase_of(role), tuple(nodes))
                  for (role, now), nodes in sorted(grouped.items(), key=lambda kv: (kv[0][0] != SERVERS, kv[0][0],
                                                                                     kv[0][1].rank)))
    proof = _prove(state, moves)
    if not proof.safe:  # only a state that is itself split gets here: the planner never plans one
        raise PlanError(f"the state at {at} is split, so no repair can join it: {proof.summary()}")
    return Repair(repair_stack_id(rollout, moves), at, state, moves, proof, tuple(notes))


def _prove(state: State, moves: tuple[RepairMove, ...]) -> Proof:
    """Each moved node's new phase against every role's phase in `state` (the node's old phase is the
    situation the repair ends, stated in the notes)."""
    joined = state.joined()
    checks = [PairCheck(f"{m.role} ({', '.join(m.nodes)})", m.after, r, p, compatible(m.after, p))
              for m in moves for r, p in joined.items()]
    # Coexisting: the phases the cluster shows during the repair. A straggler's old phase is not one of
    # them: it is cut off (then not part of the cluster) or adjacent (then it counts as that role's phase
    # for a moment, as in any step).
    coexisting = tuple(sorted(set(joined.values()), key=lambda p: p.rank))
    return Proof(coexisting, tuple(checks))


TODAY = "today"


def state_at(plan: Plan, at: str) -> State:
    """The planned state after stack `at`, or (`today`) the spec's phases."""
    return plan.initial if at == TODAY else plan.step(at).after


def repair_for(plan: Plan, at: str, stragglers: Mapping[str, Phase]) -> Repair:
    """The repair restoring the state after `at` (a stack of `plan`, or `today`)."""
    return plan_repair(plan.rollout, state_at(plan, at), at, stragglers)


def request_doc(at: str, stragglers: Mapping[str, Phase]) -> dict:
    """What `tsegossip repair` hands to the cdktf app (the file named by TSEGOSSIP_REPAIR): the observation
    the repair is planned from, so synth plans it with the same code. No key, no secret."""
    return {"at": at, "stragglers": {n: p.value for n, p in sorted(stragglers.items())}}


def from_request(plan: Plan, doc: object, source: str = "TSEGOSSIP_REPAIR") -> Repair:
    """The repair a request document asks for; PlanError naming the field when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("at"), str) or not isinstance(doc.get("stragglers"), dict):
        raise PlanError(f"{source}: expected {{\"at\": STACK or \"today\", \"stragglers\": {{node: phase}}}}, "
                        f"got {type(doc).__name__}")
    stragglers: dict[str, Phase] = {}
    for node, value in doc["stragglers"].items():
        try:
            stragglers[str(node)] = Phase.parse(str(value))
        except ValueError:
            raise PlanError(f"{source}: stragglers.{node}: {value!r} is not a phase; allowed: "
                            f"{', '.join(Phase.names())}") from None
    return repair_for(plan, doc["at"], stragglers)
