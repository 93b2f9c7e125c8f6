"""The served schemas are resource_schema.py, attribute for attribute, and go over the plugin protocol."""

from __future__ import annotations

import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.provider import ProviderServicer

from tsegossip.resource_schema import RESOURCES, Kind
from tsegossip.provider.provider import TsegossipProvider
from tsegossip.provider.resources import ALL

TF_TYPE = {Kind.STRING: b'"string"', Kind.NUMBER: b'"number"', Kind.BOOL: b'"bool"',
           Kind.MAP_STRING: b'["map","string"]'}


@pytest.mark.parametrize("klass", ALL, ids=lambda k: k.TYPE)
def test_schema_built_from_attributes(klass):
    served = {a.name: a for a in klass.get_schema().attributes}
    assert list(served) == [a.name for a in RESOURCES[klass.TYPE]]
    for spec in RESOURCES[klass.TYPE]:
        a = served[spec.name]
        assert a.type.tf_type() == TF_TYPE[spec.kind]
        assert (bool(a.required), bool(a.optional), bool(a.computed), bool(a.sensitive), bool(a.requires_replace)) == (
            spec.required, spec.optional, spec.computed, spec.sensitive, spec.requires_replace)
        assert a.description == spec.description and a.description


def test_get_provider_schema_over_protocol_types():
    resp = ProviderServicer(TsegossipProvider()).GetProviderSchema(pb.GetProviderSchema.Request(), None)
    assert set(resp.resource_schemas) == set(RESOURCES)
    assert not resp.diagnostics
    attrs = {a.name: a for a in resp.resource_schemas["tsegossip_client_config"].block.attributes}
    assert attrs["nodes"].type == b'["map","string"]' and attrs["observed"].computed
