"""The phase gate: before or after a stack, the cluster must be as the plan expects.

Members and phases are judged by verdict.judge, the same code `tsegossip check` uses; when a phase
with the key is expected, the keyring must hold the key on every node too. A gate waits up to its
timeout for the cluster to settle, but fails at once when waiting cannot change the answer.
"""

from __future__ import annotations

from typing import Mapping

from tf.utils import Diagnostics

from .. import accounting
from .. import observe as obs
from ..expectations import allowed_labels, parse_label
from ..phases import Phase
from ..verdict import judge
from . import refusals
from .live import key_installed
from .refusals import refuse
from .state import GateState
from .world import World

GATE_POLL = 1.0


def expected_phases(state: GateState, diags: Diagnostics) -> dict[str, Phase]:
    """Node -> the phase it must be in; nodes expected `not-joined` need not be members and are left out."""
    expected: dict[str, Phase] = {}
    for name, value in (state.expected or {}).items():
        try:
            phase = parse_label(value)
        except ValueError:
            refuse(diags, f"expected[{name}] {value!r} is not a phase",
                   f"Allowed: {', '.join(allowed_labels())}.", ["expected", (name,)])
        if phase is not None:
            expected[name] = phase
    return expected


def look(state: GateState, world: World, expected: Mapping[str, Phase], fingerprint: str | None
         ) -> tuple[list[str], str, bool]:
    """(mismatches, keyring note, settled): settled means waiting cannot change the answer."""
    addresses = dict(state.addresses or {})
    watched = {n: addresses[n] for n in expected if addresses.get(n)}
    view = world.observe(state.http_addr, watched, state.access, with_keyring=False)
    judged = judge(view, {n: p.value for n, p in expected.items()}, {}, None)
    # Nodes of a role with down_nodes = skip may be down: noted, not a mismatch (the step skips them).
    skippable = state.may_be_down or {}
    down = {v.name: v.member for v in judged.nodes
            if v.name in skippable and v.member in ("failed", "left", "absent") and v.observed == "unreachable"}
    mismatches = list(judged.problems) + [f"{v.name}: {p}" for v in judged.nodes if v.name not in down
                                          for p in v.problems]
    mismatches += [f"{n}: expected {expected[n]}, saw no address in `addresses` to read its settings"
                   for n in expected if n not in watched]
    mismatches += _stragglers_unlike(state, world)
    # Everyone alive and answering: a phase that differs now will differ in a minute too.
    settled = view.members is not None and all(
        v.member == "alive" and v.observed not in ("unreachable", "unknown") for v in judged.nodes
        if v.name not in down)
    ring_note = ("; down, skipped (down_nodes = skip): " + ", ".join(f"{n} ({m})" for n, m in sorted(down.items()))
                 if down else "")
    if fingerprint and not mismatches and state.keyring_proven_by:
        # the stage's own keyring resource lists the keyring before its call and proves it after
        ring_note += f"; keyring listed and proven by {state.keyring_proven_by}"
    elif fingerprint and not mismatches:
        keyed = {n: addresses[n] for n, p in expected.items() if p.has_key and n not in down}
        ok, seen = key_installed(world, state.http_addr, fingerprint, keyed, state.access)
        if not ok:
            # Keys do not arrive by waiting: a wrong key or a stale keyring stays that way.
            return [f"keyring: expected {fingerprint} on every node, saw {seen}"], "", True
        ring_note += f"; key {fingerprint} installed ({seen})"
    return mismatches, ring_note, settled


@refusals.none_when_refused
def check_gate(state: GateState, world: World, diags: Diagnostics) -> GateState:
    expected = expected_phases(state, diags)
    needs_key = any(p.has_key for p in expected.values())
    key = refusals.gossip_key(state, world, diags, needed=needs_key)
    fingerprint = key.fingerprint if (needs_key and key) else None
    before = state.when == "before"

    def probe() -> tuple[bool, tuple[list[str], str, bool]]:
        mismatches, ring_note, settled = look(state, world, expected, fingerprint)
        # A before-gate facing a settled cluster fails now rather than after the timeout.
        stable = bool(mismatches) and settled and (before or mismatches[0].startswith("keyring:"))
        return not mismatches or stable, (mismatches, ring_note, stable)

    timeout = state.timeout
    mismatches, ring_note, stable = world.wait_until(probe, timeout=timeout, interval=GATE_POLL).value
    if mismatches:
        if mismatches[0].startswith("keyring:"):
            # The phases are right, the key is not: the earlier stages ran with another key (a plain `cdktf
            # deploy` synthesizes with whatever key is exported). Deploying them again would not help.
            hint = (f" The key in ${state.key_env} (sha256:{fingerprint}) is not the one the cluster holds: export "
                    "the key the earlier stages were deployed with (the keyring above lists its fingerprint), "
                    "and pin it in the spec as key_fingerprint so synth refuses any other.")
        else:
            hint = f" Deploy {state.previous_stack} first." if state.previous_stack and before else ""
        if any(f"member status {m}" in line for line in mismatches for m in ("failed", "left", "absent")):
            hint += (" A node that is down can be left behind with `down_nodes: skip` on its role: the step then "
                     "goes on without it and records it as a straggler.")
        refuse(diags, f"Gate {state.when} stack {state.stack} failed",
               ("The cluster differs from the plan and waiting will not change it:\n  " if stable else
                f"After {timeout:.0f}s the cluster still differs from the plan:\n  ") + "\n  ".join(mismatches) + hint,
               ["expected"])
    verdict = f"ok: {len(expected)} node(s) alive in their expected phases{ring_note}"
    if before and state.coexisting_phases:
        verdict += account_for_members(state, world, diags)
    world.progress(f"gate {state.resource_id}: {verdict}")
    return state.passed(verdict)


