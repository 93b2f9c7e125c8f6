"""The rollout model: what a valid spec becomes, as plain frozen dataclasses and enums.

Its own module because most code above the spec layer (planner, constructs, check, report) needs
only these types: no YAML, no schema, no limits. No I/O and no checks here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..delivery import Delivery
from ..phases import Phase


class Strategy(enum.Enum):
    SMOOTH = "smooth"
    DIRECT = "direct"

    def __str__(self) -> str:
        return self.value


class ServerType(enum.Enum):
    TSE = "tse"
    SELF_MANAGED = "self-managed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Node:
    name: str
    http_addr: str


@dataclass(frozen=True)
class Servers:
    type: ServerType
    phase: Phase
    http_addr: str
    instance_id: str | None = None
    region: str | None = None
    nodes: tuple[Node, ...] = ()
    config_path: str | None = None
    restart_command: str | None = None
    delivery: Delivery = Delivery()
    down_nodes: str = "refuse"      # refuse | skip (schema: $defs/self_managed_servers.down_nodes)
    data_dir: str | None = None     # the agents' data_dir on their hosts ({node} allowed), to read local.keyring


@dataclass(frozen=True)
class ClientGroup:
    name: str
    phase: Phase
    joined: bool
    config_path: str
    restart_command: str
    batch_size: int
    nodes: tuple[Node, ...]
    delivery: Delivery = Delivery()
    down_nodes: str = "refuse"      # refuse | skip
    data_dir: str | None = None     # the agents' data_dir on their hosts ({node} allowed), to read local.keyring


@dataclass(frozen=True)
class Unmanaged:
    """A member handled elsewhere: never restarted, always proven against."""

    name: str
    phase: Phase | None          # None: `observe`, the phase its own API shows at deploy time
    http_addr: str | None = None

    @property
    def label(self) -> str:
        return self.phase.value if self.phase is not None else "observe"


@dataclass(frozen=True)
class ConsulAccess:
    """Names of the environment variables holding Consul API credentials (never values)."""

    token_env: str = "CONSUL_HTTP_TOKEN"
    cacert_env: str = "CONSUL_CACERT"
    client_cert_env: str = "CONSUL_CLIENT_CERT"
    client_key_env: str = "CONSUL_CLIENT_KEY"
    datacenter: str | None = None


@dataclass(frozen=True)
class Timeouts:
    batch_seconds: int = 120
    tse_seconds: int = 900
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class Rollout:
    name: str
    strategy: Strategy
    target: Phase
    key_env: str
    servers: Servers
    client_groups: tuple[ClientGroup, ...]
    consul: ConsulAccess = ConsulAccess()
    timeouts: Timeouts = Timeouts()
    unmanaged: tuple[Unmanaged, ...] = ()
    client_groups_restart: str = "parallel"   # parallel | sequential (schema: client_groups_restart)
    key_fingerprint: str | None = None        # pinned in the spec (schema: key_fingerprint); None: not pinned
    rotate_to_env: str | None = None          # a key rotation to the key in this variable (schema: rotate_to_env)
    rotate_to_fingerprint: str | None = None  # the new key's fingerprint, pinned (schema: rotate_to_fingerprint)

    @property
    def rotates(self) -> bool:
        """Whether the spec asks for a key rotation (tsegossip.rotation) rather than a phase rollout."""
        return self.rotate_to_env is not None

    def group(self, name: str) -> ClientGroup:
        for g in self.client_groups:
            if g.name == name:
                return g
        raise KeyError(name)
