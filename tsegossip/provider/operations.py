"""What each resource does, as functions from state dicts to state dicts.

No Terraform here: every effect goes through a `World` (observe the cluster, write a
file, run a command, ask TSE, sleep), so tests pass a fake world and call these
directly. Problems become diagnostics (summary, detail, attribute path) in a
tf `Diagnostics`; nothing raises out of this module.

Safety rules, in order, for a step moving agents from `from_phase` to `phase`:
1. the key in $key_env must be the one the plan was made with (fingerprints compared);
2. every agent must already be in from_phase or in phase (resume); joining agents may be absent;
3. once encryption is on, the keyring must hold our key on every node;
only then are agents touched, batch by batch, each batch verified live before the next.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from tf.types import Unknown
from tf.utils import Diagnostics

from .. import observe as obs
from ..agentconfig import fragment, tse_parameters
from ..backends import commands, files, tse
from ..keys import GossipKey, InvalidKey
from ..phases import Phase
from ..verdict import judge
from .progress import Progress

NOT_JOINED = "not-joined"
DEFAULTS = {"timeout_seconds": 120.0, "poll_seconds": 1.0, "batch_size": 1}
TSE_TIMEOUT = 900.0
GATE_TIMEOUT = 60.0
GATE_POLL = 1.0

State = dict


@dataclass
class World:
    """Every effect the resources have, replaceable in tests."""

    environ: Mapping[str, str]
    progress: Callable[[str], None] = field(default_factory=Progress)
    observe: Callable[..., obs.ClusterView] = obs.observe
    members: Callable[..., dict] = obs.members
    node_settings: Callable[..., obs.NodeView] = obs.node_settings
    keyring: Callable[..., obs.KeyringView] = obs.keyring
    write_fragment: Callable[[str, Mapping], str] = files.write_fragment
    run_command: Callable[..., commands.CommandResult] = commands.run
    describe_tse: Optional[Callable[[str, str], tse.InstanceStatus]] = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def tse_status(self, instance_id: str, region: str) -> tse.InstanceStatus:
        if self.describe_tse is not None:
            return self.describe_tse(instance_id, region)
        return tse.describe_instance(instance_id, region, environ=self.environ)


class Refused(Exception):
    """Internal: stop an operation; the diagnostic is already recorded."""


# ------------------------------------------------------------------ helpers

def _num(state: Mapping, name: str, default: float) -> float:
    value = state.get(name)
    return float(default) if value is None or value is Unknown else float(value)


def _who(state: Mapping) -> str:
    return f"{state.get('role')} ({state.get('rollout')}/{state.get('stack')})"


def resource_id(state: Mapping, last: str) -> str:
    return f"{state.get('rollout')}/{state.get('stack')}/{state.get(last)}"


def parse_phase(state: Mapping, name: str, diags: Diagnostics) -> Phase:
    value = state.get(name)
    try:
        return Phase.parse(value)
    except ValueError:
        diags.add_error(f"{name} {value!r} is not a phase",
                        f"Allowed: {', '.join(Phase.names())}.", path=[name])
        raise Refused from None


def load_key(state: Mapping, world: World, diags: Diagnostics, needed: bool) -> GossipKey | None:
    """The key from $key_env, checked against key_fingerprint. None when not needed and not set."""
    env_name = state.get("key_env") or ""
    want = state.get("key_fingerprint") or ""
    if not (world.environ.get(env_name) or "").strip():
        if not needed:
            return None
    try:
        key = GossipKey.from_env(env_name, dict(world.environ))
    except InvalidKey as err:
        diags.add_error("The gossip key is not available", str(err), path=["key_env"])
        raise Refused from None
    if key.fingerprint != want:
        diags.add_error(
            "The gossip key does not match the plan",
            f"The key in ${env_name} has fingerprint {key.fingerprint}, but this configuration was planned with "
            f"key_fingerprint {want}. Export the key the plan was made with (or re-plan with this key); "
            "nothing was changed.",
            path=["key_fingerprint"],
        )
        raise Refused
    return key


def _group_labels(labels: Mapping[str, str]) -> str:
    """`plaintext` when all agree, else `plaintext (a, b), unreachable (c)`."""
    by: dict[str, list[str]] = {}
    for node, label in sorted(labels.items()):
        by.setdefault(label, []).append(node)
    if len(by) == 1:
        return next(iter(by))
    return ", ".join(f"{label} ({', '.join(nodes)})" for label, nodes in sorted(by.items()))


def key_installed(world: World, http_addr: str, fingerprint: str, nodes: Mapping[str, str],
                  access: obs.Access) -> tuple[bool, str]:
    """Whether every node holds the key: the cluster-wide keyring list when it answers; when it
    cannot (agents without a keyring make it fail), each of `nodes` asked about its own keyring."""
    ring = world.keyring(http_addr, access)
    if ring.ok:
        return ring.holds_everywhere(fingerprint), f"via {http_addr}: {ring.describe()}"
    missing: list[str] = []
    for name, addr in sorted(nodes.items()):
        own = world.keyring(addr, access, local_only=True)
        if not own.ok:
            missing.append(f"{name}: {own.error}")
        elif not own.holds_everywhere(fingerprint):
            missing.append(f"{name}: {own.describe()}")
    if missing:
        return False, (f"cluster-wide list via {http_addr} failed ({ring.error}); per node: " + "; ".join(missing))
    return True, f"each of {len(nodes)} node(s) holds it in its own keyring (cluster-wide list: {ring.error})"


def _keyring_refusal(diags: Diagnostics, state: Mapping, key: GossipKey, seen: str) -> None:
    data_dir = "<data_dir>"
    diags.add_error(
        "The keyring does not hold the key on every node",
        f"Keyring {seen}; the key in ${state.get('key_env')} is "
        f"{key.fingerprint}. An agent restarted now would log `keyring doesn't include key provided with -encrypt, "
        "using keyring` and keep gossiping with the old key. Either the key is the wrong one (export the right one), "
        "or the agents' keyring is stale: install the key with the keyring API (POST /v1/operator/keyring "
        "{\"Key\": ...}, i.e. `consul keyring -install`, then `-use`), or stop the agent and remove "
        f"{data_dir}/serf/local.keyring before restarting it. Nothing was changed.",
        path=["key_fingerprint"],
    )


def _access(state: Mapping) -> obs.Access:
    return obs.Access.from_attrs(state)


def _previous(state: Mapping, source: Phase) -> str:
    prev = state.get("previous_stack")
    return f"deploy {prev} first" if prev else f"bring them to {source} first"


def _not_ready(diags: Diagnostics, state: Mapping, who: str, labels: Mapping[str, str], source: Phase,
               detail: str) -> None:
    """Refuse before touching anything: these agents are not where this stack starts from."""
    diags.add_error(
        f"{who} are not ready for stack {state.get('stack')}",
        f"{who} are in {_group_labels(labels)}; stack {state.get('stack')} expects {source}: "
        f"{_previous(state, source)}. Nothing was changed.{detail}",
        path=["from_phase"],
    )
    raise Refused


# ------------------------------------------------------------------ node rollouts (client_config, self-managed servers)

def _check_step(state: Mapping, diags: Diagnostics, source: Phase, target: Phase) -> None:
    if abs(target.rank - source.rank) > 1 and not state.get("allow_jump"):
        diags.add_error(
            f"Moving {source} -> {target} skips a phase",
            f"Agents in {source} and {target} cannot gossip with each other while the step is half done. "
            "Go one phase at a time, or set allow_jump = true (direct strategy) to accept the split.",
            path=["phase"],
        )
        raise Refused


def _settled(world: World, state: Mapping, names: list[str], nodes: Mapping[str, str], target: Phase,
             access: obs.Access) -> tuple[bool, dict[str, str]]:
    """Whether every named node is an alive member and observed in target; else what was seen, per node."""
    try:
        mem = world.members(state["http_addr"], access)
        mem_err = None
    except obs.ObserveError as err:
        mem, mem_err = None, str(err)
    seen: dict[str, str] = {}
    ok = True
    for name in names:
        view = world.node_settings(nodes[name], name, access)
        status = mem.get(name, "absent") if mem is not None else f"unknown ({mem_err})"
        if status != "alive" or not view.reachable or view.phase is not target:
            ok = False
        seen[name] = f"member {status}, phase {view.describe()}"
    return ok, seen


def _restart_one(world: World, state: Mapping, name: str, addr: str, doc: Mapping, timeout: float,
                 secrets: list[str]) -> tuple[str, str | None, str, object]:
    """Write one node's fragment and run its restart command: (name, failure or None, attribute, result)."""
    try:
        path = files.render_path(state["config_path"], name, addr)
        cmd = commands.render(state["restart_command"], name, path, addr)
        world.write_fragment(path, doc)
    except (files.FragmentError, commands.CommandError, OSError) as err:
        return name, f"writing its config failed: {err}", "config_path", None
    try:
        result = world.run_command(cmd, timeout, secrets=secrets, hide_env=[state.get("key_env") or ""])
    except (commands.CommandError, OSError) as err:
        return name, f"its restart command could not run: {err}", "restart_command", None
    if not result.ok:
        return name, f"its restart command failed: {result.describe()}", "restart_command", result
    return name, None, "", result


