"""The planner: from today's phases to the target, one rolling restart per step, with a
pairwise proof that every step keeps every pair of agents able to gossip.

Pure functions over the spec model; no I/O, no cdktf.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, replace

from .errors import PlanError
from .expectations import SERVERS, label
from .phases import Phase, compatible, why_incompatible
from .spec import ClientGroup, Rollout, ServerType, Strategy


class StepKind(enum.Enum):
    FORWARD = "forward"        # the lowest phase moves up one
    ROLLBACK = "rollback"      # the highest phase moves down one
    SERVERS = "servers"        # direct: servers straight to the target
    JOIN = "join"              # direct: clients that never gossiped join at the target

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class State:
    """Each role's phase; None for a client group that has not joined."""

    servers: Phase
    clients: tuple[tuple[str, Phase | None], ...]

    def phase_of(self, role: str) -> Phase | None:
        if role == SERVERS:
            return self.servers
        return dict(self.clients)[role]

    def roles(self) -> list[str]:
        return [SERVERS, *(name for name, _ in self.clients)]

    def joined(self) -> dict[str, Phase]:
        return {r: p for r in self.roles() if (p := self.phase_of(r)) is not None}

    def with_phase(self, role: str, phase: Phase) -> State:
        if role == SERVERS:
            return replace(self, servers=phase)
        return replace(self, clients=tuple((n, phase if n == role else p) for n, p in self.clients))

    def as_dict(self) -> dict:
        return {
            "servers": self.servers.value,
            "clients": {n: label(p) for n, p in self.clients},
        }


@dataclass(frozen=True)
class Move:
    role: str
    before: Phase | None
    after: Phase
    nodes: int

    @property
    def is_jump(self) -> bool:
        return self.before is not None and abs(self.before.rank - self.after.rank) > 1


@dataclass(frozen=True)
class PairCheck:
    """Two roles, the phases each may be in during the step, and whether they gossip."""

    role_a: str
    phase_a: Phase
    role_b: str
    phase_b: Phase
    ok: bool

    def __str__(self) -> str:
        mark = "ok" if self.ok else "SPLIT"
        return f"{self.role_a}@{self.phase_a} ↔ {self.role_b}@{self.phase_b}: {mark}"


