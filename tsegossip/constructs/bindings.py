"""Hand-written L1 bindings for the tsegossip provider, built from
tsegossip/provider/attributes.py (the provider serves the same definitions).

Nothing here restates an attribute: each binding class names its resource type and
takes its attribute set from `attributes.RESOURCES`; values are checked and encoded by
`encoding` (per-node maps become one `${jsondecode("...")}` string each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..provider import attributes as schema
from ..provider.attributes import Attribute, Kind
from ._cdk import TerraformProvider, TerraformProviderGeneratorMetadata, TerraformResource
from .encoding import ATTRIBUTES, BindingError, encode_attributes, jsondecode_expression  # noqa: F401 (re-exported)

_METADATA = dict(provider_name=schema.PROVIDER_NAME, provider_version_constraint=schema.PROVIDER_VERSION)


class TsegossipResource(TerraformResource):
    """Base of the three bindings; subclasses name TYPE and get ATTRIBUTES from the schema."""

    TYPE: ClassVar[str]
    ATTRIBUTES: ClassVar[Mapping[str, Attribute]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "TYPE" in cls.__dict__:
            cls.ATTRIBUTES = ATTRIBUTES[cls.TYPE]

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
    # Python name; `synthesize_attributes` would be silently ignored. cdktf calls it twice
    # per synth (prepareStack and synthesize); the maps are already one string each.
    # (Moving them to add_override so they cross once saved ~0.1 s at 10,000 nodes but
    # lists every map under "overrides" in the stack metadata: not worth it.)
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
