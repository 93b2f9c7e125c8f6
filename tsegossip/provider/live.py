"""What the cluster looks like now, as the resources need it: phases per node, whether the keyring
holds our key, and the refresh that lets `terraform plan` show drift."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from tf.utils import Diagnostics

from .. import observe as obs
from ..phases import Phase
from .state import NodesState
from .world import World


def group_labels(labels: Mapping[str, str]) -> str:
    """`plaintext` when all agree, else `plaintext (a, b), unreachable (c)`."""
    by: dict[str, list[str]] = {}
    for node, label in sorted(labels.items()):
        by.setdefault(label, []).append(node)
    if len(by) == 1:
        return next(iter(by))
    return ", ".join(f"{label} ({', '.join(nodes)})" for label, nodes in sorted(by.items()))


def server_views(state: NodesState, world: World) -> dict[str, obs.NodeView]:
    """The servers' own settings: each listed node, or (TSE lists none) the server behind http_addr."""
    nodes = state.node_addresses
    if nodes:
        return {n: world.node_settings(a, n, state.access) for n, a in sorted(nodes.items())}
    view = world.node_settings(state.http_addr, None, state.access)
    return {view.name: view}


# How many other agents a failed keyring listing is retried through (each try is one serf query).
KEYRING_RETRIES = 3


def key_installed(world: World, http_addr: str, fingerprint: str, nodes: Mapping[str, str],
                  access: obs.Access) -> tuple[bool, str]:
    """Whether every member of the LAN pool holds the key, from Consul's keyring listing.

    The listing is a serf query every member answers, relayed by whichever agent is asked; asked
    through http_addr first and, when that fails or times out (an agent restarting in flight),
    through up to KEYRING_RETRIES of `nodes` in turn. Consul 1.14 has no listing of one agent's own
    keys: `local-only` only leaves out the WAN pool (Internal.KeyringOperation), so there is no
    per-node fallback to offer.
    """
    def answer(ring: obs.KeyringView, via: str) -> tuple[bool, str] | None:
        if ring.ok:
            return ring.holds_everywhere(fingerprint), f"via {via}: {ring.describe()}"
        if ring.unkeyed and not set(ring.unkeyed) & set(nodes):
            # Members that are meant to be plaintext still (the steps that key one group at a time, an
            # unlisted or unmanaged plaintext member) make the pool-wide listing fail. Every other member
            # answered with a keyring; which keys it holds shows once those are keyed.
            return True, (f"every other member answered with a keyring; {len(ring.unkeyed)} member(s) without one "
                          f"({', '.join(ring.unkeyed)}, not expected to hold the key) make Consul's pool-wide "
                          f"listing fail, so which keys the others hold is confirmed once those are keyed")
        return None

    ring = world.keyring(http_addr, access)
    found = answer(ring, http_addr)
    if found is not None:
        return found
    tried = [f"{http_addr}: {ring.error}"]
    for name, addr in sorted(nodes.items()):
        if addr == http_addr:
            continue
        if len(tried) > KEYRING_RETRIES:
            break
        other = world.keyring(addr, access)
        found = answer(other, f"{name} ({addr})")
        if found is not None:
            return found
        tried.append(f"{name} ({addr}): {other.error}")
    return False, "the cluster-wide keyring listing failed: " + "; ".join(tried)


def refresh(current: NodesState, world: World, diags: Diagnostics) -> NodesState | None:
    """What is live, so `terraform plan` shows drift; None (keep the recorded state) when nothing answers."""
    nodes = current.node_addresses
    if nodes:
        view = world.observe(current.http_addr, nodes, current.access, with_keyring=False)
        reachable = any(v.reachable for v in view.nodes.values())
        labels = view.phases()
    else:
        views = server_views(current, world)
        reachable = any(v.reachable for v in views.values())
        labels = {n: v.label for n, v in views.items()}
    if not reachable:
        diags.add_warning(
            f"Cannot observe {current.who}; keeping the last known state",
            f"No agent answered ({current.http_addr} and the nodes' own addresses). "
            "The plan below is based on the state recorded at the last apply.",
        )
        return None
    if _superseded(current, labels):
        diags.add_warning(
            f"{current.who}: superseded by a later stage; nothing to do for this one",
            f"They are in {group_labels(labels)}, past this stage's {current.phase} (from {current.from_phase}): a "
            "later stage moved them on. This stack's state is kept as it was applied, so its plan stays clean.",
        )
        return None
    common = set(labels.values())
    return replace(current, phase=common.pop() if len(common) == 1 else "mixed", observed=labels)


def _superseded(current: NodesState, labels: Mapping[str, str]) -> bool:
    """Every node is further along this stage's own direction than its target: a later stage's doing.

    Reporting that as drift would show a finished stage as `N to change` forever, and applying it
    would try to move the agents back (which the gates refuse)."""
    names = Phase.names()
    if current.phase not in names or current.from_phase not in names or not labels:
        return False
    if any(label not in names for label in labels.values()):
        return False
    target, source = Phase(current.phase), Phase(current.from_phase)
    if target == source:
        return False
    up = target.rank > source.rank
    return all((Phase(label).rank > target.rank) if up else (Phase(label).rank < target.rank)
               for label in labels.values())