@dataclass(frozen=True)
class Proof:
    coexisting: tuple[Phase, ...]
    checks: tuple[PairCheck, ...]

    @property
    def safe(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def splits(self) -> tuple[PairCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def summary(self) -> str:
        phases = ", ".join(p.value for p in self.coexisting)
        n = len(self.checks)
        if self.safe:
            return f"coexisting during the restart: {phases}; all {n} role pairs gossip (equal or adjacent phases)"
        bad = "; ".join(str(c) for c in self.splits)
        return f"coexisting during the restart: {phases}; {len(self.splits)} of {n} role pairs split: {bad}"


@dataclass(frozen=True)
class Step:
    index: int
    stack: str
    kind: StepKind
    before: State
    after: State
    moves: tuple[Move, ...]
    proof: Proof
    warnings: tuple[str, ...] = ()

    @property
    def moved_roles(self) -> tuple[str, ...]:
        return tuple(m.role for m in self.moves)

    @property
    def moves_servers(self) -> bool:
        return SERVERS in self.moved_roles

    def move_of(self, role: str) -> Move | None:
        return next((m for m in self.moves if m.role == role), None)


@dataclass(frozen=True)
class Plan:
    rollout: Rollout
    initial: State
    steps: tuple[Step, ...]
    warnings: tuple[str, ...]

    @property
    def final(self) -> State:
        return self.steps[-1].after if self.steps else self.initial

    def step(self, stack: str) -> Step:
        for s in self.steps:
            if s.stack == stack:
                return s
        known = ", ".join(s.stack for s in self.steps) or "none (nothing to do)"
        raise PlanError(f"no step with stack id {stack!r}; this plan's stacks: {known}")


def initial_state(rollout: Rollout) -> State:
    return State(
        servers=rollout.servers.phase,
        clients=tuple((g.name, g.phase if g.joined else None) for g in rollout.client_groups),
    )


def prove(before: State, moves: tuple[Move, ...]) -> Proof:
    """Check every pair of roles in every combination of phases they may show during
    the rolling restart: a moving role has nodes in its old and its new phase at once."""
    moving = {m.role: m for m in moves}
    during: dict[str, tuple[Phase, ...]] = {}
    for role in before.roles():
        m = moving.get(role)
        current = before.phase_of(role)
        if m is None:
            if current is not None:
                during[role] = (current,)
        elif m.before is None:
            # Joining nodes start with the new config; nodes not yet started do not gossip.
            during[role] = (m.after,)
        else:
            during[role] = (m.before, m.after)
    checks: list[PairCheck] = []
    roles = list(during)
    for i, a in enumerate(roles):
        # Within one role the pair (old, new) matters only while that role is restarting.
        for b in roles[i:]:
            if a == b:
                if len(during[a]) == 2:
                    pa, pb = during[a]
                    checks.append(PairCheck(a, pa, b, pb, compatible(pa, pb)))
                continue
            for pa, pb in itertools.product(during[a], during[b]):
                checks.append(PairCheck(a, pa, b, pb, compatible(pa, pb)))
    coexisting = tuple(sorted({p for ps in during.values() for p in ps}, key=lambda p: p.rank))
    return Proof(coexisting, tuple(checks))


def _nodes(rollout: Rollout, role: str) -> int:
    if role == SERVERS:
        return len(rollout.servers.nodes) if rollout.servers.type is ServerType.SELF_MANAGED else 0
    return len(rollout.group(role).nodes)


def stack_id(rollout: Rollout, kind: StepKind, moves: tuple[Move, ...]) -> str:
    """Stable ids: they depend on what the step does, never on where the plan started,
    so a cluster resumed half way keeps the ids of the plan it was started with."""
    to = moves[0].after
    if kind is StepKind.FORWARD:
        return f"{rollout.name}-{to.rank}-{to.value}"
    if kind is StepKind.ROLLBACK:
        return f"{rollout.name}-undo{to.rank + 1}-{to.value}"
    if kind is StepKind.SERVERS:
        return f"{rollout.name}-servers-{to.value}"
    return f"{rollout.name}-join-{to.value}"


def _check_today(state: State) -> None:
    joined = state.joined()
    for (a, pa), (b, pb) in itertools.combinations(joined.items(), 2):
        if not compatible(pa, pb):
            raise PlanError(
                f"the spec says {a} are in {pa} and {b} in {pb}: those cannot gossip today "
                f"({why_incompatible(pa, pb)}). The cluster is already split, or the spec's phases are wrong: "
                "run `tsegossip check SPEC` to see each node's real phase, fix the spec and plan again"
            )


def _check_unmanaged(rollout: Rollout, today: State, steps: list[Step]) -> None:
    """Unmanaged members keep their phase throughout: today's phases and every step's coexisting ones
    must gossip with it (`observe` ones are judged live by the step's before-gate instead)."""
    for u in rollout.unmanaged:
        if u.phase is None:
            continue
        for role, q in today.joined().items():
            if not compatible(u.phase, q):
                raise PlanError(
                    f"unmanaged member {u.name} runs {u.phase}, but the spec says {role} are in {q}: those cannot "
                    f"gossip today ({why_incompatible(u.phase, q)}); fix its phase under unmanaged (`tsegossip check` "
                    "shows what it runs) and plan again")
        for s in steps:
            bad = [q for q in s.proof.coexisting if not compatible(u.phase, q)]
            if bad:
                raise PlanError(
                    f"unmanaged member {u.name} runs {u.phase}: step {s.stack} brings agents in {bad[0]}, which it "
                    f"cannot gossip with ({why_incompatible(u.phase, bad[0])}). Move {u.name} yourself before that "
                    "step and update its phase under unmanaged, or list it in a client group so tsegossip moves it")


def _step(rollout: Rollout, index: int, kind: StepKind, before: State, moves: tuple[Move, ...]) -> Step:
    after = before
    for m in moves:
        after = after.with_phase(m.role, m.after)
    proof = prove(before, moves)
    warnings: list[str] = []
    for m in moves:
        if m.is_jump:
            warnings.append(
                f"{m.role} jump from {m.before} to {m.after}, skipping a phase: during their rolling restart, "
                f"restarted servers and not-yet-restarted servers cannot gossip ({why_incompatible(m.before, m.after)}); "
                "the split heals when the last server restarts. This is TSE's own scenario 1; use strategy smooth to avoid it"
            )
        if m.after is Phase.PLAINTEXT:
            warnings.append(
                f"{m.role} go back to plaintext: the fragment sets disable_keyring_file=true, because Consul would otherwise "
                "keep loading the key persisted in <data_dir>/serf/local.keyring and come up enforced, cut off"
            )
    return Step(index, stack_id(rollout, kind, moves), kind, before, after, moves, proof, tuple(warnings))


def _smooth(rollout: Rollout, state: State) -> list[Step]:
    steps: list[Step] = []
    target = rollout.target
    while True:
        joined = state.joined()
        below = [r for r, p in joined.items() if p.rank < target.rank]
        above = [r for r, p in joined.items() if p.rank > target.rank]
        if below:
            low = min(joined[r].rank for r in below)
            movers = [r for r in below if joined[r].rank == low]
            kind = StepKind.FORWARD
        elif above:
            high = max(joined[r].rank for r in above)
            movers = [r for r in above if joined[r].rank == high]
            kind = StepKind.ROLLBACK
        else:
            break
        moves = tuple(
            Move(r, joined[r], joined[r].toward(target), _nodes(rollout, r)) for r in movers
        )
        step = _step(rollout, len(steps) + 1, kind, state, moves)
        steps.append(step)
        state = step.after
    return steps + _join(rollout, state, len(steps))


def _join(rollout: Rollout, state: State, done: int) -> list[Step]:
    pending = [g for g in rollout.client_groups if state.phase_of(g.name) is None]
    if not pending:
        return []
    moves = tuple(Move(g.name, None, rollout.target, len(g.nodes)) for g in pending)
    return [_step(rollout, done + 1, StepKind.JOIN, state, moves)]


def _direct(rollout: Rollout, state: State) -> list[Step]:
    target = rollout.target
    misplaced: list[ClientGroup] = [
        g for g in rollout.client_groups if g.joined and g.phase is not target
    ]
    if misplaced:
        lines = []
        for g in misplaced:
            reason = why_incompatible(g.phase, target) if not compatible(g.phase, target) else (
                "direct moves only servers and clients that have not joined; joined clients are moved by smooth's rolling restarts"
            )
            lines.append(f"client group {g.name!r} ({len(g.nodes)} nodes) has joined and is in {g.phase}, not {target}: {reason}")
        raise PlanError(
            "strategy direct is only for clients that have not joined yet. "
            + "; ".join(lines)
            + f". Moving the servers to {target} would partition those clients from the cluster. "
            "Use strategy smooth, which moves joined clients one phase per rolling restart, or mark the group "
            "joined: false if its agents really have not joined yet"
        )
    steps: list[Step] = []
    if state.servers is not target:
        moves = (Move(SERVERS, state.servers, target, _nodes(rollout, SERVERS)),)
        step = _step(rollout, 1, StepKind.SERVERS, state, moves)
        steps.append(step)
        state = step.after
    return steps + _join(rollout, state, len(steps))


def plan(rollout: Rollout) -> Plan:
    """The safe sequence of steps for `rollout`; raises PlanError when none exists."""
    state = initial_state(rollout)
    _check_today(state)
    if rollout.strategy is Strategy.SMOOTH:
        steps = _smooth(rollout, state)
    else:
        steps = _direct(rollout, state)
    for s in steps:
        if not s.proof.safe and not (s.kind is StepKind.SERVERS and s.moved_roles == (SERVERS,)):
            raise PlanError(f"internal: step {s.stack} failed its own proof: {s.proof.summary()}")
    _check_unmanaged(rollout, state, steps)
    warnings = [w for s in steps for w in s.warnings]
    if rollout.target in (Phase.ACCEPT_ENCRYPTED, Phase.SEND_ENCRYPTED):
        warnings.append(
            f"target {rollout.target} is a waypoint, not an end: agents still accept plaintext gossip, "
            "so anyone on the network without the key can join and read the plaintext members send"
        )
    if rollout.servers.type is ServerType.TSE and any(s.moves_servers for s in steps):
        warnings.append(
            "servers are TSE-managed and TSE has no API for gossip parameters: each server step prints the JSON "
            "to save in the console, then waits for the instance's rolling restart (3–8 minutes)"
        )
    return Plan(rollout, state, tuple(steps), tuple(warnings))
