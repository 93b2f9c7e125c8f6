"""Every member accounted for: the alive members of the LAN pool that the spec does not list.

A member nobody listed (a forgotten autoscaled client, a laptop agent, a second team's group) keeps
its phase through the whole rollout, because nobody restarts it. If it is alive today it gossips
with every phase present today, so it runs one of the phases compatible with all of them; a step
that puts agents in a phase incompatible with one of those would cut it off. That is decided here,
from the member list alone (its own API is rarely reachable: clients serve HTTP on 127.0.0.1 by
default), so it costs one listing of the pool however large it is.

`unmanaged` members (declared in the spec with their phase) are accounted for and judged with the
phase given; TSE's servers are never listed by name (TSE does not expose its nodes), so when the
servers are TSE-managed, a member tagged as a server is theirs.
Sits beside the verdict: imports observe and the vocabulary only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .observe import Member
from .phases import Phase, compatible


@dataclass(frozen=True)
class Unlisted:
    """An alive member the spec does not name, and the phases it may be in."""

    member: Member
    possible: tuple[Phase, ...]

    def describe(self) -> str:
        may = " or ".join(p.value for p in self.possible) if self.possible else "no phase of today's (it gossips anyway)"
        return f"{self.member.name} ({self.member.where}): an alive member the spec does not list; it runs {may}"


def unlisted(roster: Iterable[Member], listed: Iterable[str], tse_servers: bool,
             present: Iterable[Phase]) -> list[Unlisted]:
    """Alive members not in `listed` (servers excepted when TSE runs them), with their possible phases:
    those that gossip with every phase in `present` (today's, among the members that are accounted for)."""
    known = set(listed)
    today = set(present)
    possible = tuple(p for p in Phase if all(compatible(p, q) for q in today))
    return [Unlisted(m, possible) for m in roster
            if m.status == "alive" and m.name not in known and not (tse_servers and m.server)]


def cut_off(phases: Iterable[Phase], during: Iterable[Phase]) -> dict[Phase, Phase]:
    """For each of `phases` that some phase in `during` cannot gossip with: that phase (else absent)."""
    out = {}
    during = sorted(set(during), key=lambda p: p.rank)
    for p in phases:
        for q in during:
            if not compatible(p, q):
                out[p] = q
                break
    return out


def refusals(found: Iterable[Unlisted], during: Iterable[Phase], unmanaged: Mapping[str, Phase] = {}) -> list[str]:
    """One line per member a step with `during` coexisting phases would cut off (unlisted, or unmanaged
    at its declared phase); empty when the step is safe for all of them."""
    during = tuple(during)
    lines = []
    for u in found:
        cut = cut_off(u.possible, during)
        if cut:
            why = "; ".join(f"as {p.value} it cannot gossip with agents in {q.value}" for p, q in cut.items())
            lines.append(f"{u.describe()}, and this step would cut it off ({why})")
    for name, phase in sorted(unmanaged.items()):
        cut = cut_off([phase], during)
        if cut:
            lines.append(f"{name}: unmanaged in {phase.value}, and this step would cut it off (it cannot gossip "
                         f"with agents in {cut[phase].value})")
    return lines


FIX = ("List each such member in a client group (tsegossip then moves it with the rest), or under `unmanaged` with "
       "the phase it runs (tsegossip then proves every step against it and refuses one that would cut it off).")
