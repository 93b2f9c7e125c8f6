"""A resource's state as a typed value, and back to the dict Terraform stores.

Terraform hands a resource a dict of its attributes (resource_schema.RESOURCES) and stores the
dict it gets back. resources.py converts at that boundary; everything behind it reads fields.
`to_dict()` gives back exactly the attributes of the resource's schema, in its order, with the
values as they came: an unset attribute stays None, a computed one not known yet stays Unknown,
a number stays the int or float Terraform sent. So `from_dict(d).to_dict() == d` for every dict
Terraform sends (it always sends every attribute), and states written before stay as they are.

What an unset attribute means is written here once: the timeouts and the batch size come from
schemas/rollout.schema.json, whose defaults the spec uses too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any, ClassVar, Mapping, TypeVar

from tf.types import Unknown

from .. import observe as obs
from .. import schemas
from ..resource_schema import RESOURCES

GATE_TIMEOUT = 60.0  # a gate's own default: the spec has no gate timeout

S = TypeVar("S", bound="_State")


@cache
def _spec_defaults() -> dict[str, Any]:
    """The defaults of the spec's timeouts and of a client group, read from the rollout schema."""
    return schemas.apply_defaults("rollout", {"timeouts": {}, "client_groups": [{}]})


def batch_timeout() -> float:
    return float(_spec_defaults()["timeouts"]["batch_seconds"])


def tse_timeout() -> float:
    return float(_spec_defaults()["timeouts"]["tse_seconds"])


def poll_interval() -> float:
    return float(_spec_defaults()["timeouts"]["poll_seconds"])


def batch_size() -> int:
    return int(_spec_defaults()["client_groups"][0]["batch_size"])


def _seconds(value: Any, default: float) -> float:
    return float(default) if value is None or value is Unknown else float(value)


