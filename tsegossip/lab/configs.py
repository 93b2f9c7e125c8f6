"""What each lab agent is told: its base config (00-base.json) and its gossip fragment (50-gossip.json).

Consul reads every *.json in its config dir in name order, so the fragment the provider writes
(50-gossip.json) is merged over the base. Kept apart from
process.py so that putting a different agent behind the lab changes what is written here and how
it is started there, each in one place.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from ..agentconfig import fragment
from ..atomicfile import write_json
from ..keys import GossipKey
from ..phases import Phase
from . import secure
from .model import BASE_FRAGMENT, LabCluster, LabError, LabNode


def generate_key() -> str:
    """A key like `consul keygen` (base64 of 32 random bytes), in clear: the lab is a test harness."""
    return GossipKey.generate().reveal()


def new_key_file(path: str) -> str:
    """A new key (like `consul keygen`) written to `path` (0600, never to a terminal or a log); returns it."""
    key = generate_key()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def phase_fragment(phase: str, key: str | None) -> dict:
    """The 50-gossip.json content for one of the four phases: exactly what the provider writes."""
    try:
        p = Phase(phase)
    except ValueError:
        raise LabError(f"unknown phase {phase!r} (expected one of {', '.join(Phase.names())})") from None
    if p.has_key and not key:
        raise LabError(f"phase {phase} needs a gossip key")
    return fragment(p, GossipKey(key) if key else None, reveal=True)


def write_fragment(cluster: LabCluster, node: str, fragment: Mapping) -> str:
    """Write <node>/config/50-gossip.json (what the rollout code would do)."""
    path = cluster.node(node).config_path
    write_json(path, dict(fragment), private=True)  # it holds the key in clear
    return path


def base_config(cluster: LabCluster, n: LabNode, leave_on_terminate: bool | None) -> dict:
    """00-base.json of one node: identity, ports, who to join, and whether a stop is a leave.

    leave_on_terminate None keeps Consul's own defaults (servers: false, clients: true).
    """
    server_addrs = [s.serf_addr for s in cluster.servers]
    is_server = n.role == "server"
    # A server joining itself counts as a successful join and stops retry_join, so servers list
    # only the other servers. A lone server lists the clients instead: after a graceful leave its
    # peers have forgotten it, and nobody else would ever join it again.
    join = [a for a in server_addrs if a != n.serf_addr]
    if is_server and not join:
        join = [c.serf_addr for c in cluster.clients]
    cfg = {
        "node_name": n.name,
        "datacenter": "dc1",
        "data_dir": n.data_dir,
        "server": is_server,
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        # Only the three ports the lab uses; DNS, gRPC (plain and TLS, which 1.14 opens on 8503 even
        # without certificates), HTTPS and the WAN pool are off so that agents never collide.
        "ports": {"serf_lan": n.serf_port, "http": n.http_port, "server": n.server_port,
                  "dns": -1, "grpc": -1, "grpc_tls": -1, "https": -1, "serf_wan": -1},
        "retry_join": join,
        "retry_interval": "1s",
        "disable_update_check": True,
        "log_level": "info",
        # raft_multiplier 1 is Consul's production timing (its default, 5, is for small VMs).
        "performance": {"raft_multiplier": 1},
        "connect": {"enabled": False},
        "ui_config": {"enabled": False},
    }
    if is_server:
        cfg["bootstrap_expect"] = len(cluster.servers)
    if n.secure:
        extra = secure.agent_config(cluster.workdir, n)
        cfg["ports"].update(extra.pop("ports"))
        cfg.update(extra)
    if leave_on_terminate is not None:
        cfg["leave_on_terminate"] = bool(leave_on_terminate)
    return cfg


def write_configs(cluster: LabCluster, fragments: Mapping[str, Mapping], leave_on_terminate: bool | None) -> None:
    """Every node's config dir: a fresh 00-base.json, and its 50-gossip.json from `fragments`.

    `fragments` maps a node name, a group name or "servers"/"clients" to a fragment (node name
    wins over group over role). A node without an entry keeps the fragment it has, or gets `{}`
    (plaintext) when it has none.
    """
    for n in cluster.nodes:
        os.makedirs(n.config_dir, exist_ok=True)
        os.makedirs(n.data_dir, exist_ok=True)
        # a secure node's base config holds the lab's management token: private like the fragment
        write_json(os.path.join(n.config_dir, BASE_FRAGMENT), base_config(cluster, n, leave_on_terminate),
                   private=n.secure)
        frag = None
        for k in (n.name, n.group, "servers" if n.role == "server" else "clients"):
            if k is not None and k in fragments:
                frag = fragments[k]
                break
        if frag is not None:
            write_json(n.config_path, dict(frag), private=True)
        elif not os.path.exists(n.config_path):
            write_json(n.config_path, {})


def leaves_on_terminate(n: LabNode) -> bool:
    """The agent's leave_on_terminate as its config dir sets it (Consul's default: true for a client,
    false for a server)."""
    value = n.role != "server"
    for path in sorted(Path(n.config_dir).glob("*.json")):  # Consul merges them in name order
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("leave_on_terminate"), bool):
            value = doc["leave_on_terminate"]
    return value
