"""The three Terraform resources: where Terraform's dicts become typed state (state.py) and back.

Apply and read hand typed state to rollout, tse_servers, gate and live; plan, upgrade, delete and
validate are Terraform bookkeeping and work on the dicts themselves.
"""

from __future__ import annotations

import os
from typing import Optional

from tf.iface import (
    CreateContext,
    DeleteContext,
    PlanContext,
    ReadContext,
    Resource,
    UpdateContext,
    UpgradeContext,
)
from tf.types import Unknown
from tf.utils import Diagnostics

from ..phases import Phase
from ..resource_schema import RESOURCES
from .gate import check_gate
from .keyring_stage import run_keyring_stage
from .live import refresh
from .rollout import roll_nodes
from .schema import schema_for
from .state import ClientConfigState, GateState, KeyringState, NodesState, ServerParamsState
from .tse_servers import roll_tse
from .world import World


class _Base(Resource):
    TYPE = ""

    def __init__(self, provider=None, world: World | None = None):
        self.provider = provider
        self._world = world

    @property
    def world(self) -> World:
        if self._world is None:
            self._world = World(environ=dict(os.environ))
        return self._world

    @classmethod
    def get_name(cls) -> str:
        return cls.TYPE.removeprefix("tsegossip_")

    @classmethod
    def get_schema(cls):
        return schema_for(cls.TYPE)

    @classmethod
    def computed(cls) -> set[str]:
        return {a.name for a in RESOURCES[cls.TYPE] if a.computed}

    def validate(self, diags: Diagnostics, type_name: str, config: dict):
        super().validate(diags, type_name, config)
        for name in ("phase", "from_phase"):
            value = config.get(name)
            if value is None or value is Unknown or name not in {a.name for a in RESOURCES[self.TYPE]}:
                continue
            if value not in Phase.names():
                diags.add_error(f"{name} {value!r} is not a phase",
                                f"Allowed: {', '.join(Phase.names())}.", path=[name])

    def plan(self, ctx: PlanContext, current: Optional[dict], planned: dict) -> Optional[dict]:
        """A computed attribute that depends on a changed input is not known until apply."""
        computed = self.computed()
        if current is None or not set(ctx.changed_fields) - computed:
            return planned
        return {**planned, **{name: Unknown for name in computed - {"id"}}}

    def upgrade(self, ctx: UpgradeContext, version: int, old: dict) -> Optional[dict]:
        # Schema version 1 is the first; older states carry the same attributes.
        return old

    def delete(self, ctx: DeleteContext, current: dict):
        """Drop the resource from state, touch no agent, and say so."""
        where = f" (last seen: {current['phase']})" if current.get("phase") else ""
        ctx.diagnostics.add_warning(
            f"{self.TYPE} {current.get('id')} forgotten; agents keep their gossip settings",
            f"tsegossip never downgrades on destroy: the agents stay in the phase they are in{where}. "
            "To go back, apply a step whose phase is lower.",
        )
        return None


class _NodeRollout(_Base):
    STATE: type[NodesState] = NodesState

    def apply(self, diags: Diagnostics, planned: NodesState) -> Optional[NodesState]:
        raise NotImplementedError

    def _apply(self, diags: Diagnostics, planned: dict) -> Optional[dict]:
        new = self.apply(diags, self.STATE.from_dict(planned))
        return new.to_dict() if new is not None else None

    def create(self, ctx: CreateContext, planned: dict) -> Optional[dict]:
        return self._apply(ctx.diagnostics, planned)

    def update(self, ctx: UpdateContext, current: dict, planned: dict) -> Optional[dict]:
        new = self._apply(ctx.diagnostics, planned)
        # On refusal or failure keep what was recorded: the next plan proposes the step again.
        return new if new is not None else current

    def read(self, ctx: ReadContext, current: dict) -> Optional[dict]:
        new = refresh(self.STATE.from_dict(current), self.world, ctx.diagnostics)
        return new.to_dict() if new is not None else current


class ClientConfig(_NodeRollout):
    """tsegossip_client_config: one client group moved to `phase`, batch by batch."""

    TYPE = "tsegossip_client_config"
    STATE = ClientConfigState

    def apply(self, diags: Diagnostics, planned: ClientConfigState) -> Optional[ClientConfigState]:
        return roll_nodes(planned, self.world, diags)


class ServerParams(_NodeRollout):
    """tsegossip_server_params: the servers, one at a time (self-managed) or through TSE's console."""

    TYPE = "tsegossip_server_params"
    STATE = ServerParamsState

    def apply(self, diags: Diagnostics, planned: ServerParamsState) -> Optional[ServerParamsState]:
        if planned.server_type == "tse":
            return roll_tse(planned, self.world, diags)
        if planned.server_type != "self-managed":
            diags.add_error(f"server_type {planned.server_type!r} is not supported",
                            "Allowed: tse, self-managed.", path=["server_type"])
            return None
        return roll_nodes(planned, self.world, diags)


class PhaseGate(_Base):
    """tsegossip_phase_gate: the cluster must be as the plan expects before/after a step."""

    TYPE = "tsegossip_phase_gate"

    def _check(self, diags: Diagnostics, planned: dict) -> Optional[dict]:
        new = check_gate(GateState.from_dict(planned), self.world, diags)
        return new.to_dict() if new is not None else None

    def create(self, ctx: CreateContext, planned: dict) -> Optional[dict]:
        return self._check(ctx.diagnostics, planned)

    def update(self, ctx: UpdateContext, current: dict, planned: dict) -> Optional[dict]:
        new = self._check(ctx.diagnostics, planned)
        return new if new is not None else current

    def read(self, ctx: ReadContext, current: dict) -> Optional[dict]:
        # A gate records a check made at apply time; re-checking on every refresh would
        # turn the next step's expected changes into drift. Plan-again stays empty.
        return current


class Keyring(_Base):
    """tsegossip_keyring: one keyring change of a key rotation (install, use, remove), proven on the live keyring."""

    TYPE = "tsegossip_keyring"

    def _run(self, diags: Diagnostics, planned: dict) -> Optional[dict]:
        new = run_keyring_stage(KeyringState.from_dict(planned), self.world, diags)
        return new.to_dict() if new is not None else None

    def create(self, ctx: CreateContext, planned: dict) -> Optional[dict]:
        return self._run(ctx.diagnostics, planned)

    def update(self, ctx: UpdateContext, current: dict, planned: dict) -> Optional[dict]:
        new = self._run(ctx.diagnostics, planned)
        return new if new is not None else current

    def read(self, ctx: ReadContext, current: dict) -> Optional[dict]:
        # A stage records a change made at apply time; the next stage moves the keyring on, which is
        # not drift of this one.
        return current

    def delete(self, ctx: DeleteContext, current: dict):
        ctx.diagnostics.add_warning(
            f"tsegossip_keyring {current.get('id')} forgotten; the keyring is left as it is",
            "tsegossip never changes a keyring on destroy. To go back before remove, deploy the rotation's undo stages.")
        return None


ALL = [ServerParams, ClientConfig, PhaseGate, Keyring]
