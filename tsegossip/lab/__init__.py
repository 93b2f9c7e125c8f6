"""tsegossip lab: real Consul agents (v1.14.11, built by ./bootstrap) on 127.0.0.1.

See lab/README.md. Main entry points: up, down, start, stop, restart, status, write_spec, running_lab.
The modules, one job each: model (the lab and its lab.json), configs (what each agent is told),
process (the agent processes), agentapi (asking an agent), cluster (up/down/restart and their
waits), specgen (a rollout spec for the lab).
"""
from ..agentshape import verify_flags
from .cluster import down, restart, running_lab, start, status, stop, up, wait_converged, wait_leader
from .configs import generate_key, phase_fragment, write_fragment
from .model import PHASES, LabCluster, LabError, LabNode, NodeStatus, load
from .process import ensure_binary, log_tail, node_pid
from .secure import ROTATION_RULES, TSEGOSSIP_RULES, create_token
from .specgen import write_spec

__all__ = [
    "PHASES", "ROTATION_RULES", "TSEGOSSIP_RULES", "LabCluster", "create_token", "LabError", "LabNode", "NodeStatus", "down", "ensure_binary",
    "generate_key", "load", "log_tail", "node_pid", "phase_fragment", "restart", "running_lab",
    "start", "status", "stop", "up", "verify_flags", "wait_converged", "wait_leader", "write_fragment", "write_spec",
]
