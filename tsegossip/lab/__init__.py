"""tsegossip lab: real gossip agents (serf + memberlist, Consul's LAN gossip stack) on 127.0.0.1.

See lab/README.md. Main entry points: up, down, start, stop, restart, status, write_spec, running_lab.
"""
from .cluster import (  # noqa: F401
    PHASES,
    LabCluster,
    LabError,
    LabNode,
    NodeStatus,
    down,
    ensure_binary,
    generate_key,
    load,
    log_tail,
    node_pid,
    phase_fragment,
    restart,
    running_lab,
    start,
    status,
    stop,
    up,
    verify_flags,
    wait_converged,
    write_fragment,
    write_spec,
)

__all__ = [
    "PHASES", "LabCluster", "LabError", "LabNode", "NodeStatus", "down", "ensure_binary",
    "generate_key", "load", "log_tail", "node_pid", "phase_fragment", "restart", "running_lab",
    "start", "status", "stop", "up", "verify_flags", "wait_converged", "write_fragment", "write_spec",
]
