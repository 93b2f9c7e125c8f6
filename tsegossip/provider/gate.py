"""The phase gate: before or after a stack, the cluster must be as the plan expects.

Members and phases are judged by verdict.judge, the same code `tsegossip check` uses; when a phase
with the key is expected, the keyring must hold the key on every node too. A gate waits up to its
timeout for the cluster to settle, but fails at once when waiting cannot change the answer.
"""

from __future__ import annotations

from typing import Mapping

from tf.utils import Diagnostics

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
    mismatches = judged.all_problems()
    mismatches += [f"{n}: expected {expected[n]}, saw no address in `addresses` to read its settings"
                   for n in expected if n not in watched]
    # Everyone alive and answering: a phase that differs now will differ in a minute too.
    settled = view.members is not None and all(
        v.member == "alive" and v.observed not in ("unreachable", "unknown") for v in judged.nodes)
    ring_note = ""
    if fingerprint and not mismatches:
        keyed = {n: addresses[n] for n, p in expected.items() if p.has_key}
        ok, seen = key_installed(world, state.http_addr, fingerprint, keyed, state.access)
        if not ok:
            # Keys do not arrive by waiting: a wrong key or a stale keyring stays that way.
            return [f"keyring: expected {fingerprint} on every node, saw {seen}"], "", True
        ring_note = f"; key {fingerprint} installed ({seen})"
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
        hint = f" Deploy {state.previous_stack} first." if state.previous_stack and before else ""
        refuse(diags, f"Gate {state.when} stack {state.stack} failed",
               ("The cluster differs from the plan and waiting will not change it:\n  " if stable else
                f"After {timeout:.0f}s the cluster still differs from the plan:\n  ") + "\n  ".join(mismatches) + hint,
               ["expected"])
    verdict = f"ok: {len(expected)} node(s) alive in their expected phases{ring_note}"
    world.progress(f"gate {state.resource_id}: {verdict}")
    return state.passed(verdict)
