"""Hand-written L1 bindings for the tsegossip provider, built from
tsegossip/provider/attributes.py (the provider serves the same definitions).

Nothing here restates an attribute: each binding class names its resource type and
takes its attribute set from `attributes.RESOURCES`.

Per-node maps never cross the jsii boundary value by value: a map(string) attribute is
emitted as ONE string, the Terraform expression `${jsondecode("<json>")}`, which
Terraform evaluates back into the map (measured with Terraform 1.0.3). A naive map
attribute of 10,000 entries costs an order of magnitude more synth time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..provider import attributes as schema
from ..provider.attributes import Attribute, Kind
from ._cdk import TerraformProvider, TerraformProviderGeneratorMetadata, TerraformResource

_METADATA = dict(provider_name=schema.PROVIDER_NAME, provider_version_constraint=schema.PROVIDER_VERSION)


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


class TsegossipResource(TerraformResource):
    """Base of the three bindings; subclasses name TYPE and get ATTRIBUTES from the schema."""

    TYPE: ClassVar[str]
    ATTRIBUTES: ClassVar[Mapping[str, Attribute]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "TYPE" in cls.__dict__:
            cls.ATTRIBUTES = {a.name: a for a in schema.RESOURCES[cls.TYPE]}

    def __init__(
        self,
        scope: Any,
        id: str,
        values: Mapping[str, Any],
        *,
        depends_on: Sequence[Any] | None = None,
        provider: TerraformProvider | None = None,
    ) -> None:
        encoded = encode_attributes(self.TYPE, self.ATTRIBUTES, values)
        super().__init__(
            scope,
            id,
            terraform_resource_type=self.TYPE,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(**_METADATA),
            depends_on=list(depends_on) if depends_on else None,
            provider=provider,
        )
        self._tsegossip_attributes = encoded

    # The name matters: jsii calls the protected `synthesizeAttributes` through this
    # Python name; `synthesize_attributes` would be silently ignored.
    def _synthesize_attributes(self) -> dict[str, Any]:
        return dict(self._tsegossip_attributes)

    @property
    def synthesized_attributes(self) -> Mapping[str, Any]:
        """What this resource writes into the Terraform JSON (maps already encoded)."""
        return dict(self._tsegossip_attributes)

    def attribute(self, name: str) -> str:
        """A reference to attribute `name` (e.g. a computed `verdict` or `observed`) for other resources."""
        attr = self.ATTRIBUTES.get(name)
        if attr is None:
            raise BindingError(f"{self.TYPE}: unknown attribute {name!r}; allowed: {', '.join(sorted(self.ATTRIBUTES))}")
        if attr.kind is Kind.MAP_STRING:
            return self.interpolation_for_attribute(name)
        return self.get_string_attribute(name)


class ServerParamsResource(TsegossipResource):
    """tsegossip_server_params: the gossip parameters of the server set (TSE or self-managed)."""

    TYPE = "tsegossip_server_params"


class ClientConfigResource(TsegossipResource):
    """tsegossip_client_config: one client group's gossip fragment, written and rolled node by node."""

    TYPE = "tsegossip_client_config"


class PhaseGateResource(TsegossipResource):
    """tsegossip_phase_gate: a live check that every expected node is alive and in its phase."""

    TYPE = "tsegossip_phase_gate"


BINDINGS: dict[str, type[TsegossipResource]] = {
    cls.TYPE: cls for cls in (ServerParamsResource, ClientConfigResource, PhaseGateResource)
}


class TsegossipProvider(TerraformProvider):
    """The provider block: source registry.terraform.io/tsegossip/tsegossip, pinned to 0.1.0.

    The provider takes no configuration: credentials are read at apply time from the
    environment variables each resource names.
    """

    SOURCE = schema.PROVIDER_SOURCE
    VERSION = schema.PROVIDER_VERSION

    def __init__(self, scope: Any, id: str = schema.PROVIDER_NAME) -> None:
        super().__init__(
            scope,
            id,
            terraform_resource_type=schema.PROVIDER_NAME,
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(**_METADATA),
            terraform_provider_source=schema.PROVIDER_SOURCE,
        )

    def _synthesize_attributes(self) -> dict[str, Any]:
        return {}
