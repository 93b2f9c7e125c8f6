"""Live observation of a Consul cluster through its HTTP API (python-consul2).

The lowest layer: it imports only phases and keys. It answers three questions —
who is a member (`membership`), which gossip phase an agent runs in (`agents`), which
keys the keyring holds (`keyrings`) — and `cluster` asks all three at once; between server
batches the provider also asks which raft leader a server knows (`raft`). Answers are
frozen values. Where a node does not answer, the answer is a value that says so
(`reachable=False`, `error=...`), never an exception, so callers can report every node at once.

Clear keys never leave this package: the keyring listing is reduced to fingerprints
(keys.fingerprint_of) before anything is returned, logged or stored.

python-consul2 and requests are imported inside the functions that call them (`client`),
never at module level: Terraform starts the provider process four times per deploy and only
apply talks to Consul, and the two cost ~0.1 s of each start (python -X importtime).
"""

from __future__ import annotations

from .agents import NodeView, node_settings, node_settings_many
from .client import DEFAULT_TIMEOUT, Access, ObserveError, client_for
from .cluster import ClusterView, observe
from .keyrings import KEYRING_EMPTY, KeyringView, Ring, keyring, keyring_fingerprints
from .membership import STATUS_NAMES, Member, members, parse_members, roster
from .raft import raft_leader

__all__ = [
    "DEFAULT_TIMEOUT", "KEYRING_EMPTY", "STATUS_NAMES", "Access", "ClusterView", "KeyringView", "Member", "NodeView",
    "ObserveError", "Ring", "client_for", "keyring", "keyring_fingerprints", "members", "node_settings",
    "node_settings_many", "observe", "parse_members", "raft_leader", "roster",
]
