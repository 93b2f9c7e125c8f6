"""What every listed node must look like in a planned state: the one place that knows it.

The stack's gates (before and after a step), `tsegossip check` and the provider all compare the live
cluster with "node → the phase it must be in". A client group that has not joined yet is the one
special case: its nodes are expected *not* to be members, spelled `not-joined` wherever a phase name
would stand (in Terraform attributes, plan JSON and tables). That spelling and its meaning live here.

Imports only the vocabulary (phases): the planner imports this module, so the rollout and the
planned state are described here by the little they must offer (`Listed`, `Phased`), not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .phases import Phase


class Phased(Protocol):
    """A planned state (planner.State): each role's phase, None for a group that has not joined."""

    def phase_of(self, role: str) -> Phase | None: ...


class Listed(Protocol):
    """A rollout (spec.Rollout): servers with their listed nodes, client groups with theirs."""

    servers: Any
    client_groups: Any

NOT_JOINED = "not-joined"
SERVERS = "servers"  # the role name of the servers, beside the client groups' names


def label(phase: Phase | None) -> str:
    """A phase's name, or `not-joined` for a group that has not joined (None)."""
    return phase.value if phase is not None else NOT_JOINED


def parse_label(text: str) -> Phase | None:
    """The inverse of `label`: None for `not-joined`; ValueError naming what is allowed otherwise."""
    if text == NOT_JOINED:
        return None
    try:
        return Phase.parse(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a phase; allowed: {', '.join(allowed_labels())}") from None


def allowed_labels() -> tuple[str, ...]:
    return (*Phase.names(), NOT_JOINED)


def must_be_member(text: str) -> bool:
    """Whether a node expected at `text` must be an alive member (every phase but `not-joined`)."""
    return text != NOT_JOINED


def holds_key(text: str) -> bool:
    """Whether a node expected at `text` must hold the gossip key in its keyring."""
    return text not in (Phase.PLAINTEXT.value, NOT_JOINED)


@dataclass(frozen=True)
class NodeExpectation:
    name: str
    role: str          # `servers` or the client group's name
    phase: str         # a phase name, or `not-joined`
    http_addr: str


def _roles(rollout: Listed) -> list:
    roles = [(SERVERS, rollout.servers.nodes)] if rollout.servers.nodes else []
    return roles + [(g.name, g.nodes) for g in rollout.client_groups]


def phases_by_node(rollout: Listed, state: Phased) -> dict[str, str]:
    """Node name → the phase `state` puts it in (`listed_nodes` without the objects: a stack's gates
    need only this map, for every node of a 100,000-node fleet, three times per synth)."""
    out: dict[str, str] = {}
    for role, nodes in _roles(rollout):
        out.update(dict.fromkeys([n.name for n in nodes], label(state.phase_of(role))))
    return out


def skippable_nodes(rollout) -> dict[str, str]:
    """Node -> role for the listed nodes whose role has down_nodes = skip (a gate's or keyring change's may_be_down)."""
    out = {n.name: SERVERS for n in rollout.servers.nodes if rollout.servers.down_nodes == "skip"}
    out.update({n.name: g.name for g in rollout.client_groups if g.down_nodes == "skip" for n in g.nodes})
    return out


def roles_by_node(rollout: Listed) -> dict[str, str]:
    """Node name → its role (`servers` or the client group's name), for every listed node."""
    return {n.name: role for role, nodes in _roles(rollout) for n in nodes}


def addresses_by_node(rollout: Listed) -> dict[str, str]:
    """Node name → its HTTP API address, for every listed node."""
    return {n.name: n.http_addr for _, nodes in _roles(rollout) for n in nodes}


def listed_nodes(rollout: Listed, state: Phased) -> dict[str, NodeExpectation]:
    """Every node the spec lists, in spec order, with the phase `state` puts it in.

    TSE servers are not listed (TSE does not expose its nodes): callers that need them observe the
    server behind `servers.http_addr` instead.
    """
    out: dict[str, NodeExpectation] = {}
    for role, nodes in _roles(rollout):
        want = label(state.phase_of(role))
        for n in nodes:
            out[n.name] = NodeExpectation(n.name, role, want, n.http_addr)
    return out
