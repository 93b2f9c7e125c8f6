"""Which gossip phase an agent runs in, from its own /v1/agent/self."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping

from ..agentshape import verify_flags
from ..phases import Phase
from .client import DEFAULT_TIMEOUT, Access, ObserveError, client_for, describe_failure


@dataclass(frozen=True)
class NodeView:
    """One agent's gossip settings as its own /v1/agent/self reports them."""

    name: str
    http_addr: str
    reachable: bool
    encrypted: bool | None = None
    verify_incoming: bool | None = None
    verify_outgoing: bool | None = None
    phase: Phase | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        """The phase name, or what stands in for it: unreachable / unknown (flags fit no phase)."""
        if not self.reachable:
            return "unreachable"
        return str(self.phase) if self.phase is not None else "unknown"

    def describe(self) -> str:
        if not self.reachable:
            return f"unreachable ({self.error})"
        if self.phase is None:
            return (f"unknown settings (encrypted={self.encrypted}, verify_incoming={self.verify_incoming}, "
                    f"verify_outgoing={self.verify_outgoing})")
        return str(self.phase)


def node_settings(http_addr: str, name: str | None = None, access: Access | None = None,
                  timeout: float = DEFAULT_TIMEOUT) -> NodeView:
    """Read one agent's settings; an agent that does not answer is a NodeView with reachable=False."""
    import consul  # on first use: the provider must start without them (see tsegossip.observe)
    import requests

    try:
        me = client_for(http_addr, access, timeout).agent.self()
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError, ObserveError) as err:
        msg = str(err) if isinstance(err, ObserveError) else describe_failure(http_addr, err, access)
        return NodeView(name=name or http_addr, http_addr=http_addr, reachable=False, error=msg)
    if not isinstance(me, dict):
        return NodeView(name=name or http_addr, http_addr=http_addr, reachable=False,
                        error=f"{http_addr}: /v1/agent/self did not return an object")
    node_name = (me.get("Config") or {}).get("NodeName") or name or http_addr
    # EncryptKey is always "hidden"; the running keyring shows in Stats.serf_lan.encrypted.
    enc_text = ((me.get("Stats") or {}).get("serf_lan") or {}).get("encrypted")
    encrypted = None if enc_text is None else str(enc_text).lower() == "true"
    vin, vout = verify_flags(me)
    phase = Phase.from_flags(bool(encrypted), vin, vout) if encrypted is not None else None
    return NodeView(name=name or node_name, http_addr=http_addr, reachable=True, encrypted=encrypted,
                    verify_incoming=vin, verify_outgoing=vout, phase=phase)


def node_settings_many(nodes: Mapping[str, str], access: Access | None = None, timeout: float = DEFAULT_TIMEOUT,
                       workers: int = 16) -> dict[str, NodeView]:
    """node_settings for many nodes at once (threads: each call mostly waits on the network)."""
    items = sorted(nodes.items())
    if len(items) <= 1:
        return {name: node_settings(addr, name, access, timeout) for name, addr in items}
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        views = list(pool.map(lambda item: node_settings(item[1], item[0], access, timeout), items))
    return {name: view for (name, _), view in zip(items, views)}
