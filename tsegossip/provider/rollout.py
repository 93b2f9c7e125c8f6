"""Moving a set of agents to a phase, batch by batch: client groups and self-managed servers.

Each node gets its gossip fragment written to config_path and its restart_command run; a batch
restarts together, and the next batch starts only once every node of this one is seen live as
an alive member in the new phase.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, NoReturn

from tf.utils import Diagnostics

from .. import observe as obs
from ..agentconfig import fragment
from ..backends import commands, files
from ..backends import delivery as dl
from ..phases import Phase
from . import refusals
from .refusals import refuse
from .state import NodesState
from .world import World

# Agents usually settle within a fraction of a second of their restart command (the servers
# learn of the rejoin by gossip, measured 0.04-0.3 s on a 33-agent lab): look again soon,
# then back off to poll_seconds.
FIRST_LOOK = 0.05
BACKOFF = 1.5


# ------------------------------------------------------------------ what the nodes must look like

def pending_nodes(nodes: Mapping[str, str], labels: Mapping[str, str], target: Phase) -> list[str]:
    """The nodes this step still has to move: every one not observed in target (resume skips the rest)."""
    return [n for n in sorted(nodes) if labels[n] != str(target)]


def not_at_start(pending: list[str], labels: Mapping[str, str], source: Phase, joining: bool) -> dict[str, str]:
    """Pending nodes not in the phase the step starts from; agents that have not joined may not answer yet."""
    return {n: labels[n] for n in pending
            if labels[n] != str(source) and not (joining and labels[n] == "unreachable")}


def settled(world: World, state: NodesState, names: list[str], target: Phase) -> tuple[bool, dict[str, str]]:
    """Whether every named node is an alive member and observed in target; else what was seen, per node."""
    try:
        mem = world.members(state.http_addr, state.access)
        mem_err = None
    except obs.ObserveError as err:
        mem, mem_err = None, str(err)
    nodes = state.node_addresses
    seen: dict[str, str] = {}
    ok = True
    for name in names:
        view = world.node_settings(nodes[name], name, state.access)
        status = mem.get(name, "absent") if mem is not None else f"unknown ({mem_err})"
        if status != "alive" or not view.reachable or view.phase is not target:
            ok = False
        seen[name] = f"member {status}, phase {view.describe()}"
        if status in ("leaving", "left") and view.reachable and view.phase is target:
            # a leave from before the restart that outran the rejoin: serf's late-relayed leave intent
            # (`leaving`, which memberlist, seeing the node alive, never moves on) or memberlist's twin
            # (`left` until a push/pull); lab/cluster.py StaleLeaves has the whole story.
            seen[name] += (f" (a stale leave: the node answers in {target}; it ends when the node joins again, "
                           f"`consul join <a server's LAN address>` on its host)")
    return ok, seen


# ------------------------------------------------------------------ the rollout

@refusals.none_when_refused
def roll_nodes(state: NodesState, world: World, diags: Diagnostics) -> NodesState:
    """Bring every node in state.nodes to state.phase; the new state, or None on refusal or failure."""
    target = refusals.phase(state.phase, "phase", diags)
    source = refusals.phase(state.from_phase, "from_phase", diags)
    refusals.require_rollout_settings(state, diags)
    joining = state.agents_joining
    if not joining:  # joining agents are not members yet: no old/new split inside the group
        refusals.no_skipped_phase(state, diags, source, target)
    key = refusals.gossip_key(state, world, diags, needed=source.has_key or target.has_key)
    nodes = state.node_addresses
    who = state.who

    view = world.observe(state.http_addr, nodes, state.access, with_keyring=False)
    labels = view.phases()
    if state.rewrite:
        return _rewrite_fragments(state, world, diags, key, source, target, labels, view)
    pending = pending_nodes(nodes, labels, target)
    stragglers = down_nodes_skipped(state, view, pending, target) if state.skips_down_nodes else {}
    if stragglers:
        pending = [n for n in pending if n not in stragglers]
        world.progress(f"{who}: skipping {len(stragglers)} down node(s) (down_nodes = skip), recorded as "
                       f"stragglers: " + "; ".join(f"{n}: {why}" for n, why in sorted(stragglers.items())))
    if not pending:
        world.progress(f"{who}: all {len(nodes) - len(stragglers)} node(s) that are up already in {target}; "
                       "nothing to do")
        return state.moved(labels, stragglers)

    unsafe = not_at_start(pending, labels, source, joining)
    if unsafe:
        detail_nodes = "; ".join(f"{n}: {view.nodes[n].describe()}" for n in sorted(unsafe))
        refusals.not_ready(diags, state, str(state.role), labels, source, f" ({detail_nodes})")
    if source.has_key and target.has_key:
        refusals.keyring_holds_key(state, world, diags, key, nodes)

    size = state.nodes_per_batch
    batches = [pending[i:i + size] for i in range(0, len(pending), size)]
    skipped = len(nodes) - len(pending)
    how = refusals.delivery(state, diags)
    targets = _targets(state, diags, pending)
    ctx = dl.Context(secrets=[key.reveal()] if key else [], hide_env=[state.key_env or ""], environ=world.environ,
                     write_fragment=world.write_fragment, run_command=world.run_command, progress=world.progress)
    doc = fragment(target, key, reveal=True)
    with world.open_delivery(how, ctx) as session:
        world.progress(f"{who}: {len(pending)} node(s) to move {source} -> {target} in {len(batches)} batch(es), "
                       f"delivery {how.where()}" + (f"; {skipped} already there (resumed)" if skipped else ""))
        try:
            session.preflight([targets[n] for n in pending])
        except dl.DeliveryFailed as err:
            refuse(diags, f"Rollout of {who} refused before any change",
                   f"{err}. No node was written to or restarted.", [err.field])
        try:
            for i, batch in enumerate(batches, 1):
                _roll_batch(state, world, diags, session, targets, doc, target, batches, i)
        finally:
            if session.connections:  # one per host per step is the goal (BENCHMARKS.md ## Fleet)
                world.progress(f"{who}: delivery opened {sum(session.connections.values())} connection(s) to "
                               f"{len(session.connections)} host(s)")

    final = world.observe(state.http_addr, nodes, state.access, with_keyring=False)
    world.progress(f"{who}: done, {len(nodes) - len(stragglers)} node(s) in {target}"
                   + (f", {len(stragglers)} straggler(s) down" if stragglers else ""))
    return state.moved(final.phases(), stragglers)


def _rewrite_fragments(state: NodesState, world: World, diags: Diagnostics, key, source: Phase, target: Phase,
                       labels: Mapping[str, str], view) -> NodesState:
    """A key rotation's configs stage: every node's fragment delivered again with the key in key_env (the new
    one), nothing restarted. The keyring already holds and uses that key (checked first); the fragment is what
    an agent that starts without its keyring file will use, so it must not keep the old key."""
    who = state.who
    if source is not target or not target.has_key:
        refuse(diags, f"rewrite of {who} needs one keyed phase",
               f"rewrite delivers the fragments again without a restart: phase and from_phase must be the same "
               f"keyed phase (got {source} -> {target}). Nothing was changed.", ["rewrite"])
    nodes = state.node_addresses
    # down_nodes = skip: a node down now (its host may be down too) keeps its old fragment and is recorded;
    # `tsegossip repair SPEC --keyring` delivers it with the rejoin once the node is back.
    stragglers = ({n: f"down when {state.stack} ran (member {view.member_status(n)}); fragment not rewritten"
                   for n in down_nodes_skipped(state, view, sorted(nodes), target)}
                  if state.skips_down_nodes else {})
    if stragglers:
        world.progress(f"{who}: skipping {len(stragglers)} down node(s) (down_nodes = skip), recorded as "
                       f"stragglers: " + "; ".join(f"{n}: {why}" for n, why in sorted(stragglers.items())))
    nodes = {n: a for n, a in nodes.items() if n not in stragglers}
    refusals.keyring_holds_key(state, world, diags, key, nodes)
    names = sorted(nodes)
    if not names:
        world.progress(f"{who}: every node down and skipped; nothing rewritten")
        return state.moved(labels, stragglers)
    batches = [names]  # nothing restarts: batch_size (how many restart together) has nothing to bound
    how = refusals.delivery(state, diags)
    targets = _targets(state, diags, names)
    ctx = dl.Context(secrets=[key.reveal()], hide_env=[state.key_env or ""], environ=world.environ,
                     write_fragment=world.write_fragment, run_command=world.run_command, progress=world.progress)
    doc = fragment(target, key, reveal=True)
    with world.open_delivery(how, ctx) as session:
        world.progress(f"{who}: {len(names)} node(s) to rewrite in {target} in {len(batches)} batch(es), "
                       f"delivery {how.where()}; fragments only (key {key.fingerprint}), no restart")
        try:
            session.preflight([targets[n] for n in names])
        except dl.DeliveryFailed as err:
            refuse(diags, f"Rewrite of {who} refused before any change", f"{err}. No node was written to.",
                   [err.field])
        for i, batch in enumerate(batches, 1):
            t0 = world.clock()
            world.progress(f"{who}: batch {i}/{len(batches)}: {', '.join(batch)} -> {target}")

            def write(name: str) -> dl.Outcome:
                try:
                    session.write(targets[name], doc, state.timeout)
                except dl.DeliveryFailed as err:
                    return dl.Outcome(name, session.host_of(targets[name]), str(err), err.field)
                return dl.Outcome(name, session.host_of(targets[name]))

            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                outcomes = list(pool.map(write, batch))
            failed = [o for o in outcomes if o.failure]
            if failed:
                _stop(diags, state, ", ".join(o.node for o in failed),
                      "; ".join(f"{o.node} on {o.host}: {o.failure}" for o in failed), batches, i,
                      path=[failed[0].field], done_in_batch=[o.node for o in outcomes if not o.failure])
            world.progress(f"{who}: batch {i}/{len(batches)} written in {target} after {world.clock() - t0:.2f}s "
                           "(fragments read back, no restart)")
    world.progress(f"{who}: done, {len(names)} node(s) in {target}; every fragment carries key {key.fingerprint}"
                   + (f"; {len(stragglers)} straggler(s) down, not rewritten" if stragglers else ""))
    return state.moved(labels, stragglers)


DOWN = ("failed", "left", "absent")


def down_nodes_skipped(state: NodesState, view, pending: list[str], target: Phase) -> dict[str, str]:
    """Pending nodes that are down now (not an alive member and their API silent): node -> why."""
    out = {}
    for name in pending:
        member = view.member_status(name)
        node = view.nodes.get(name)
        if member in DOWN and (node is None or not node.reachable):
            out[name] = f"down when {state.stack} ran (member {member}); not moved to {target}"
    return out


def _targets(state: NodesState, diags: Diagnostics, names: list[str]) -> dict[str, dl.Target]:
    """Every pending node with its config_path and restart command rendered (before anything runs)."""
    out = {}
    for name in names:
        addr = state.node_addresses[name]
        try:
            path = files.render_path(state.config_path, name, addr)
            cmd = commands.render(state.restart_command, name, path, addr)
        except files.FragmentError as err:
            refuse(diags, f"config_path of {state.who} is not a template", f"{err}. Nothing was changed.",
                   ["config_path"])
        except commands.CommandError as err:
            refuse(diags, f"restart_command of {state.who} is not a template", f"{err}. Nothing was changed.",
                   ["restart_command"])
        out[name] = dl.Target(name, addr, path, cmd)
    return out


def _move_one(session: dl.Session, target: dl.Target, doc: Mapping, timeout: float) -> dl.Outcome:
    """Deliver one node's fragment, then restart it; the first failure stops this node."""
    host = session.host_of(target)
    try:
        session.write(target, doc, timeout)
        result = session.restart(target, timeout)
    except dl.DeliveryFailed as err:
        return dl.Outcome(target.node, host, str(err), err.field)
    return dl.Outcome(target.node, host, restart_seconds=result.seconds)


