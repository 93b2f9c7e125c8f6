"""The bindings are generated from tsegossip/provider/attributes.py and must not drift from it
or from the schema the provider serves."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from tsegossip.constructs import BINDINGS, BindingError, TsegossipProvider, jsondecode_expression
from tsegossip.constructs import _cdk
from tsegossip.constructs.bindings import ClientConfigResource, encode_attributes
from tsegossip.provider import attributes

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