def roll_nodes(state: State, world: World, diags: Diagnostics, batch_size: int) -> State | None:
    """Bring every node in state['nodes'] to state['phase']; returns the new state, None on refusal/failure."""
    try:
        return _roll_nodes(state, world, diags, batch_size)
    except Refused:
        return None


def _roll_nodes(state: State, world: World, diags: Diagnostics, batch_size: int) -> State:
    who = _who(state)
    target = parse_phase(state, "phase", diags)
    source = parse_phase(state, "from_phase", diags)
    nodes: dict[str, str] = dict(state.get("nodes") or {})
    if not nodes:
        diags.add_error(f"No nodes for {who}", "Set `nodes` (node name -> HTTP API address).", path=["nodes"])
        raise Refused
    for attr in ("config_path", "restart_command"):
        if not state.get(attr):
            diags.add_error(f"{attr} is required for {who}",
                            f"tsegossip writes each node's fragment to config_path and restarts it with "
                            f"restart_command; {attr} is not set.", path=[attr])
            raise Refused
    joining = bool(state.get("joining"))
    if not joining:  # joining agents are not members yet: no old/new split inside the group
        _check_step(state, diags, source, target)
    key = load_key(state, world, diags, needed=source.has_key or target.has_key)
    if target.has_key and key is None:  # pragma: no cover - load_key raised already
        raise Refused
    access = _access(state)
    timeout = _num(state, "timeout_seconds", DEFAULTS["timeout_seconds"])
    poll = _num(state, "poll_seconds", DEFAULTS["poll_seconds"])
    batch_size = max(1, int(batch_size))

    view = world.observe(state["http_addr"], nodes, access, with_keyring=False)
    labels = view.phases()
    pending = [n for n in sorted(nodes) if labels[n] != str(target)]
    if not pending:
        world.progress(f"{who}: all {len(nodes)} node(s) already in {target}; nothing to do")
        return {**state, "id": resource_id(state, "role"), "observed": labels}

    unsafe = {n: labels[n] for n in pending
              if labels[n] != str(source) and not (joining and labels[n] == "unreachable")}
    if unsafe:
        detail_nodes = "; ".join(f"{n}: {view.nodes[n].describe()}" for n in sorted(unsafe))
        _not_ready(diags, state, str(state.get("role")), labels, source, f" ({detail_nodes})")

    if source.has_key and target.has_key:
        assert key is not None
        ok, seen = key_installed(world, state["http_addr"], key.fingerprint, nodes, access)
        if not ok:
            _keyring_refusal(diags, state, key, seen)
            raise Refused

    doc = fragment(target, key, reveal=True)
    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
    skipped = len(nodes) - len(pending)
    world.progress(f"{who}: {len(pending)} node(s) to move {source} -> {target} in {len(batches)} batch(es)"
                   + (f"; {skipped} already there (resumed)" if skipped else ""))
    secrets = [key.reveal()] if key else []
    for i, batch in enumerate(batches, 1):
        t0 = world.clock()
        restarting = 0.0
        world.progress(f"{who}: batch {i}/{len(batches)}: {', '.join(batch)} -> {target}")
        # A batch restarts together: that is what batch_size promises the operator.
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            outcomes = list(pool.map(
                lambda name: _restart_one(world, state, name, nodes[name], doc, timeout, secrets), batch))
        for name, failure, attr, result in outcomes:
            if failure:
                _stop(diags, state, name, failure, batches, i, path=[attr])
            restarting = max(restarting, result.seconds)
        deadline = t0 + timeout
        # Agents usually settle within a fraction of a second of their restart command (the
        # servers learn of the rejoin by gossip, measured 0.04-0.3 s on a 33-agent lab): look
        # again soon, then back off to poll_seconds.
        wait = min(0.05, poll)
        while True:
            ok, seen = _settled(world, state, batch, nodes, target, access)
            if ok:
                break
            if world.clock() >= deadline:
                bad = "; ".join(f"{n}: {s}" for n, s in seen.items())
                _stop(diags, state, batch[0] if len(batch) == 1 else ", ".join(batch),
                      f"not alive in {target} within {timeout:.0f}s after the restart (saw {bad})", batches, i,
                      path=["timeout_seconds"])
            world.sleep(wait)
            wait = min(wait * 1.5, poll)
        world.progress(f"{who}: batch {i}/{len(batches)} alive in {target} after {world.clock() - t0:.2f}s "
                       f"(restart commands {restarting:.2f}s)")

    final = world.observe(state["http_addr"], nodes, access, with_keyring=False)
    world.progress(f"{who}: done, {len(nodes)} node(s) in {target}")
    return {**state, "id": resource_id(state, "role"), "observed": final.phases()}