def _roll_batch(state: NodesState, world: World, diags: Diagnostics, session: dl.Session,
                targets: Mapping[str, dl.Target], doc: Mapping, target: Phase, batches: list[list[str]],
                i: int) -> None:
    batch, who, timeout = batches[i - 1], state.who, state.timeout
    t0 = world.clock()
    world.progress(f"{who}: batch {i}/{len(batches)}: {', '.join(batch)} -> {target}")
    # A batch restarts together: that is what batch_size promises the operator.
    with ThreadPoolExecutor(max_workers=len(batch)) as pool:
        outcomes = list(pool.map(lambda n: _move_one(session, targets[n], doc, timeout), batch))
    failed = [o for o in outcomes if o.failure]
    if failed:
        first = failed[0]
        done = [o.node for o in outcomes if not o.failure]
        what = "; ".join(f"{o.node} on {o.host}: {o.failure}" for o in failed)
        _stop(diags, state, ", ".join(o.node for o in failed), what, batches, i, path=[first.field],
              done_in_batch=done)
    restarting = max(o.restart_seconds for o in outcomes)
    # The timeout counts from before the restarts, which are part of coming back.
    waited = world.wait_until(lambda: settled(world, state, batch, target),
                              timeout=max(0.0, t0 + timeout - world.clock()), interval=state.poll,
                              first=FIRST_LOOK, backoff=BACKOFF)
    if not waited.ok:
        bad = "; ".join(f"{n}: {s}" for n, s in waited.value.items())
        _stop(diags, state, batch[0] if len(batch) == 1 else ", ".join(batch),
              f"not alive in {target} within {timeout:.0f}s after the restart (saw {bad})", batches, i,
              path=["timeout_seconds"])
    raft = ""
    if state.waits_for_raft:
        raft = "; " + _wait_for_leader(state, world, diags, batches, i, deadline=t0 + timeout)
    world.progress(f"{who}: batch {i}/{len(batches)} alive in {target} after {world.clock() - t0:.2f}s "
                   f"(restart commands {restarting:.2f}s){raft}")


