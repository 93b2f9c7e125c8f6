"""`tsegossip check`: every node's liveness, observed phase and keys, against the spec."""

from __future__ import annotations

import json
from dataclasses import asdict

from tabulate import tabulate

from . import accounting, observe
from .keys import UNKNOWN_FINGERPRINT, GossipKey, KeyShown
from .planner import SERVERS, State, initial_state
from .expectations import listed_nodes, must_be_member
from .spec import Rollout, ServerType
from .verdict import MEMBER_API, SERVERS_VIEW, ClusterVerdict, NodeVerdict, judge
from .phases import Phase, compatible, why_incompatible


def access_of(rollout: Rollout) -> observe.Access:
    c = rollout.consul
    return observe.Access(c.token_env, c.cacert_env, c.client_cert_env, c.client_key_env)


def expectations(rollout: Rollout, state: State) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(node → expected phase, node → role, node → http_addr) for a planned state."""
    nodes = listed_nodes(rollout, state)
    return ({n: e.phase for n, e in nodes.items()}, {n: e.role for n, e in nodes.items()},
            {n: e.http_addr for n, e in nodes.items()})


def run_check(rollout: Rollout, key: GossipKey | KeyShown | None, state: State | None = None,
              timeout: float = observe.DEFAULT_TIMEOUT) -> ClusterVerdict:
    state = state or initial_state(rollout)
    expected, roles, addrs = expectations(rollout, state)
    access = access_of(rollout)
    if rollout.servers.type is ServerType.TSE:
        # TSE lists no server nodes: observe the server behind http_addr under its own name.
        me = observe.node_settings(rollout.servers.http_addr, None, access, timeout)
        name = me.name if me.reachable else "tse-servers"
        expected[name] = state.servers.value
        roles[name] = SERVERS
        addrs[name] = rollout.servers.http_addr
    watched = {n: a for n, a in addrs.items() if must_be_member(expected[n])}
    watched.update({u.name: u.http_addr for u in rollout.unmanaged if u.http_addr})
    view = observe.observe(rollout.servers.http_addr, watched, access, timeout)
    fingerprint = key.fingerprint if key and key.fingerprint != UNKNOWN_FINGERPRINT else None
    verdict = judge(view, expected, roles, fingerprint, rollout.key_env)
    return with_unaccounted(with_straggler_fix(verdict, view, expected), view, expected, rollout)


REPAIR_FIX = ("Fix: `tsegossip repair SPEC` moves just those nodes to their role's phase (through the roles' "
              "delivery, with the same gates as every step; `--dry-run` shows the repair and its proof first).")


def stragglers_of(view: observe.ClusterView, expected: dict[str, str]) -> dict[str, Phase]:
    """Listed nodes whose own API answers with a phase other than the one expected: node -> what it runs."""
    out: dict[str, Phase] = {}
    for name, want in expected.items():
        node = view.nodes.get(name)
        if want in Phase.names() and node is not None and node.reachable and node.phase is not None \
                and node.phase.value != want:
            out[name] = node.phase
    return out


def with_straggler_fix(verdict: ClusterVerdict, view: observe.ClusterView, expected: dict[str, str]) -> ClusterVerdict:
    """One cluster-wide problem naming every straggler with why it matters (cut off or not) and the fix."""
    found = stragglers_of(view, expected)
    if not found:
        return verdict
    present = {Phase(p) for n, p in expected.items() if p in Phase.names() and n not in found}
    parts = []
    for name, runs in sorted(found.items()):
        apart = sorted((p for p in present if not compatible(runs, p)), key=lambda p: p.rank)
        why = (f"cut off: it cannot gossip with agents in {apart[0]} ({why_incompatible(runs, apart[0])})" if apart
               else "still gossips (adjacent phases), but the next step expects it with its role")
        parts.append(f"{name} runs {runs}, expected {expected[name]}: {why}")
    problem = f"{len(found)} straggler(s), left in an old phase: " + "; ".join(parts) + ". " + REPAIR_FIX
    return ClusterVerdict(verdict.nodes, verdict.keyring, verdict.problems + (problem,))


UNLISTED_ROLE = "(not listed)"
UNMANAGED_ROLE = "(unmanaged)"


def with_unaccounted(verdict: ClusterVerdict, view: observe.ClusterView, expected: dict[str, str],
                     rollout: Rollout) -> ClusterVerdict:
    """The verdict with a row for every unmanaged member (observed where its API answers) and a row and
    a problem for every alive member the spec does not list."""
    rows: list[NodeVerdict] = []
    for u in rollout.unmanaged:
        node = view.nodes.get(u.name)
        observed = node.label if node is not None else "unknown"
        problems = []
        if node is not None and node.reachable and u.phase is not None and node.phase is not u.phase:
            problems.append(f"runs {node.describe()}, but unmanaged says {u.phase}: the plan's proof relies on it")
        if node is not None and not node.reachable and u.phase is None:
            problems.append(f"phase observe, but {node.describe()}")
        rows.append(NodeVerdict(u.name, UNMANAGED_ROLE, u.label, view.member_status(u.name), observed, tuple(problems),
                                MEMBER_API if node is not None and node.reachable else SERVERS_VIEW))
    problems = verdict.problems
    if view.roster is not None:
        found = unlisted_members(view, expected, rollout)
        rows += [NodeVerdict(u.member.name, UNLISTED_ROLE, "-", u.member.status, "unknown",
                             (f"an alive member the spec does not list ({u.member.where}); it runs "
                              + " or ".join(p.value for p in u.possible),), SERVERS_VIEW) for u in found]
        if found:
            problems += (f"{len(found)} alive member(s) the spec does not list. " + accounting.FIX,)
    if not rows:
        return verdict
    return ClusterVerdict(verdict.nodes + tuple(rows), verdict.keyring, problems)


def unlisted_members(view: observe.ClusterView, expected: dict[str, str], rollout: Rollout) -> list[accounting.Unlisted]:
    """Alive members of the pool (view.roster) neither listed nor unmanaged, with the phases they may run."""
    present = {Phase(p) for p in expected.values() if p in Phase.names()}
    present |= {u.phase for u in rollout.unmanaged if u.phase is not None}
    listed = set(expected) | {u.name for u in rollout.unmanaged}
    return accounting.unlisted(view.roster or (), listed, rollout.servers.type is ServerType.TSE, present)


def as_table(verdict: ClusterVerdict) -> str:
    head = ("node", "role", "member", "observed", "expected", "ok")
    rows = [head]
    for n in verdict.nodes:
        rows.append((n.name, n.role, n.member, n.observed, n.expected, "ok" if n.ok else "NO"))
    # the head goes in as a row: as `headers=` tabulate would widen every column by 2 (MIN_PADDING)
    lines = tabulate(rows, tablefmt="plain", disable_numparse=True, preserve_whitespace=True).splitlines()
    lines.append(f"keyring: {verdict.keyring}")
    for p in verdict.all_problems():
        lines.append(f"problem: {p}")
    ok = sum(n.ok for n in verdict.nodes)
    lines.append(f"{ok}/{len(verdict.nodes)} nodes as expected" + ("" if verdict.ok else "; cluster differs from the spec"))
    lines.append(f"audit: {verdict.audit()}")
    return "\n".join(lines)


def as_json(verdict: ClusterVerdict, judged_against: str | None = None) -> str:
    doc = {
        "ok": verdict.ok,
        "nodes": [{**asdict(n), "ok": n.ok} for n in verdict.nodes],
        "keyring": verdict.keyring,
        "problems": verdict.all_problems(),
        "audit": verdict.audit(),
    }
    if judged_against:
        doc["judged_against"] = judged_against
    return json.dumps(doc, indent=2)


# ---- plan --live: the plan against the cluster as it is now ----------------------------------------

def live_lines(plan, timeout: float = observe.DEFAULT_TIMEOUT) -> tuple[list[str], bool]:
    """What the live cluster says about `plan` before any step: (lines, ok).

    Every alive member the spec does not list, with the first step that would cut it off (the provider's
    before-gate refuses that step); listed nodes down now, with what their role's down_nodes does to them;
    stragglers against today's phases. ok is False when a step would be refused as things stand.
    """
    rollout = plan.rollout
    expected, roles, addrs = expectations(rollout, plan.initial)
    view = observe.observe(rollout.servers.http_addr, {n: a for n, a in addrs.items() if must_be_member(expected[n])},
                           access_of(rollout), timeout, with_keyring=False)
    lines: list[str] = [f"live: {rollout.servers.http_addr}"]
    ok = True
    if view.roster is None:
        return lines + [f"  cannot list members: {view.members_error}"], False
    found = unlisted_members(view, expected, rollout)
    lines.append(f"  {len(view.roster)} member(s) in the LAN pool, {len(found)} alive and not listed")
    for u in found:
        stop = next((s for s in plan.steps if accounting.refusals([u], s.proof.coexisting)), None)
        if stop is None:
            lines.append(f"  {u.describe()}: safe in every step")
        else:
            ok = False
            lines.append(f"  {u.describe()}: step {stop.index} ({stop.stack}) would cut it off and is refused")
    if not ok:
        lines.append(f"  {accounting.FIX}")
    policy = {SERVERS: rollout.servers.down_nodes, **{g.name: g.down_nodes for g in rollout.client_groups}}
    for name in sorted(expected):
        if not must_be_member(expected[name]):
            continue
        node, member = view.nodes.get(name), view.member_status(name)
        if member != "alive" and (node is None or not node.reachable):
            if policy.get(roles[name]) == "skip":
                lines.append(f"  {name} ({roles[name]}): down (member {member}); down_nodes = skip: the steps go on "
                             "without it and record it as a straggler, `tsegossip repair` moves it when it is back")
            else:
                ok = False
                lines.append(f"  {name} ({roles[name]}): down (member {member}); down_nodes = refuse: the first step "
                             "is refused until it is back (or set down_nodes: skip on its role)")
    for name, runs in sorted(stragglers_of(view, expected).items()):
        ok = False
        lines.append(f"  {name} ({roles[name]}): runs {runs}, the spec says {expected[name]}: fix the spec (or "
                     "`tsegossip repair SPEC --after today`) before the first step")
    if ok and len(lines) == 2:
        lines.append("  every member accounted for, every listed node up and in the spec's phase")
    return lines, ok
