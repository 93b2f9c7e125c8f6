"""Moving a set of agents to a phase, batch by batch: client groups and self-managed servers.

Each node gets its gossip fragment written to config_path and its restart_command run; a batch
restarts together, and the next batch starts only once every node of this one is seen live as
an alive member in the new phase.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, NoReturn

from tf.utils import Diagnostics

from .. import observe as obs
from ..agentconfig import fragment
from ..backends import commands, files
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
    pending = pending_nodes(nodes, labels, target)
    if not pending:
        world.progress(f"{who}: all {len(nodes)} node(s) already in {target}; nothing to do")
        return state.moved(labels)

    unsafe = not_at_start(pending, labels, source, joining)
    if unsafe:
        detail_nodes = "; ".join(f"{n}: {view.nodes[n].describe()}" for n in sorted(unsafe))
        refusals.not_ready(diags, state, str(state.role), labels, source, f" ({detail_nodes})")
    if source.has_key and target.has_key:
        refusals.keyring_holds_key(state, world, diags, key, nodes)

    size = state.nodes_per_batch
    batches = [pending[i:i + size] for i in range(0, len(pending), size)]
    skipped = len(nodes) - len(pending)
    world.progress(f"{who}: {len(pending)} node(s) to move {source} -> {target} in {len(batches)} batch(es)"
                   + (f"; {skipped} already there (resumed)" if skipped else ""))
    restart = _Restart(world, state, fragment(target, key, reveal=True), [key.reveal()] if key else [])
    for i, batch in enumerate(batches, 1):
        _roll_batch(state, world, diags, restart, target, batches, i)

    final = world.observe(state.http_addr, nodes, state.access, with_keyring=False)
    world.progress(f"{who}: done, {len(nodes)} node(s) in {target}")
    return state.moved(final.phases())


@dataclass(frozen=True)
class _Restart:
    """Writing one node's fragment and running its restart command."""

    world: World
    state: NodesState
    doc: Mapping
    secrets: list[str]

    def __call__(self, name: str) -> tuple[str, str | None, str, commands.CommandResult | None]:
        """(name, failure or None, attribute to blame, the command's result)."""
        state, addr = self.state, self.state.node_addresses[name]
        try:
            path = files.render_path(state.config_path, name, addr)
            cmd = commands.render(state.restart_command, name, path, addr)
            self.world.write_fragment(path, self.doc)
        except (files.FragmentError, commands.CommandError, OSError) as err:
            return name, f"writing its config failed: {err}", "config_path", None
        try:
            result = self.world.run_command(cmd, state.timeout, secrets=self.secrets, hide_env=[state.key_env or ""])
        except (commands.CommandError, OSError) as err:
            return name, f"its restart command could not run: {err}", "restart_command", None
        if not result.ok:
            return name, f"its restart command failed: {result.describe()}", "restart_command", result
        return name, None, "", result


def _roll_batch(state: NodesState, world: World, diags: Diagnostics, restart: _Restart, target: Phase,
                batches: list[list[str]], i: int) -> None:
    batch, who, timeout = batches[i - 1], state.who, state.timeout
    t0 = world.clock()
    world.progress(f"{who}: batch {i}/{len(batches)}: {', '.join(batch)} -> {target}")
    # A batch restarts together: that is what batch_size promises the operator.
    with ThreadPoolExecutor(max_workers=len(batch)) as pool:
        outcomes = list(pool.map(restart, batch))
    restarting = 0.0
    for name, failure, attr, result in outcomes:
        if failure:
            _stop(diags, state, name, failure, batches, i, path=[attr])
        restarting = max(restarting, result.seconds)
    # The timeout counts from before the restarts, which are part of coming back.
    waited = world.wait_until(lambda: settled(world, state, batch, target),
                              timeout=max(0.0, t0 + timeout - world.clock()), interval=state.poll,
                              first=FIRST_LOOK, backoff=BACKOFF)
    if not waited.ok:
        bad = "; ".join(f"{n}: {s}" for n, s in waited.value.items())
        _stop(diags, state, batch[0] if len(batch) == 1 else ", ".join(batch),
              f"not alive in {target} within {timeout:.0f}s after the restart (saw {bad})", batches, i,
              path=["timeout_seconds"])
    world.progress(f"{who}: batch {i}/{len(batches)} alive in {target} after {world.clock() - t0:.2f}s "
                   f"(restart commands {restarting:.2f}s)")


def _stop(diags: Diagnostics, state: NodesState, node: str, what: str, batches: list[list[str]], i: int,
          path: list[str]) -> NoReturn:
    untouched = [n for b in batches[i:] for n in b if n not in node.split(", ")]
    refuse(diags, f"Rollout of {state.role} stopped at {node}",
           f"{node}: {what}. Later nodes were not touched"
           + (f" ({', '.join(untouched)})" if untouched else "")
           + ". Fix the node, then apply again: nodes already in the target phase are skipped.",
           path)
