"""The typed state reads and writes exactly the dicts Terraform stores; defaults come from the schema."""

from __future__ import annotations

from dataclasses import fields

import pytest
from tf.types import Unknown

from tsegossip import schemas
from tsegossip.resource_schema import RESOURCES
from tsegossip.provider.state import GATE_TIMEOUT, ClientConfigState, GateState, NodesState, ServerParamsState, KeyringState

STATES = {s.TYPE: s for s in (ServerParamsState, ClientConfigState, GateState, KeyringState)}


@pytest.mark.parametrize("type_name", sorted(RESOURCES))
def test_fields_are_the_resource_attributes(type_name):
    assert {f.name for f in fields(STATES[type_name])} == {a.name for a in RESOURCES[type_name]}


def wire(type_name: str) -> dict:
    """A dict as Terraform sends it: every attribute, unset ones None, computed ones Unknown."""
    values = {"nodes": {"web-1": "http://web-1:8500"}, "expected": {"web-1": "enforced", "new-1": "not-joined"},
              "timeout_seconds": 30, "poll_seconds": 0.5, "batch_size": 2, "rollout": "lab", "phase": "enforced"}
    return {a.name: Unknown if a.computed else values.get(a.name) for a in RESOURCES[type_name]}


@pytest.mark.parametrize("type_name", sorted(RESOURCES))
def test_round_trip_keeps_keys_values_and_order(type_name):
    d = wire(type_name)
    out = STATES[type_name].from_dict(d).to_dict()
    assert out == d and list(out) == list(d)
    assert type(out["timeout_seconds"]) is int  # not turned into 30.0: state stays byte-identical


def test_after_an_apply_the_state_has_id_and_observed():
    state = ClientConfigState.from_dict(dict(wire("tsegossip_client_config"), stack="02-web", role="web"))
    out = state.moved({"web-1": "enforced"}).to_dict()
    assert out == dict(wire("tsegossip_client_config"), stack="02-web", role="web", id="lab/02-web/web",
                       observed={"web-1": "enforced"}, stragglers={})


def test_keys_that_are_not_attributes_are_dropped():
    state = ServerParamsState.from_dict({"role": "servers", "batch_size": 5})
    assert "batch_size" not in state.to_dict() and state.nodes_per_batch == 1


def test_unset_timeouts_are_the_rollout_schemas_defaults():
    timeouts = schemas.load("rollout")["properties"]["timeouts"]["properties"]
    assert NodesState().timeout == timeouts["batch_seconds"]["default"]
    assert ServerParamsState().tse_timeout == timeouts["tse_seconds"]["default"]
    assert NodesState().poll == timeouts["poll_seconds"]["default"]
    assert ClientConfigState().nodes_per_batch == 1
    assert GateState().timeout == GATE_TIMEOUT
    assert ClientConfigState(timeout_seconds=Unknown, batch_size=3).timeout == timeouts["batch_seconds"]["default"]
    assert ClientConfigState(batch_size=3).nodes_per_batch == 3
