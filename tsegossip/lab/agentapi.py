"""Asking a lab agent over its HTTP API (Consul's /v1/agent/members and /v1/agent/self).

Two ways in: `members` with the standard library, for the lab's own waits (called many times a
second, and from `tsegossip lab restart`, which must start without python-consul2 and requests:
see tests/provider/test_startup.py); `answers` with python-consul2, as the rollout's observation
asks, for `status`.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Mapping

from ..agentshape import verify_flags
from .model import LabNode

ALIVE = 1
LEAVING = 2
LEFT = 3
STALE_LEAVING_AFTER = 3.0  # s a running agent may be listed `leaving` before it is re-announced
REANNOUNCE_EVERY = 5.0     # s between two re-announcements of one agent to one peer
STATUS_NAMES = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}  # serf's member status codes


def request(node: LabNode, path: str, method: str = "GET", body: Any = None, token: str | None = None,
            timeout: float = 1.0) -> Any:
    """One call to `node`'s HTTP API (HTTPS with the lab's CA and its management token on a secure lab,
    unless `token` is given); the JSON answer, None for an empty one. Raises what urllib raises."""
    token = token or node.token()
    headers = {"X-Consul-Token": token} if token else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(node.http_addr + path, method=method, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout, context=node.ssl_context()) as r:
        raw = r.read().decode()
    return json.loads(raw) if raw.strip() else None



def members(node: LabNode, timeout: float = 1.0) -> dict[str, int] | None:
    """member name -> status code as `node` sees them, or None when it does not answer."""
    try:
        return {m["Name"]: m["Status"] for m in request(node, "/v1/agent/members", timeout=timeout)}
    except (OSError, ValueError, urllib.error.URLError):
        return None


def join(node: LabNode, serf_addr: str, timeout: float = 5.0) -> bool:
    """Ask `node` to join the agent at `serf_addr` (PUT /v1/agent/join); whether it answered 200.

    Besides the push/pull with that agent, serf's Join broadcasts a fresh join intent stamped with
    the node's Lamport clock after the push/pull, hence newer than any leave intent the peer holds
    for it: this is what ends a stale `leaving` (see cluster.StaleLeaves).
    """
    try:
        request(node, f"/v1/agent/join/{serf_addr}", method="PUT", timeout=timeout)
        return True
    except (OSError, ValueError, urllib.error.URLError):
        return False


def agent_self(node: LabNode, timeout: float = 2.0) -> dict:
    """/v1/agent/self of `node` (raises what urllib raises)."""
    return request(node, "/v1/agent/self", timeout=timeout)


def leader(node: LabNode, timeout: float = 1.0) -> str | None:
    """The raft leader's address as `node` sees it ("" while there is none), or None when it does not answer."""
    try:
        return str(request(node, "/v1/status/leader", timeout=timeout))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def answers(node: LabNode, timeout: float) -> tuple[list, dict]:
    """(/v1/agent/members, /v1/agent/self) of `node` through python-consul2; raises what it raises."""
    import consul  # python-consul2; on use, see the module docstring

    c = consul.Consul(host="127.0.0.1", port=node.http_port, timeout=timeout, token=node.token(),
                      scheme="https" if node.secure else "http", verify=node.ca_file or True)
    return c.agent.members(), c.agent.self()


def gossip_view(member_list: list, me: Mapping) -> dict[str, Any]:
    """The NodeStatus fields an agent's answers give: who it sees how, encryption, verify flags."""
    seen = {m["Name"]: STATUS_NAMES.get(m["Status"], str(m["Status"])) for m in member_list}
    vi, vo = verify_flags(me)
    enc = me.get("Stats", {}).get("serf_lan", {}).get("encrypted")
    return dict(
        members_alive=sum(1 for v in seen.values() if v == "alive"),
        members_failed=sum(1 for v in seen.values() if v == "failed"),
        members_left=sum(1 for v in seen.values() if v == "left"),
        members=seen,
        encrypted=None if enc is None else enc == "true",
        verify_incoming=vi, verify_outgoing=vo)