def _stop(diags: Diagnostics, state: Mapping, node: str, what: str, batches: list[list[str]], i: int,
          path: list[str]) -> None:
    untouched = [n for b in batches[i:] for n in b if n not in node.split(", ")]
    diags.add_error(
        f"Rollout of {state.get('role')} stopped at {node}",
        f"{node}: {what}. Later nodes were not touched"
        + (f" ({', '.join(untouched)})" if untouched else "")
        + ". Fix the node, then apply again: nodes already in the target phase are skipped.",
        path=path,
    )
    raise Refused


# ------------------------------------------------------------------ TSE servers

def roll_tse(state: State, world: World, diags: Diagnostics) -> State | None:
    try:
        return _roll_tse(state, world, diags)
    except Refused:
        return None


def _tse_view(state: Mapping, world: World, access: obs.Access) -> dict[str, obs.NodeView]:
    nodes = dict(state.get("nodes") or {})
    if nodes:
        return {n: world.node_settings(a, n, access) for n, a in sorted(nodes.items())}
    view = world.node_settings(state["http_addr"], None, access)
    return {view.name: view}


def _roll_tse(state: State, world: World, diags: Diagnostics) -> State:
    who = _who(state)
    target = parse_phase(state, "phase", diags)
    source = parse_phase(state, "from_phase", diags)
    for attr in ("instance_id", "region"):
        if not state.get(attr):
            diags.add_error(f"{attr} is required for TSE servers", f"Set {attr} (server_type = tse).", path=[attr])
            raise Refused
    _check_step(state, diags, source, target)
    key = load_key(state, world, diags, needed=source.has_key or target.has_key)
    access = _access(state)
    views = _tse_view(state, world, access)
    labels = {n: v.label for n, v in views.items()}
    if all(label == str(target) for label in labels.values()):
        world.progress(f"{who}: TSE servers already in {target}; nothing to do")
        return {**state, "id": resource_id(state, "role"), "observed": labels}
    unsafe = {n: lab for n, lab in labels.items() if lab not in (str(source), str(target))}
    if unsafe:
        _not_ready(diags, state, "servers", labels, source, "")
    if source.has_key and target.has_key:
        assert key is not None
        ok, seen = key_installed(world, state["http_addr"], key.fingerprint, dict(state.get("nodes") or {}), access)
        if not ok:
            _keyring_refusal(diags, state, key, seen)
            raise Refused

    shown = json.dumps(tse_parameters(target, key, reveal=False), indent=2)
    instance, region = state["instance_id"], state["region"]
    world.progress(f"{who}: TSE has no API for these parameters. In the console of instance {instance} "
                   f"({region}), System parameters -> Gossip encryption, save (key shown redacted; paste yours "
                   f"from ${state.get('key_env')}):\n{shown}")
    timeout = _num(state, "timeout_seconds", TSE_TIMEOUT)
    poll = _num(state, "poll_seconds", DEFAULTS["poll_seconds"])
    deadline = world.clock() + timeout
    last_status = "not asked yet"
    world.progress(f"{who}: waiting up to {timeout:.0f}s for {instance} to run again with servers in {target}")
    while True:
        try:
            st = world.tse_status(instance, region)
            last_status = st.status or "not listed"
            if st.status in tse.FAILED:
                diags.add_error(f"TSE instance {instance} reports {st.status}",
                                "Look at the console's task log; nothing else was changed.", path=["instance_id"])
                raise Refused
        except tse.TSEError as err:
            if "must be set" in str(err):
                diags.add_error("Cannot ask TSE about the instance", str(err), path=["instance_id"])
                raise Refused
            last_status = f"error: {err}"
            st = None
        views = _tse_view(state, world, access)
        labels = {n: v.label for n, v in views.items()}
        if st is not None and st.running and all(lab == str(target) for lab in labels.values()):
            world.progress(f"{who}: {instance} running, servers in {target}")
            return {**state, "id": resource_id(state, "role"), "observed": labels}
        if world.clock() >= deadline:
            diags.add_error(
                f"TSE servers did not reach {target} within {timeout:.0f}s",
                f"Instance {instance}: {last_status}; servers seen: {_group_labels(labels)}. Save these parameters "
                f"in the TSE console (System parameters -> Gossip encryption; the key is the one in "
                f"${state.get('key_env')}, shown redacted) and apply again:\n{shown}",
                path=["phase"],
            )
            raise Refused
        world.sleep(poll)


