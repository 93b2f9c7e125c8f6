"""Props of the tsegossip constructs: flat frozen dataclasses in Consul's and the planner's
words, checked when built (what is wrong, the value, what is allowed). No cdktf here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..delivery import Delivery, DeliveryError, Method
from ..expectations import NOT_JOINED, addresses_by_node, allowed_labels, phases_by_node
from ..keys import UNKNOWN_FINGERPRINT, GossipKey
from ..phases import Phase
from ..planner import SERVERS, Step
from ..spec import Rollout, ServerType

GATE_WHEN = ("before", "after")
SERVER_TYPES = tuple(t.value for t in ServerType)
_FINGERPRINT = re.compile(r"^[0-9a-f]{12}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMPTY: Mapping[str, str] = MappingProxyType({})


class PropsError(ValueError):
    """Construct props that cannot describe a safe step: what is wrong, the value, what is allowed."""


# ---- field checks ------------------------------------------------------------------------

def _fail(owner: str, name: str, message: str) -> PropsError:
    return PropsError(f"{owner}.{name}: {message}")


def _phase(owner: str, name: str, value: Any) -> Phase:
    if isinstance(value, Phase):
        return value
    try:
        return Phase(value)
    except ValueError:
        raise _fail(owner, name, f"{value!r} is not a phase; allowed: {', '.join(Phase.names())}") from None


def _text(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise _fail(owner, name, f"{value!r} is not allowed; a non-empty string is required")


def _env_name(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not _ENV.match(value):
        raise _fail(owner, name, f"{value!r} is not an environment variable name; allowed: [A-Za-z_][A-Za-z0-9_]*")


def _fingerprint(owner: str, value: Any) -> None:
    if isinstance(value, GossipKey):
        raise _fail(owner, "key_fingerprint", "a GossipKey was given; pass key.fingerprint, the key never enters synthesized config")
    if value == UNKNOWN_FINGERPRINT:  # synthesized with no key for review: the provider refuses to apply it
        return
    if not isinstance(value, str) or not _FINGERPRINT.match(value):
        shown = "<12 hex digits expected; value not shown>" if isinstance(value, str) and len(value) > 16 else repr(value)
        raise _fail(owner, "key_fingerprint", f"{shown} is not a key fingerprint; allowed: 12 lowercase hex digits (GossipKey.fingerprint) or \"unknown\"")


def _seconds(owner: str, name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _fail(owner, name, f"{value!r} is out of range; allowed: a number > 0")


def _node_map(owner: str, name: str, value: Any, *, required: bool, what: str = "http_addr") -> Mapping[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise _fail(owner, name, f"{type(value).__name__} given; allowed: a mapping of node name → {what}")
    if required and not value:
        raise _fail(owner, name, f"no nodes given (empty {name}); at least one node name → {what} is required")
    for k, v in value.items():
        if not isinstance(k, str) or not k or not isinstance(v, str) or not v:
            raise _fail(owner, name, f"entry {k!r} → {v!r} is not allowed; node name and {what} are non-empty strings")
    return MappingProxyType(dict(value))


def _move(owner: str, before: Phase, after: Phase, allow_jump: bool | None, who: str) -> None:
    """One phase per step; allow_jump is None where jumping is never allowed (clients)."""
    if abs(before.rank - after.rank) > 1 and not allow_jump:
        allowed = ", ".join(p.value for p in Phase if abs(p.rank - before.rank) <= 1)
        hint = ", or allow_jump=True for the direct strategy's servers-only step" if allow_jump is not None else ""
        raise _fail(owner, "phase", f"{who} from {before} to {after} skips a phase; allowed: {allowed} "
                                    f"(one phase per step){hint}")


def _delivery(owner: str, value: Any) -> Delivery | None:
    """A role's delivery as a value: a Delivery, the spec's block (a mapping), or None for local."""
    if value is None or isinstance(value, Delivery):
        return value
    if isinstance(value, Mapping):
        try:
            return Delivery.from_doc(value, f"{owner}.delivery")
        except DeliveryError as err:
            raise PropsError(str(err)) from None
    raise _fail(owner, "delivery", f"{type(value).__name__} given; allowed: a Delivery, a delivery block "
                                   "(mapping) or None (local)")


def _delivery_attribute(value: Delivery | None) -> str | None:
    """Local delivery is the provider's default: no attribute, so stacks without a delivery block
    synthesize as before."""
    return None if value is None or value.method is Method.LOCAL else value.to_json()


DOWN_NODES = ("refuse", "skip")


def _down_nodes(owner: str, value: Any) -> str | None:
    """The attribute: None for refuse, the provider's default (stacks without skip synthesize as before)."""
    if value not in DOWN_NODES:
        raise _fail(owner, "down_nodes", f"{value!r} is not allowed; allowed: {', '.join(DOWN_NODES)}")
    return None if value == "refuse" else value


