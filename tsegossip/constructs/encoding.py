"""Attribute encoding for the tsegossip resources, without cdktf (so a plain JSON writer,
the benchmark's baseline, produces byte-identical attributes).

Per-node maps never cross the jsii boundary value by value. A map(string) attribute is
emitted as ONE string that Terraform evaluates back into the map (measured with Terraform
1.0.3; tests/constructs/test_terraform.py checks it on the project's engine); a naive map attribute of 10,000 entries costs an order of magnitude more synth time.

- A small map (its JSON shorter than SPILL_MIN_CHARS) is inline: `${jsondecode("<json>")}`.
- A large one, when the caller gives a `spill`, goes to a file beside the stack, named by
  its content's sha256, and the attribute reads it:
  `${jsondecode(file("${path.module}/assets/tsegossip-maps/by-content/<sha>.json"))}`.
  Terraform reads the file at plan time, so `terraform plan` shows the same map as before;
  the stack JSON stays small enough to review, and the map's bytes never pass through
  cdktf (no jsii transfer, no token scans over megabytes of JSON).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from .. import resource_schema as schema
from ..resource_schema import Attribute, Kind

ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    type_name: {a.name: a for a in attrs} for type_name, attrs in schema.RESOURCES.items()
}


# Below this many characters of JSON a map stays inline: a stack of a small cluster reads as
# one file, and a file costs a filesystem write and a read at plan time.
SPILL_MIN_CHARS = 4096
# Stack-relative folder of the spilled maps, in the layout of cdktf's TerraformAsset
# (assets/<id>/<hash>/) so it reads as one; the file names carry their content's hash, so
# the folder's hash is a constant label.
MAPS_ASSET_ID = "tsegossip-maps"
MAPS_ASSET_HASH = "by-content"
MAPS_DIR = f"assets/{MAPS_ASSET_ID}/{MAPS_ASSET_HASH}"

Spill = Callable[[str, str], None]
"""spill(file_name, json_text): store a large map's JSON as MAPS_DIR/file_name of the stack."""


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


def map_json(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=True)


def _inline(text: str) -> str:
    return '${jsondecode("' + hcl_string_literal(text) + '")}'


def jsondecode_expression(value: Mapping[str, str]) -> str:
    """A map as one Terraform expression string that evaluates back to the map."""
    return _inline(map_json(value))


def map_file_name(text: str) -> str:
    """The spilled file's name: the first 16 hex digits of its content's sha256."""
    return hashlib.sha256(text.encode()).hexdigest()[:16] + ".json"


def file_expression(file_name: str) -> str:
    """The attribute value that reads a spilled map back (path.module is the stack's directory)."""
    return '${jsondecode(file("${path.module}/' + MAPS_DIR + "/" + file_name + '"))}'


def encode_map(value: Mapping[str, str], spill: Spill | None = None) -> str:
    text = map_json(value)
    if spill is None or len(text) < SPILL_MIN_CHARS:
        return _inline(text)
    name = map_file_name(text)
    spill(name, text)
    return file_expression(name)


def _encode(resource_type: str, attr: Attribute, value: Any, spill: Spill | None) -> Any:
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
        return encode_map(value, spill)
    raise BindingError(f"{where}: kind {kind} has no encoding")  # pragma: no cover - schema grew a kind


def encode_attributes(resource_type: str, attrs: Mapping[str, Attribute], values: Mapping[str, Any],
                      spill: Spill | None = None) -> dict[str, Any]:
    """Check `values` against the schema and return the synthesized attribute dict (None = unset).
    With `spill`, large maps are handed to it and the attribute reads them from the file."""
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
        out[name] = _encode(resource_type, attr, value, spill)
    missing = [n for n, a in attrs.items() if a.required and n not in out]
    if missing:
        raise BindingError(f"{resource_type}: missing required attribute(s) {', '.join(missing)}")
    return out