# ------------------------------------------------------------------ reading live state

def read_nodes(current: State, world: World, diags: Diagnostics) -> State:
    """Report what is live so `terraform plan` shows drift; keep prior state when nothing answers."""
    access = _access(current)
    nodes = dict(current.get("nodes") or {})
    if nodes:
        view = world.observe(current["http_addr"], nodes, access, with_keyring=False)
        reachable = any(v.reachable for v in view.nodes.values())
        labels = view.phases()
    else:
        views = _tse_view(current, world, access)
        reachable = any(v.reachable for v in views.values())
        labels = {n: v.label for n, v in views.items()}
    if not reachable:
        diags.add_warning(
            f"Cannot observe {_who(current)}; keeping the last known state",
            f"No agent answered ({current.get('http_addr')} and the nodes' own addresses). "
            "The plan below is based on the state recorded at the last apply.",
        )
        return current
    common = set(labels.values())
    return {**current, "phase": common.pop() if len(common) == 1 else "mixed", "observed": labels}


# ------------------------------------------------------------------ gates

def check_gate(state: State, world: World, diags: Diagnostics) -> State | None:
    try:
        return _check_gate(state, world, diags)
    except Refused:
        return None


def _gate_once(state: Mapping, world: World, expected: Mapping[str, Phase], addresses: Mapping[str, str],
               fingerprint: str | None, access: obs.Access) -> tuple[list[str], str, bool]:
    """(mismatches, keyring note, settled): settled means waiting cannot change the answer.

    Members and phases are judged by verdict.judge, the same code `tsegossip check` uses.
    """
    watched = {n: addresses[n] for n in expected if addresses.get(n)}
    view = world.observe(state["http_addr"], watched, access, with_keyring=False)
    judged = judge(view, {n: p.value for n, p in expected.items()}, {}, None)
    mismatches = judged.all_problems()
    mismatches += [f"{n}: expected {expected[n]}, saw no address in `addresses` to read its settings"
                   for n in expected if n not in watched]
    # Everyone alive and answering: a phase that differs now will differ in a minute too.
    settled = view.members is not None and all(
        v.member == "alive" and v.observed not in ("unreachable", "unknown") for v in judged.nodes)
    ring_note = ""
    if fingerprint and not mismatches:
        keyed = {n: addresses[n] for n, p in expected.items() if p.has_key}
        ok, seen = key_installed(world, state["http_addr"], fingerprint, keyed, access)
        if not ok:
            # Keys do not arrive by waiting: a wrong key or a stale keyring stays that way.
            return [f"keyring: expected {fingerprint} on every node, saw {seen}"], "", True
        ring_note = f"; key {fingerprint} installed ({seen})"
    return mismatches, ring_note, settled