def _set(obj: Any, **values: Any) -> None:
    for k, v in values.items():
        object.__setattr__(obj, k, v)


@dataclass(frozen=True, kw_only=True)
class _Common:
    rollout: str
    """The rollout spec's name."""
    stack: str
    """The stack (plan step) the resource belongs to."""
    key_env: str
    """Environment variable holding the gossip key at apply time; the key never enters config or state."""
    key_fingerprint: str
    """GossipKey.fingerprint of the key the plan was made with; apply refuses a different key."""
    http_addr: str
    """Consul HTTP API used to observe the cluster."""
    previous_stack: str | None = None
    """default: none (the first step); named in the error when the cluster is not ready for this step."""
    token_env: str | None = None
    """default: the provider reads CONSUL_HTTP_TOKEN."""
    cacert_env: str | None = None
    """default: the provider reads CONSUL_CACERT."""
    client_cert_env: str | None = None
    """default: the provider reads CONSUL_CLIENT_CERT."""
    client_key_env: str | None = None
    """default: the provider reads CONSUL_CLIENT_KEY."""
    timeout_seconds: float | None = None
    """default: the provider's (the rollout schema's timeouts for a batch or TSE, 60 s for a gate)."""

    def _check_common(self) -> None:
        owner = type(self).__name__
        for name in ("rollout", "stack", "http_addr"):
            _text(owner, name, getattr(self, name))
        _text(owner, "previous_stack", self.previous_stack, optional=True)
        _env_name(owner, "key_env", self.key_env)
        for name in ("token_env", "cacert_env", "client_cert_env", "client_key_env"):
            _env_name(owner, name, getattr(self, name), optional=True)
        _fingerprint(owner, self.key_fingerprint)
        _seconds(owner, "timeout_seconds", self.timeout_seconds)

    def _common_attributes(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout,
            "stack": self.stack,
            "previous_stack": self.previous_stack,
            "key_env": self.key_env,
            "key_fingerprint": self.key_fingerprint,
            "http_addr": self.http_addr,
            "token_env": self.token_env,
            "cacert_env": self.cacert_env,
            "client_cert_env": self.client_cert_env,
            "client_key_env": self.client_key_env,
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class GossipServerParamsProps(_Common):
    """The server parameter set of one step."""

    server_type: str
    """`tse` (parameters saved in TSE's console) or `self-managed` (a fragment per server node)."""
    phase: Phase | str
    """Consul's encrypt / encrypt_verify_incoming / encrypt_verify_outgoing follow from it."""
    from_phase: Phase | str
    """The phase the servers are in before the step."""
    allow_jump: bool = False
    """default: false, the servers move one phase; true only for the direct strategy's servers step."""
    instance_id: str | None = None
    """TSE instance id (required for tse)."""
    region: str | None = None
    """Tencent Cloud region (required for tse)."""
    nodes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """Self-managed server nodes: name → HTTP API address (required for self-managed)."""
    config_path: str | None = None
    """Self-managed: where each node's fragment is written (required for self-managed)."""
    restart_command: str | None = None
    """Self-managed: the command restarting one node (required for self-managed)."""
    delivery: Delivery | Mapping[str, Any] | None = None
    """Self-managed: how each fragment reaches its server's host. default: local (on the runner)."""
    down_nodes: str = "refuse"
    """Self-managed: refuse (default) or skip a server that is down when the step starts."""
    rewrite: bool = False
    """default: false; true for a key rotation's configs stage: every fragment delivered again with the key in
    key_env, nothing restarted (phase and from_phase the same keyed phase)."""
    poll_seconds: float | None = None
    """default: the provider's (1 s)."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._check_common()
        if self.server_type not in SERVER_TYPES:
            raise _fail(owner, "server_type", f"{self.server_type!r} is not allowed; allowed: {', '.join(SERVER_TYPES)}")
        _set(self, phase=_phase(owner, "phase", self.phase), from_phase=_phase(owner, "from_phase", self.from_phase))
        if not isinstance(self.allow_jump, bool):
            raise _fail(owner, "allow_jump", f"{self.allow_jump!r} is not allowed; allowed: true or false")
        _move(owner, self.from_phase, self.phase, self.allow_jump, "servers")
        _seconds(owner, "poll_seconds", self.poll_seconds)
        if self.server_type == ServerType.TSE.value:
            _text(owner, "instance_id", self.instance_id)
            _text(owner, "region", self.region)
            nodes = _node_map(owner, "nodes", self.nodes, required=False)
        else:
            nodes = _node_map(owner, "nodes", self.nodes, required=True)
            _text(owner, "config_path", self.config_path)
            _text(owner, "restart_command", self.restart_command)
        _set(self, nodes=nodes, delivery=_delivery(owner, self.delivery))
        _down_nodes(owner, self.down_nodes)

    def attributes(self) -> dict[str, Any]:
        return {
            **self._common_attributes(),
            "role": SERVERS,
            "server_type": self.server_type,
            "phase": self.phase.value,
            "from_phase": self.from_phase.value,
            "allow_jump": True if self.allow_jump else None,
            "rewrite": True if self.rewrite else None,
            "instance_id": self.instance_id,
            "region": self.region,
            "nodes": self.nodes or None,
            "config_path": self.config_path,
            "restart_command": self.restart_command,
            "delivery": _delivery_attribute(self.delivery),
            "down_nodes": _down_nodes(type(self).__name__, self.down_nodes),
            "poll_seconds": self.poll_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class GossipClientConfigProps(_Common):
    """One client group's gossip fragment, rolled out over all its nodes."""

    group: str
    """The client group's name (the resource's role)."""
    phase: Phase | str
    """The phase the group is in after the step."""
    from_phase: Phase | str
    """The phase the group is in before the step (for a joining group: the spec's configured phase)."""
    nodes: Mapping[str, str]
    """Node name → that agent's Consul HTTP API address; at least one."""
    config_path: str
    """Where each node's gossip fragment is written; template with {node}, {http_addr}."""
    restart_command: str
    """The command restarting one node; template with {node}, {config_path}, {http_addr}."""
    batch_size: int = 1
    """default: 1, nodes restart one at a time."""
    delivery: Delivery | Mapping[str, Any] | None = None
    """How each fragment reaches its node's host. default: local (on the runner)."""
    down_nodes: str = "refuse"
    """refuse (default) or skip a node that is down when the step starts (it is recorded as a straggler)."""
    joining: bool = False
    """default: false; true when the agents have not joined yet (they are started, not required alive before)."""
    repair: bool = False
    """default: false; true for a repair of stragglers (tsegossip/repairplan.py): the nodes may skip phases,
    each going straight to its group's phase (a straggler two phases away is already apart from the cluster)."""
    rewrite: bool = False
    """default: false; true for a key rotation's configs stage: every fragment delivered again with the key in
    key_env, nothing restarted (phase and from_phase the same keyed phase)."""
    poll_seconds: float | None = None
    """default: the provider's (1 s)."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._check_common()
        _text(owner, "group", self.group)
        if not isinstance(self.repair, bool):
            raise _fail(owner, "repair", f"{self.repair!r} is not allowed; allowed: true or false")
        if self.group == SERVERS:
            raise _fail(owner, "group", f"{self.group!r} names the servers; a client group has its own name")
        _set(self, phase=_phase(owner, "phase", self.phase), from_phase=_phase(owner, "from_phase", self.from_phase))
        if not isinstance(self.joining, bool):
            raise _fail(owner, "joining", f"{self.joining!r} is not allowed; allowed: true or false")
        if not self.joining and not self.repair:
            _move(owner, self.from_phase, self.phase, None, f"client group {self.group}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise _fail(owner, "batch_size", f"{self.batch_size!r} is out of range; allowed: an integer >= 1")
        _set(self, nodes=_node_map(owner, "nodes", self.nodes, required=True))
        _text(owner, "config_path", self.config_path)
        _text(owner, "restart_command", self.restart_command)
        _seconds(owner, "poll_seconds", self.poll_seconds)
        _set(self, delivery=_delivery(owner, self.delivery))
        _down_nodes(owner, self.down_nodes)

    def attributes(self) -> dict[str, Any]:
        return {
            **self._common_attributes(),
            "role": self.group,
            "phase": self.phase.value,
            "from_phase": self.from_phase.value,
            "batch_size": self.batch_size,
            "joining": True if self.joining else None,
            "allow_jump": True if self.repair else None,
            "rewrite": True if self.rewrite else None,
            "nodes": self.nodes,
            "config_path": self.config_path,
            "restart_command": self.restart_command,
            "delivery": _delivery_attribute(self.delivery),
            "down_nodes": _down_nodes(type(self).__name__, self.down_nodes),
            "poll_seconds": self.poll_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class PhaseGateProps(_Common):
    """What must hold before or after a step: every listed node alive and in its phase."""

    when: str
    """`before` (checked before any restart) or `after` (once the step is done)."""
    expected: Mapping[str, Phase | str | None]
    """Node name → the phase it must be in; None or `not-joined` for nodes that need not be members yet."""
    addresses: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """default: none; node name → HTTP API address, to read each agent's own settings."""
    present: tuple[Phase | str, ...] = ()
    """default: none (no accounting); before-gate: the phases every role is in before the step."""
    coexisting: tuple[Phase | str, ...] = ()
    """default: none; before-gate: the phases that coexist during the step (the proof's)."""
    servers_unlisted: bool = False
    """default: false; true when the servers are TSE-managed: a server member is theirs, not unlisted."""
    unmanaged: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """default: none; before-gate: member handled elsewhere → its phase, or `observe` (its address in addresses)."""
    may_be_down: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """default: none; node → role for roles with down_nodes = skip: such a node may be down."""
    repairing: Mapping[str, Phase | str] = field(default_factory=lambda: _EMPTY)
    """default: none; a repair's before-gate: straggler → the phase its own API must show now (its address in
    addresses); it need not be an alive member, it is what the repair moves."""
    keyring_proven_by: str | None = None
    """default: none (the gate lists the keyring); a rotation's keyring stage: the tsegossip_keyring resource of
    the stack, whose conditions before and after include the key the gate would check."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._check_common()
        _set(self, present=tuple(_phase(owner, "present", p) for p in self.present),
             coexisting=tuple(_phase(owner, "coexisting", p) for p in self.coexisting))
        if not isinstance(self.servers_unlisted, bool):
            raise _fail(owner, "servers_unlisted", f"{self.servers_unlisted!r} is not allowed; allowed: true or false")
        if self.keyring_proven_by is not None and not (isinstance(self.keyring_proven_by, str)
                                                       and self.keyring_proven_by.startswith("tsegossip_keyring.")):
            raise _fail(owner, "keyring_proven_by", f"{self.keyring_proven_by!r} is not allowed; allowed: none, or "
                                                    "a tsegossip_keyring resource address (tsegossip_keyring.NAME)")
        if self.when not in GATE_WHEN:
            raise _fail(owner, "when", f"{self.when!r} is not allowed; allowed: {', '.join(GATE_WHEN)}")
        if not isinstance(self.expected, Mapping):
            raise _fail(owner, "expected", f"{type(self.expected).__name__} given; allowed: a mapping of node name → phase")
        if not self.expected:
            raise _fail(owner, "expected", "no nodes given (empty expected); at least one node name → phase is required")
        allowed = allowed_labels()
        expected: dict[str, str] = {}
        for node, phase in self.expected.items():
            if not isinstance(node, str) or not node:
                raise _fail(owner, "expected", f"node name {node!r} is not allowed; a non-empty string is required")
            if phase is None:
                expected[node] = NOT_JOINED
            elif isinstance(phase, Phase):
                expected[node] = phase.value
            elif phase in allowed:
                expected[node] = phase
            else:
                raise _fail(owner, "expected", f"node {node}: {phase!r} is not a phase; allowed: {', '.join(allowed)}")
        unmanaged = _node_map(owner, "unmanaged", self.unmanaged, required=False, what="phase or observe")
        for node, label in unmanaged.items():
            if label not in (*Phase.names(), "observe"):
                raise _fail(owner, "unmanaged", f"node {node}: {label!r} is not allowed; allowed: "
                                                f"{', '.join(Phase.names())}, observe")
        repairing: dict[str, str] = {}
        for node, phase in dict(self.repairing or {}).items():
            if not isinstance(node, str) or not node or node in expected:
                raise _fail(owner, "repairing", f"node {node!r}: a straggler is a non-empty name not in expected")
            repairing[node] = _phase(owner, f"repairing[{node}]", phase).value
        addresses = _node_map(owner, "addresses", self.addresses, required=False)
        stray = [n for n in addresses if n not in expected and n not in unmanaged and n not in repairing]
        if stray:
            raise _fail(owner, "addresses", f"{', '.join(sorted(stray)[:5])} not in expected; addresses are for expected nodes only")
        may_be_down = _node_map(owner, "may_be_down", self.may_be_down, required=False, what="role")
        _set(self, expected=MappingProxyType(expected), addresses=addresses, unmanaged=unmanaged,
             may_be_down=may_be_down, repairing=MappingProxyType(repairing))

    def attributes(self) -> dict[str, Any]:
        common = self._common_attributes()
        return {
            "rollout": common["rollout"],
            "stack": common["stack"],
            "when": self.when,
            "previous_stack": common["previous_stack"],
            "http_addr": common["http_addr"],
            "expected": self.expected,
            "addresses": self.addresses or None,
            "present_phases": ",".join(p.value for p in self.present) or None,
            "coexisting_phases": ",".join(p.value for p in self.coexisting) or None,
            "servers_unlisted": True if self.servers_unlisted else None,
            "keyring_proven_by": self.keyring_proven_by,
            "unmanaged": self.unmanaged or None,
            "may_be_down": self.may_be_down or None,
            "repairing": dict(self.repairing) or None,
            "key_env": common["key_env"],
            "key_fingerprint": common["key_fingerprint"],
            "token_env": common["token_env"],
            "cacert_env": common["cacert_env"],
            "client_cert_env": common["client_cert_env"],
            "client_key_env": common["client_key_env"],
            "timeout_seconds": common["timeout_seconds"],
        }


def expectations(r: Rollout, step: Step) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Node name → phase before and after the step, and node name → HTTP address.

    TSE servers are not listed (TSE does not expose its nodes); their phase is checked
    through the server params resource instead.
    """
    return phases_by_node(r, step.before), phases_by_node(r, step.after), addresses_by_node(r)
