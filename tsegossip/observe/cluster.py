"""One snapshot of the whole cluster: members, every node's own settings and the keyring, read together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping

from .agents import NodeView, node_settings_many
from .client import DEFAULT_TIMEOUT, Access, ObserveError
from .keyrings import KeyringView, keyring
from .membership import Member, roster


@dataclass(frozen=True)
class ClusterView:
    """Members (as http_addr sees them), each node's own settings, and the keyring."""

    http_addr: str
    members: Mapping[str, str] | None
    members_error: str | None
    nodes: Mapping[str, NodeView] = field(default_factory=dict)
    keyring: KeyringView | None = None
    roster: tuple[Member, ...] | None = None  # the same listing with addresses and roles

    def member_status(self, name: str) -> str:
        if self.members is None:
            return "unknown"
        return self.members.get(name, "absent")

    def phases(self) -> dict[str, str]:
        return {name: view.label for name, view in self.nodes.items()}

    def common_phase(self) -> str:
        """The one phase every node is in, `mixed` when they differ."""
        labels = set(self.phases().values())
        return labels.pop() if len(labels) == 1 else "mixed"


def observe(http_addr: str, nodes: Mapping[str, str], access: Access | None = None,
            timeout: float = DEFAULT_TIMEOUT, with_keyring: bool = True) -> ClusterView:
    """One snapshot of the cluster; unreachable agents show up as values, not exceptions.

    The three reads go out together: the keyring listing is a serf query that waits for the
    whole pool to answer (~0.3-0.5 s on a 33-agent lab), the rest is one request per agent.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        ring_f = pool.submit(keyring, http_addr, access, timeout) if with_keyring else None
        mem_f = pool.submit(roster, http_addr, access, timeout)
        views = node_settings_many(nodes, access, timeout)
        try:
            listed: tuple[Member, ...] | None = mem_f.result()
            mem: dict[str, str] | None = {m.name: m.status for m in listed}
            mem_err = None
        except ObserveError as err:
            listed, mem, mem_err = None, None, str(err)
        ring = ring_f.result() if ring_f is not None else None
    return ClusterView(http_addr=http_addr, members=mem, members_error=mem_err, nodes=views, keyring=ring,
                       roster=listed)
