"""The bindings are generated from tsegossip/resource_schema.py and must not drift from it
or from the schema the provider serves."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from tsegossip.constructs import BINDINGS, BindingError, TsegossipProvider, jsondecode_expression
from tsegossip.constructs import _cdk
from tsegossip.constructs.bindings import ClientConfigResource, encode_attributes
from tsegossip import resource_schema as attributes

from .conftest import decode_map


def test_one_binding_per_resource_type():
    assert set(BINDINGS) == set(attributes.RESOURCES)


@pytest.mark.parametrize("type_name", sorted(attributes.RESOURCES))
def test_binding_attribute_set_equals_attributes_py(type_name):
    binding = BINDINGS[type_name]
    assert binding.TYPE == type_name
    assert set(binding.ATTRIBUTES) == {a.name for a in attributes.RESOURCES[type_name]}
    assert tuple(binding.ATTRIBUTES.values()) == attributes.RESOURCES[type_name]


def _served_resources():
    """Resource classes the provider serves (hfern/tf: a Provider whose get_resources lists them)."""
    import tsegossip.provider as pkg
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        if info.name.endswith(".__main__"):  # serves the plugin on import
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # a module being written by someone else right now
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            # tf's Provider is a non-runtime Protocol: recognise an implementation by its methods
            if obj.__module__ == module.__name__ and hasattr(obj, "get_resources") and hasattr(obj, "get_model_prefix"):
                try:
                    provider = obj()
                    return provider.get_model_prefix(), provider.get_resources()
                except Exception:
                    continue
    return None


@pytest.mark.parametrize("type_name", sorted(attributes.RESOURCES))
def test_binding_attribute_set_equals_served_schema(type_name):
    served = _served_resources()
    if served is None:
        pytest.skip("tsegossip/provider does not expose a tf Provider with get_resources() yet")
    prefix, resources = served
    by_name = {}
    for klass in resources:
        name = klass.get_name()
        by_name[name if name.startswith(prefix) else f"{prefix}{name}"] = klass
    assert type_name in by_name, f"provider serves {sorted(by_name)}"
    schema = by_name[type_name].get_schema()
    assert {a.name for a in schema.attributes} == set(BINDINGS[type_name].ATTRIBUTES)


def test_provider_block_and_required_providers():
    app = _cdk.App()
    stack = _cdk.TerraformStack(app, "s")
    TsegossipProvider(stack)
    out = _cdk.Testing.synth(stack)
    assert _cdk.Testing.to_have_provider_with_properties(out, attributes.PROVIDER_NAME, {})
    import json
    doc = json.loads(out)
    assert doc["terraform"]["required_providers"][attributes.PROVIDER_NAME] == {
        "source": attributes.PROVIDER_SOURCE, "version": attributes.PROVIDER_VERSION}


@pytest.mark.parametrize("value", [
    {"a": "b"},
    {"we\"ird": "${not} %{if} \\ back é \n nl \t tab", "plain": "x"},
    {"$${": "%%{", "\\\"": "\\\\"},
    {},
])
def test_jsondecode_expression_round_trips(value):
    expr = jsondecode_expression(value)
    assert decode_map(expr) == value
    # outside the one interpolation there is no template sequence Terraform would evaluate
    body = expr[len('${jsondecode("'):-len('")}')]
    assert "${" not in body.replace("$${", "") and "%{" not in body.replace("%%{", "")


def test_fails_unknown_attribute():
    with pytest.raises(BindingError, match=r"tsegossip_client_config: unknown attribute 'encrypt'; allowed: .*batch_size"):
        encode_attributes(ClientConfigResource.TYPE, ClientConfigResource.ATTRIBUTES, {"encrypt": "x"})


def test_fails_computed_attribute_set():
    with pytest.raises(BindingError, match=r"tsegossip_client_config.observed is computed by the provider"):
        encode_attributes(ClientConfigResource.TYPE, ClientConfigResource.ATTRIBUTES, {"observed": {}})


def test_fails_missing_required_attribute():
    with pytest.raises(BindingError, match=r"missing required attribute\(s\) rollout, stack"):
        encode_attributes(ClientConfigResource.TYPE, ClientConfigResource.ATTRIBUTES, {})


def test_fails_wrong_kind():
    with pytest.raises(BindingError, match=r"tsegossip_client_config.batch_size: '2' is a str; allowed: a number"):
        encode_attributes(ClientConfigResource.TYPE, ClientConfigResource.ATTRIBUTES, {"batch_size": "2"})


# ---- how attributes reach the JSON: one sink element per stack (see bindings' docstring) ----

def _gate_values(**kw):
    values = dict(rollout="r", stack="s", when="before", http_addr="http://c:8500",
                  expected={"n-1": "plaintext"}, addresses={"n-1": "http://n-1:8500"},
                  key_env="K", key_fingerprint="0123456789ab")
    values.update(kw)
    return values


def _synth(stack) -> dict:
    import json
    return json.loads(_cdk.Testing.synth(stack))


def test_sink_emits_every_resource_as_its_binding_encodes_it():
    from tsegossip.constructs.bindings import PhaseGateResource
    app = _cdk.App()
    stack = _cdk.TerraformStack(app, "s")
    TsegossipProvider(stack)
    a = PhaseGateResource(stack, "a", _gate_values())
    b = PhaseGateResource(stack, "b", _gate_values(when="after"), depends_on=[a])
    for _ in range(2):  # a second synth of the same stack gives the same result
        gates = _synth(stack)["resource"]["tsegossip_phase_gate"]
        assert gates == {"a": dict(a.synthesized_attributes),
                         "b": {**b.synthesized_attributes, "depends_on": ["tsegossip_phase_gate.a"]}}
    assert decode_map(gates["a"]["expected"]) == {"n-1": "plaintext"}


def test_resource_add_override_still_wins_and_nested_ids_are_cdktf_logical_ids():
    from tsegossip.constructs.bindings import PhaseGateResource
    app = _cdk.App()
    stack = _cdk.TerraformStack(app, "s")
    first = PhaseGateResource(stack, "first", _gate_values())
    first.add_override("timeout_seconds", 5)
    group = _cdk.Construct(stack, "group")
    nested = PhaseGateResource(group, "gate.x", _gate_values(when="after"))
    renamed = PhaseGateResource(stack, "renamed", _gate_values())
    renamed.override_logical_id("custom")
    gates = _synth(stack)["resource"]["tsegossip_phase_gate"]
    assert gates["first"]["timeout_seconds"] == 5
    assert set(gates) == {"first", nested.friendly_unique_id, "custom"}
    assert gates[nested.friendly_unique_id]["when"] == "after" and "_" in nested.friendly_unique_id


def test_moved_resource_is_not_emitted_under_its_old_id():
    from tsegossip.constructs.bindings import PhaseGateResource
    app = _cdk.App()
    stack = _cdk.TerraformStack(app, "s")
    PhaseGateResource(stack, "new", _gate_values())
    old = PhaseGateResource(stack, "old", _gate_values())
    old.move_to_id("tsegossip_phase_gate.new")
    doc = _synth(stack)
    assert set(doc["resource"]["tsegossip_phase_gate"]) == {"new"}
    assert doc["moved"] == [{"from": "tsegossip_phase_gate.old", "to": "tsegossip_phase_gate.new"}]


def test_references_in_attributes_resolve_also_across_stacks(tmp_path):
    """Attributes holding tokens take part in cdktf's preparing pass (cross-stack outputs)."""
    from tsegossip.constructs.bindings import PhaseGateResource
    app = _cdk.App(outdir=str(tmp_path))
    one = _cdk.TerraformStack(app, "one")
    TsegossipProvider(one)
    src = PhaseGateResource(one, "src", _gate_values())
    two = _cdk.TerraformStack(app, "two")
    TsegossipProvider(two)
    local = PhaseGateResource(two, "local", _gate_values())
    PhaseGateResource(two, "dst", _gate_values(http_addr=src.attribute("verdict"), rollout=local.attribute("id")))
    app.synth()
    import json
    out = tmp_path
    dst = json.loads((out / "stacks" / "two" / "cdk.tf.json").read_text())["resource"]["tsegossip_phase_gate"]["dst"]
    assert dst["rollout"] == "${tsegossip_phase_gate.local.id}"
    assert dst["http_addr"].startswith("${data.terraform_remote_state.")
    outputs = json.loads((out / "stacks" / "one" / "cdk.tf.json").read_text())["output"]
    assert any(o["value"] == "${tsegossip_phase_gate.src.verdict}" for o in outputs.values())
