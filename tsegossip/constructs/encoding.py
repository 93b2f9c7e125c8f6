"""Attribute encoding for the tsegossip resources, without cdktf (so a plain JSON writer,
the benchmark's baseline, produces byte-identical attributes).

Per-node maps never cross the jsii boundary value by value: a map(string) attribute is
emitted as ONE string, the Terraform expression `${jsondecode("<json>")}`, which
Terraform evaluates back into the map (measured with Terraform 1.0.3). A naive map
attribute of 10,000 entries costs an order of magnitude more synth time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..provider import attributes as schema
from ..provider.attributes import Attribute, Kind

ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    type_name: {a.name: a for a in attrs} for type_name, attrs in schema.RESOURCES.items()
}


class BindingError(ValueError):
    """An attribute the provider's schema does not accept; the message names it and what is allowed."""


def hcl_string_literal(text: str) -> str:
    """`text` as the body of an HCL quoted string: backslash and quote escaped, and the
    template introducers `${` / `%{` doubled so Terraform reads them literally."""
    return (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("${", "$${")
        .replace("%{", "%%{")
    )


def jsondecode_expression(value: Mapping[str, str]) -> str:
    """A map as one Terraform expression string that evaluates back to the map."""
    text = json.dumps(dict(value), separators=(",", ":"), ensure_ascii=True)
    return '${jsondecode("' + hcl_string_literal(text) + '")}'


def _encode(resource_type: str, attr: Attribute, value: Any) -> Any:
    where = f"{resource_type}.{attr.name}"
    kind = attr.kind
    if kind is Kind.STRING:
        if not isinstance(value, str):
            raise BindingError(f"{where}: {value!r} is a {type(value).__name__}; allowed: a string")
        return value
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise BindingError(f"{where}: {value!r} is a {type(value).__name__}; allowed: true or false")
        return value
    if kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BindingError(f"{where}: {value!r} is a {type(value).__name__}; allowed: a number")
        return value
    if kind is Kind.MAP_STRING:
        if not isinstance(value, Mapping):
            raise BindingError(f"{where}: {type(value).__name__} given; allowed: a mapping of string to string")
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise BindingError(f"{where}: entry {k!r} → {v!r} is not string → string; allowed: a mapping of string to string")
        return jsondecode_expression(value)
    raise BindingError(f"{where}: kind {kind} has no encoding")  # pragma: no cover - schema grew a kind


def encode_attributes(resource_type: str, attrs: Mapping[str, Attribute], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check `values` against the schema and return the synthesized attribute dict (None = unset)."""
    settable = sorted(n for n, a in attrs.items() if a.required or a.optional)
    out: dict[str, Any] = {}
    for name, value in values.items():
        attr = attrs.get(name)
        if attr is None:
            raise BindingError(f"{resource_type}: unknown attribute {name!r}; allowed: {', '.join(settable)}")
        if not (attr.required or attr.optional):
            raise BindingError(f"{resource_type}.{name} is computed by the provider and cannot be set")
        if value is None:
            continue
        out[name] = _encode(resource_type, attr, value)
    missing = [n for n, a in attrs.items() if a.required and n not in out]
    if missing:
        raise BindingError(f"{resource_type}: missing required attribute(s) {', '.join(missing)}")
    return out