@dataclass(frozen=True)
class _State:
    """Fields are the resource's attributes, named as in resource_schema. Every one may be unset
    (None); a computed one (id, observed, verdict) holds tf's Unknown until an apply sets it."""

    TYPE: ClassVar[str] = ""

    @classmethod
    def attribute_names(cls) -> list[str]:
        return [a.name for a in RESOURCES[cls.TYPE]]

    @classmethod
    def from_dict(cls: type[S], wire: Mapping[str, Any]) -> S:
        """Keys that are not attributes of the resource are dropped, as tf's state decoder drops them."""
        names = set(cls.attribute_names())
        return cls(**{k: v for k, v in wire.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.attribute_names()}

    @property
    def access(self) -> obs.Access:
        """Where the Consul token and TLS files are (names of environment variables)."""
        return obs.Access.from_attrs(vars(self))


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class NodesState(_State):
    """What tsegossip_client_config and tsegossip_server_params share: agents moved to `phase`."""

    id: str | None = None
    rollout: str | None = None
    stack: str | None = None
    previous_stack: str | None = None
    role: str | None = None
    phase: str | None = None            # a phase name; after a read, also `mixed`
    from_phase: str | None = None
    allow_jump: bool | None = None
    key_env: str | None = None
    key_fingerprint: str | None = None
    http_addr: str | None = None
    token_env: str | None = None
    cacert_env: str | None = None
    client_cert_env: str | None = None
    client_key_env: str | None = None
    timeout_seconds: float | None = None
    poll_seconds: float | None = None
    nodes: Mapping[str, str] | None = None
    config_path: str | None = None
    restart_command: str | None = None
    delivery: str | None = None         # canonical JSON of the delivery block; None: local
    down_nodes: str | None = None       # refuse (None) | skip
    observed: Mapping[str, str] | None = None
    stragglers: Mapping[str, str] | None = None
    rewrite: bool | None = None         # a rotation's configs stage: deliver every fragment, restart nothing

    @property
    def who(self) -> str:
        return f"{self.role} ({self.rollout}/{self.stack})"

    @property
    def resource_id(self) -> str:
        return f"{self.rollout}/{self.stack}/{self.role}"

    @property
    def node_addresses(self) -> dict[str, str]:
        return dict(self.nodes or {})

    @property
    def timeout(self) -> float:
        """Seconds a batch has to come back alive in its new phase."""
        return _seconds(self.timeout_seconds, batch_timeout())

    @property
    def poll(self) -> float:
        return _seconds(self.poll_seconds, poll_interval())

    @property
    def agents_joining(self) -> bool:
        """Whether these agents are not members yet (only a client group can be)."""
        return False

    @property
    def nodes_per_batch(self) -> int:
        """Servers restart one at a time; a client group says how many."""
        return 1

    @property
    def waits_for_raft(self) -> bool:
        """Whether a batch counts as back only once its agents know the raft leader (servers do)."""
        return False

    @property
    def skips_down_nodes(self) -> bool:
        return self.down_nodes == "skip"

    def moved(self, observed: Mapping[str, str], stragglers: Mapping[str, str] | None = None) -> NodesState:
        """The state after an apply: the resource's id, the phases seen live, the nodes skipped as down."""
        return replace(self, id=self.resource_id, observed=dict(observed), stragglers=dict(stragglers or {}))


@dataclass(frozen=True)
class ServerParamsState(NodesState):
    TYPE: ClassVar[str] = "tsegossip_server_params"

    server_type: str | None = None
    instance_id: str | None = None
    region: str | None = None

    @property
    def waits_for_raft(self) -> bool:
        # An alive gossip member may not have heard from the raft leader yet: restarting the next
        # server then can cost the quorum. (TSE servers are rolled by TSE, not by roll_nodes.)
        return True

    @property
    def tse_timeout(self) -> float:
        """Seconds TSE has to run again with its servers in the new phase."""
        return _seconds(self.timeout_seconds, tse_timeout())


@dataclass(frozen=True)
class ClientConfigState(NodesState):
    TYPE: ClassVar[str] = "tsegossip_client_config"

    batch_size: float | None = None
    joining: bool | None = None

    @property
    def agents_joining(self) -> bool:
        return bool(self.joining)

    @property
    def nodes_per_batch(self) -> int:
        return max(1, int(self.batch_size or batch_size()))


@dataclass(frozen=True)
class GateState(_State):
    """tsegossip_phase_gate: the cluster must be as the plan expects `when` (before/after) a stack."""

    TYPE: ClassVar[str] = "tsegossip_phase_gate"

    id: str | None = None
    rollout: str | None = None
    stack: str | None = None
    when: str | None = None
    previous_stack: str | None = None
    http_addr: str | None = None
    expected: Mapping[str, str] | None = None  # node -> phase name or `not-joined`
    addresses: Mapping[str, str] | None = None
    present_phases: str | None = None      # before-gate: comma-separated phases before the step
    coexisting_phases: str | None = None   # before-gate: comma-separated phases during the step
    servers_unlisted: bool | None = None   # TSE servers: server members are accounted for
    keyring_proven_by: str | None = None   # a rotation stage's tsegossip_keyring lists and proves the keyring
    may_be_down: Mapping[str, str] | None = None  # node -> role, for roles with down_nodes = skip
    unmanaged: Mapping[str, str] | None = None  # member -> phase name or `observe`
    repairing: Mapping[str, str] | None = None  # a repair's before-gate: straggler -> phase its API shows now
    key_env: str | None = None
    key_fingerprint: str | None = None
    token_env: str | None = None
    cacert_env: str | None = None
    client_cert_env: str | None = None
    client_key_env: str | None = None
    timeout_seconds: float | None = None
    verdict: str | None = None

    @property
    def resource_id(self) -> str:
        return f"{self.rollout}/{self.stack}/{self.when}"

    @property
    def timeout(self) -> float:
        return _seconds(self.timeout_seconds, GATE_TIMEOUT)

    def passed(self, verdict: str) -> GateState:
        return replace(self, id=self.resource_id, verdict=verdict)


@dataclass(frozen=True)
class KeyringState(_State):
    """tsegossip_keyring: one keyring change of a rotation stage, and what makes the stage done."""

    TYPE: ClassVar[str] = "tsegossip_keyring"

    id: str | None = None
    rollout: str | None = None
    stack: str | None = None
    previous_stack: str | None = None
    operation: str | None = None
    key_env: str | None = None
    key_fingerprint: str | None = None
    held_before: str | None = None
    primary_before: str | None = None
    held_after: str | None = None
    primary_after: str | None = None
    absent_after: str | None = None
    http_addr: str | None = None
    members: Mapping[str, str] | None = None
    may_be_down: Mapping[str, str] | None = None
    keyring_files: Mapping[str, str] | None = None
    await_members: str | None = None
    stragglers: Mapping[str, str] | None = None
    token_env: str | None = None
    cacert_env: str | None = None
    client_cert_env: str | None = None
    client_key_env: str | None = None
    timeout_seconds: float | None = None
    poll_seconds: float | None = None
    verdict: str | None = None

    @property
    def resource_id(self) -> str:
        return f"{self.rollout}/{self.stack}/keyring"

    @property
    def who(self) -> str:
        return f"keyring ({self.rollout}/{self.stack})"

    @property
    def timeout(self) -> float:
        return _seconds(self.timeout_seconds, batch_timeout())

    @property
    def poll(self) -> float:
        return _seconds(self.poll_seconds, poll_interval())

    @staticmethod
    def _list(text: str | None) -> tuple[str, ...]:
        return tuple(f for f in (text or "").split(",") if f)

    @property
    def conditions_before(self) -> tuple[tuple[str, str], ...]:
        """(want, fingerprint) pairs: want is installed | primary (observe.keyrings.WANTS)."""
        return tuple([("installed", f) for f in self._list(self.held_before)]
                     + [("primary", f) for f in self._list(self.primary_before)])

    @property
    def conditions_after(self) -> tuple[tuple[str, str], ...]:
        return tuple([("installed", f) for f in self._list(self.held_after)]
                     + [("primary", f) for f in self._list(self.primary_after)]
                     + [("removed", f) for f in self._list(self.absent_after)])

    @property
    def awaited(self) -> tuple[str, ...]:
        return self._list(self.await_members)

    def done(self, verdict: str, stragglers: Mapping[str, str] | None = None) -> KeyringState:
        return replace(self, id=self.resource_id, verdict=verdict, stragglers=dict(stragglers or {}))