def _stragglers_unlike(state: GateState, world: World) -> list[str]:
    """A repair's stragglers must still run what the repair was planned from, seen from their own API (they
    need not be members: one cut off from the cluster is what the repair is for)."""
    addresses = dict(state.addresses or {})
    out = []
    for name, want in sorted((state.repairing or {}).items()):
        addr = addresses.get(name)
        if not addr:
            out.append(f"{name}: straggler to repair from {want}, but no address in `addresses` to read its settings")
            continue
        view = world.node_settings(addr, name, state.access)
        if not view.reachable or view.label != want:
            out.append(f"{name}: the repair was planned with it in {want}, now it runs {view.describe()}; "
                       "run `tsegossip repair` again to plan from what it runs now")
    return out


def _phases(text: str | None, name: str, diags: Diagnostics) -> list[Phase]:
    try:
        return [Phase.parse(p) for p in (text or "").split(",") if p]
    except ValueError:
        refuse(diags, f"{name} {text!r} is not a list of phases",
               f"Allowed: comma-separated phases of {', '.join(Phase.names())}.", [name])


def _unmanaged_phases(state: GateState, world: World, diags: Diagnostics) -> dict[str, Phase]:
    """Each unmanaged member's phase: as declared, or (`observe`) as its own API shows it now."""
    out: dict[str, Phase] = {}
    addresses = dict(state.addresses or {})
    for name, label in sorted((state.unmanaged or {}).items()):
        if label != "observe":
            out[name] = _phases(label, f"unmanaged[{name}]", diags)[0]
            continue
        addr = addresses.get(name)
        view = world.node_settings(addr, name, state.access) if addr else None
        if view is None or not view.reachable or view.phase is None:
            seen = view.describe() if view is not None else "no address in `addresses`"
            refuse(diags, f"Gate before stack {state.stack}: unmanaged member {name} cannot be observed",
                   f"{name} is unmanaged with phase `observe`, so its own API must show its phase: {seen}. Give "
                   f"its phase under unmanaged instead, or make its API reachable. Nothing was changed.",
                   ["unmanaged", (name,)])
        out[name] = view.phase
    return out


def account_for_members(state: GateState, world: World, diags: Diagnostics) -> str:
    """Every alive member of the pool that `expected` does not name must be safe during this step.

    Refuses (before any restart) naming each member the step would cut off; returns a note for the
    gate's verdict otherwise.
    """
    during = _phases(state.coexisting_phases, "coexisting_phases", diags)
    present = _phases(state.present_phases, "present_phases", diags)
    try:
        roster = world.roster(state.http_addr, state.access)
    except obs.ObserveError as err:
        refuse(diags, f"Gate before stack {state.stack}: cannot account for every member",
               f"The member list is needed to find alive members the spec does not list: {err}. Nothing was "
               f"changed.", ["http_addr"])
    unmanaged = _unmanaged_phases(state, world, diags)
    listed = set(state.expected or {}) | set(unmanaged) | set(state.repairing or {})
    found = accounting.unlisted(roster, listed, bool(state.servers_unlisted), present)
    lines = accounting.refusals(found, during, unmanaged)
    if lines:
        refuse(diags, f"Gate before stack {state.stack}: {len(lines)} member(s) the spec does not list would be cut off",
               "\n  ".join(lines) + f"\n{accounting.FIX} Nothing was changed.", ["expected"])
    if found:
        return (f"; {len(found)} alive member(s) the spec does not list, safe during this step: "
                + "; ".join(u.describe() for u in found[:5]) + (" ..." if len(found) > 5 else ""))
    return f"; all {len(roster)} member(s) accounted for"
