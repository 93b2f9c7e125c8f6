"""What the cluster looks like now, as the resources need it: phases per node, whether the keyring
holds our key, and the refresh that lets `terraform plan` show drift."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from tf.utils import Diagnostics

from .. import observe as obs
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
    common = set(labels.values())
    return replace(current, phase=common.pop() if len(common) == 1 else "mixed", observed=labels)