def leader_known(world: World, state: NodesState, names: list[str]) -> tuple[bool, dict[str, str]]:
    """Whether every named server and the observed agent know one and the same raft leader;
    else what each answered."""
    nodes = state.node_addresses
    asked = {n: nodes[n] for n in names}
    asked.setdefault(f"servers.http_addr {state.http_addr}", state.http_addr)
    seen: dict[str, str] = {}
    for who, http_addr in asked.items():
        try:
            seen[who] = world.raft_leader(http_addr, state.access) or "no leader"
        except obs.ObserveError as err:
            seen[who] = f"no answer ({err})"
    leaders = set(seen.values())
    return len(leaders) == 1 and not any(v == "no leader" or v.startswith("no answer") for v in leaders), seen


def _wait_for_leader(state: NodesState, world: World, diags: Diagnostics, batches: list[list[str]], i: int,
                     deadline: float) -> str:
    """Wait (within the batch's timeout) until the restarted servers know the raft leader; the
    progress text, or a stop naming what each answered."""
    batch = batches[i - 1]
    waited = world.wait_until(lambda: leader_known(world, state, batch),
                              timeout=max(0.0, deadline - world.clock()), interval=state.poll,
                              first=FIRST_LOOK, backoff=BACKOFF)
    if not waited.ok:
        bad = "; ".join(f"{n}: {s}" for n, s in waited.value.items())
        _stop(diags, state, batch[0] if len(batch) == 1 else ", ".join(batch),
              f"alive in gossip but not back in raft within {state.timeout:.0f}s after the restart: the "
              f"servers do not agree on a raft leader (saw {bad}); restarting the next server could cost "
              "the quorum", batches, i, path=["timeout_seconds"])
    leader = next(iter(waited.value.values()))
    return f"raft leader {leader} known to {', '.join(batch)}"


def _stop(diags: Diagnostics, state: NodesState, node: str, what: str, batches: list[list[str]], i: int,
          path: list[str], done_in_batch: list[str] = ()) -> NoReturn:
    untouched = [n for b in batches[i:] for n in b]
    refuse(diags, f"Rollout of {state.who} stopped at {node}",
           f"{what}. Later nodes were not touched"
           + (f" ({', '.join(untouched)})" if untouched else "")
           + (f"; {', '.join(done_in_batch)} of the same batch were restarted" if done_in_batch else "")
           + ". Fix the node, then apply again: nodes already in the target phase are skipped.",
           path)
