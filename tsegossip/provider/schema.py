"""tf schemas built from resource_schema.py (the one definition of the resources)."""

from __future__ import annotations

from tf import schema as tfschema
from tf import types as tftypes

from ..resource_schema import RESOURCES, Attribute, Kind

SCHEMA_VERSION = 1

_TYPES = {
    Kind.STRING: tftypes.String,
    Kind.NUMBER: tftypes.Number,
    Kind.BOOL: tftypes.Bool,
    Kind.MAP_STRING: lambda: tftypes.Map(tftypes.String()),
}


def tf_attribute(attr: Attribute) -> tfschema.Attribute:
    return tfschema.Attribute(
        attr.name,
        _TYPES[attr.kind](),
        description=attr.description,
        required=attr.required,
        optional=attr.optional,
        computed=attr.computed,
        sensitive=attr.sensitive,
        requires_replace=attr.requires_replace or None,
        description_kind=tfschema.TextFormat.Markdown,
    )


def schema_for(type_name: str) -> tfschema.Schema:
    return tfschema.Schema(
        version=SCHEMA_VERSION,
        attributes=[tf_attribute(a) for a in RESOURCES[type_name]],
    )