def _check_gate(state: State, world: World, diags: Diagnostics) -> State:
    raw = dict(state.get("expected") or {})
    expected: dict[str, Phase] = {}
    for name, value in raw.items():
        if value == NOT_JOINED:
            continue
        try:
            expected[name] = Phase.parse(value)
        except ValueError:
            diags.add_error(f"expected[{name}] {value!r} is not a phase",
                            f"Allowed: {', '.join(Phase.names())}, {NOT_JOINED}.", path=["expected", (name,)])
            raise Refused from None
    needs_key = any(p.has_key for p in expected.values())
    key = load_key(state, world, diags, needed=needs_key)
    fingerprint = key.fingerprint if (needs_key and key) else None
    addresses = dict(state.get("addresses") or {})
    access = _access(state)
    timeout = _num(state, "timeout_seconds", GATE_TIMEOUT)
    deadline = world.clock() + timeout
    while True:
        mismatches, ring_note, settled = _gate_once(state, world, expected, addresses, fingerprint, access)
        if not mismatches:
            verdict = f"ok: {len(expected)} node(s) alive in their expected phases{ring_note}"
            world.progress(f"gate {resource_id(state, 'when')}: {verdict}")
            return {**state, "id": resource_id(state, "when"), "verdict": verdict}
        # A before-gate facing a settled cluster fails now rather than after the timeout.
        stable = settled and (state.get("when") == "before" or mismatches[0].startswith("keyring:"))
        if stable or world.clock() >= deadline:
            prev = state.get("previous_stack")
            hint = f" Deploy {prev} first." if prev and state.get("when") == "before" else ""
            diags.add_error(
                f"Gate {state.get('when')} stack {state.get('stack')} failed",
                ("The cluster differs from the plan and waiting will not change it:\n  " if stable else
                 f"After {timeout:.0f}s the cluster still differs from the plan:\n  ") + "\n  ".join(mismatches) + hint,
                path=["expected"],
            )
            raise Refused
        world.sleep(GATE_POLL)


# ------------------------------------------------------------------ plan / delete

INPUTLESS = {"id", "observed", "verdict"}


def plan_update(current: Optional[State], planned: State, changed: set[str], computed: set[str]) -> State:
    """A computed attribute that depends on a changed input is not known until apply."""
    if current is None:
        return planned
    if changed - INPUTLESS:
        planned = dict(planned)
        for name in computed - {"id"}:
            planned[name] = Unknown
    return planned


def forget(current: State, diags: Diagnostics, what: str) -> None:
    """Delete: drop the resource from state, touch no agent, and say so."""
    where = f" (last seen: {current['phase']})" if current.get("phase") else ""
    diags.add_warning(
        f"{what} forgotten; agents keep their gossip settings",
        f"tsegossip never downgrades on destroy: the agents stay in the phase they are in{where}. "
        "To go back, apply a step whose phase is lower.",
    )
    return None
