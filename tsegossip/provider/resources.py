"""The three Terraform resources, thin tf wrappers around operations.py."""

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

from . import operations as ops
from ..resource_schema import RESOURCES
from .schema import schema_for


def _world() -> ops.World:
    return ops.World(environ=dict(os.environ))


class _Base(Resource):
    TYPE = ""

    def __init__(self, provider=None, world: ops.World | None = None):
        self.provider = provider
        self._world = world

    @property
    def world(self) -> ops.World:
        if self._world is None:
            self._world = _world()
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
            if value not in ops.Phase.names():
                diags.add_error(f"{name} {value!r} is not a phase",
                                f"Allowed: {', '.join(ops.Phase.names())}.", path=[name])

    def plan(self, ctx: PlanContext, current: Optional[dict], planned: dict) -> Optional[dict]:
        return ops.plan_update(current, planned, set(ctx.changed_fields), self.computed())

    def upgrade(self, ctx: UpgradeContext, version: int, old: dict) -> Optional[dict]:
        # Schema version 1 is the first; older states carry the same attributes.
        return old

    def delete(self, ctx: DeleteContext, current: dict):
        return ops.forget(current, ctx.diagnostics, f"{self.TYPE} {current.get('id')}")


class _NodeRollout(_Base):
    def apply(self, diags: Diagnostics, planned: dict) -> Optional[dict]:
        raise NotImplementedError

    def create(self, ctx: CreateContext, planned: dict) -> Optional[dict]:
        return self.apply(ctx.diagnostics, planned)

    def update(self, ctx: UpdateContext, current: dict, planned: dict) -> Optional[dict]:
        new = self.apply(ctx.diagnostics, planned)
        # On refusal or failure keep what was recorded: the next plan proposes the step again.
        return new if new is not None else current

    def read(self, ctx: ReadContext, current: dict) -> Optional[dict]:
        return ops.read_nodes(current, self.world, ctx.diagnostics)


class ClientConfig(_NodeRollout):
    """tsegossip_client_config: one client group moved to `phase`, batch by batch."""

    TYPE = "tsegossip_client_config"

    def apply(self, diags: Diagnostics, planned: dict) -> Optional[dict]:
        return ops.roll_nodes(planned, self.world, diags, int(planned.get("batch_size") or 1))


class ServerParams(_NodeRollout):
    """tsegossip_server_params: the servers, one at a time (self-managed) or through TSE's console."""

    TYPE = "tsegossip_server_params"

    def apply(self, diags: Diagnostics, planned: dict) -> Optional[dict]:
        if planned.get("server_type") == "tse":
            return ops.roll_tse(planned, self.world, diags)
        if planned.get("server_type") != "self-managed":
            diags.add_error(f"server_type {planned.get('server_type')!r} is not supported",
                            "Allowed: tse, self-managed.", path=["server_type"])
            return None
        return ops.roll_nodes(planned, self.world, diags, 1)


class PhaseGate(_Base):
    """tsegossip_phase_gate: the cluster must be as the plan expects before/after a step."""

    TYPE = "tsegossip_phase_gate"

    def create(self, ctx: CreateContext, planned: dict) -> Optional[dict]:
        return ops.check_gate(planned, self.world, ctx.diagnostics)

    def update(self, ctx: UpdateContext, current: dict, planned: dict) -> Optional[dict]:
        new = ops.check_gate(planned, self.world, ctx.diagnostics)
        return new if new is not None else current

    def read(self, ctx: ReadContext, current: dict) -> Optional[dict]:
        # A gate records a check made at apply time; re-checking on every refresh would
        # turn the next step's expected changes into drift. Plan-again stays empty.
        return current


ALL = [ServerParams, ClientConfig, PhaseGate]
