"""Live observation of a Consul cluster through its HTTP API (python-consul2).

The lowest layer: it imports only phases and keys. It answers three questions —
who is a member, which gossip phase an agent runs in, which keys the keyring holds —
and returns frozen values. Where a node does not answer, the answer is a value that
says so (`reachable=False`, `error=...`), never an exception, so callers can report
every node at once.

Clear keys never leave this module: the keyring listing is reduced to fingerprints
(keys.fingerprint_of) before anything is returned, logged or stored.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from .agentshape import verify_flags  # noqa: F401 (re-exported)
from .keys import fingerprint_of
from .phases import Phase

if TYPE_CHECKING:
    import consul
    import requests
else:
    class _OnFirstUse:
        """A module imported when first used. Terraform starts the provider process four times
        per deploy and only apply talks to Consul; python-consul2 and requests cost ~0.1 s of
        each start (python -X importtime)."""

        def __init__(self, name: str) -> None:
            self._name = name
            self._module: ModuleType | None = None

        def __getattr__(self, attr: str) -> Any:
            if self._module is None:
                self._module = importlib.import_module(self._name)
            return getattr(self._module, attr)

    consul = _OnFirstUse("consul")
    requests = _OnFirstUse("requests")

DEFAULT_TIMEOUT = 3.0
STATUS_NAMES = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}
KEYRING_EMPTY = "keyring empty (encryption not enabled)"


class ObserveError(RuntimeError):
    """A cluster-level observation failed; the message is meant for a person."""


@dataclass(frozen=True)
class Access:
    """Names of the environment variables holding the ACL token and TLS files (never the values)."""

    token_env: str = "CONSUL_HTTP_TOKEN"
    cacert_env: str = "CONSUL_CACERT"
    client_cert_env: str = "CONSUL_CLIENT_CERT"
    client_key_env: str = "CONSUL_CLIENT_KEY"

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> Access:
        """From a resource's *_env attributes; unset ones keep Consul's conventional names."""
        d = cls()
        return cls(
            token_env=attrs.get("token_env") or d.token_env,
            cacert_env=attrs.get("cacert_env") or d.cacert_env,
            client_cert_env=attrs.get("client_cert_env") or d.client_cert_env,
            client_key_env=attrs.get("client_key_env") or d.client_key_env,
        )


DEFAULT_ACCESS = Access()


def client_for(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT,
               environ: Mapping[str, str] | None = None) -> consul.Consul:
    """A python-consul2 client for `http(s)://host:port` with token and TLS from the environment."""
    access = access or DEFAULT_ACCESS
    env = os.environ if environ is None else environ
    parts = urlsplit(http_addr if "://" in http_addr else f"http://{http_addr}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ObserveError(f"http_addr {http_addr!r} is not an http(s)://host:port address")
    port = parts.port or (443 if parts.scheme == "https" else 8500)
    cacert = env.get(access.cacert_env) or None
    cert, key = env.get(access.client_cert_env) or None, env.get(access.client_key_env) or None
    return consul.Consul(
        host=parts.hostname,
        port=port,
        scheme=parts.scheme,
        token=env.get(access.token_env) or None,
        verify=cacert if cacert else True,
        cert=(cert, key) if cert and key else cert,
        timeout=timeout,
    )


def _describe_failure(http_addr: str, err: Exception) -> str:
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"no answer from {http_addr} (connection refused or unreachable)"
    if isinstance(err, requests.exceptions.Timeout):
        return f"no answer from {http_addr} within the timeout"
    if isinstance(err, consul.ACLPermissionDenied):
        return f"{http_addr} refused the request (ACL): {err}"
    text = str(err).strip().splitlines()
    return f"{http_addr}: {type(err).__name__}: {text[0] if text else ''}"


def members(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
    """Member name -> alive/leaving/left/failed, as the agent at http_addr sees the LAN pool.

    Raises ObserveError (with a readable message) when the agent does not answer.
    """
    try:
        listed = client_for(http_addr, access, timeout).agent.members()
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError) as err:
        raise ObserveError(_describe_failure(http_addr, err)) from None
    if not isinstance(listed, list):
        raise ObserveError(f"{http_addr}: /v1/agent/members returned {type(listed).__name__}, expected a list")
    return {m["Name"]: STATUS_NAMES.get(m.get("Status"), str(m.get("Status"))) for m in listed}


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
    try:
        me = client_for(http_addr, access, timeout).agent.self()
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError, ObserveError) as err:
        msg = str(err) if isinstance(err, ObserveError) else _describe_failure(http_addr, err)
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


@dataclass(frozen=True)
class Ring:
    """One keyring pool (WAN, or a datacenter's LAN) with keys reduced to fingerprints."""

    wan: bool
    datacenter: str
    segment: str
    keys: Mapping[str, int]
    primary: Mapping[str, int]
    num_nodes: int


@dataclass(frozen=True)
class KeyringView:
    """The keyring as /v1/operator/keyring lists it, by fingerprint. `error` set when it could not be listed."""

    rings: tuple[Ring, ...] = ()
    error: str | None = None
    empty: bool = False  # the cluster answered that no agent has a keyring (encryption not enabled)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def lan(self) -> Ring | None:
        return next((r for r in self.rings if not r.wan), self.rings[0] if self.rings else None)

    @property
    def fingerprints(self) -> dict[str, int]:
        return dict(self.lan.keys) if self.lan else {}

    @property
    def num_nodes(self) -> int:
        return self.lan.num_nodes if self.lan else 0

    @property
    def primary(self) -> tuple[str, ...]:
        return tuple(self.lan.primary) if self.lan else ()

    def holds_everywhere(self, fingerprint: str) -> bool:
        """The key is installed on every node of every listed pool."""
        return bool(self.rings) and all(r.keys.get(fingerprint, 0) >= r.num_nodes for r in self.rings)

    def describe(self, fingerprint: str | None = None) -> str:
        if self.error:
            return self.error
        parts = []
        for r in self.rings:
            pool = "WAN" if r.wan else f"{r.datacenter} LAN"
            keys = ", ".join(f"{fp}{'*' if fp in r.primary else ''} on {n}/{r.num_nodes}"
                             for fp, n in sorted(r.keys.items())) or "no keys"
            parts.append(f"{pool}: {keys}")
        text = "; ".join(parts) or "no pools listed"
        return text + (" (* = primary)" if any(r.primary for r in self.rings) else "")


def _fp(encoded: str) -> str:
    try:
        return fingerprint_of(encoded)
    except (ValueError, TypeError):
        return "unparseable-key"


def keyring(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT,
            local_only: bool = False) -> KeyringView:
    """List the keyring through the agent at http_addr, keys reduced to fingerprints.

    local_only asks that agent alone (Consul's `local-only`): the keys one node holds.
    """
    try:
        listed = client_for(http_addr, access, timeout).operator.keyring.list(local_only=local_only or None)
    except consul.ACLPermissionDenied as err:
        return KeyringView(error=_describe_failure(http_addr, err))
    except consul.ConsulException as err:
        text = str(err)
        if "encryption not enabled" in text.lower():
            return KeyringView(error=KEYRING_EMPTY, empty=True)
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        return KeyringView(error=f"{http_addr}: keyring listing failed: {first}")
    except (requests.exceptions.RequestException, ValueError, ObserveError) as err:
        msg = str(err) if isinstance(err, ObserveError) else _describe_failure(http_addr, err)
        return KeyringView(error=msg)
    if not isinstance(listed, list):
        return KeyringView(error=f"{http_addr}: /v1/operator/keyring returned {type(listed).__name__}, expected a list")
    rings = tuple(
        Ring(
            wan=bool(entry.get("WAN")),
            datacenter=entry.get("Datacenter", ""),
            segment=entry.get("Segment", ""),
            keys={_fp(k): int(v) for k, v in (entry.get("Keys") or {}).items()},
            primary={_fp(k): int(v) for k, v in (entry.get("PrimaryKeys") or {}).items()},
            num_nodes=int(entry.get("NumNodes") or 0),
        )
        for entry in listed
    )
    return KeyringView(rings=rings)


def keyring_fingerprints(http_addr: str, access: Access | None = None,
                         timeout: float = DEFAULT_TIMEOUT) -> tuple[dict[str, int], int, tuple[str, ...]]:
    """(fingerprint -> node count, NumNodes, primary fingerprints) of the LAN pool; raises ObserveError on failure."""
    view = keyring(http_addr, access, timeout)
    if view.error:
        raise ObserveError(view.error)
    return view.fingerprints, view.num_nodes, view.primary


@dataclass(frozen=True)
class ClusterView:
    """Members (as http_addr sees them), each node's own settings, and the keyring."""

    http_addr: str
    members: Mapping[str, str] | None
    members_error: str | None
    nodes: Mapping[str, NodeView] = field(default_factory=dict)
    keyring: KeyringView | None = None

    def member_status(self, name: str) -> str:
        if self.members is None:
            return "unknown"
        return self.members.get(name, "absent")

    def phases(self) -> dict[str, str]:
        return {name: view.label for name, view in self.nodes.items()}

    @property
    def reachable(self) -> bool:
        """Anything answered at all."""
        return self.members is not None or any(v.reachable for v in self.nodes.values())

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
        mem_f = pool.submit(members, http_addr, access, timeout)
        views = node_settings_many(nodes, access, timeout)
        try:
            mem: dict[str, str] | None = mem_f.result()
            mem_err = None
        except ObserveError as err:
            mem, mem_err = None, str(err)
        ring = ring_f.result() if ring_f is not None else None
    return ClusterView(http_addr=http_addr, members=mem, members_error=mem_err, nodes=views, keyring=ring)
