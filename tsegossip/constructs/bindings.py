"""Hand-written L1 bindings for the tsegossip provider, built from
tsegossip/resource_schema.py (the provider serves the same definitions).

Nothing here restates an attribute: each binding class names its resource type and
takes its attribute set from `attributes.RESOURCES`; values are checked and encoded by
`encoding` (per-node maps become one `${jsondecode("...")}` string each, and a large
map a file of its own beside the stack: see `_AttributeSink.put_map`).

Synth cost: jsii makes every call between Python and cdktf's node process a pipe round
trip. A resource that overrides `synthesizeAttributes` is called back twice per synth
(cdktf's prepareStack, then the write) and sends its whole attribute dict each time. So
the resources do not override it: each stack holds one `_AttributeSink` element whose
`toTerraform` gives every tsegossip resource's attributes at once (`resource.<type>.<id>`,
deep-merged by cdktf with what each resource emits itself: `//` metadata, `depends_on`,
`provider`, its own overrides, which still win). Per synth and stack that is a handful of
round trips instead of two per resource, and:

- the attributes are sent once, as one node-side value (`Token.as_any`), and a long map
  string is sent once per process however many resources carry it (`_node_side`);
- cdktf's preparing pass (it only looks for cross-stack references) gets an empty
  fragment unless some attribute holds a token, which saves one resolve of every map.

The Terraform JSON, metadata included, is the same as with per-resource `synthesizeAttributes`.
"""

from __future__ import annotations

import re
import shutil
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .. import resource_schema as schema
from ..resource_schema import Attribute, Kind
from ._cdk import (App, IResolvable, TerraformElement, TerraformProvider, TerraformProviderGeneratorMetadata,
                   TerraformResource, TerraformResourceConfig, TerraformStack, Token, create, implements)
from .encoding import ATTRIBUTES, MAPS_DIR, BindingError, encode_attributes, jsondecode_expression  # noqa: F401

_METADATA = dict(provider_name=schema.PROVIDER_NAME, provider_version_constraint=schema.PROVIDER_VERSION)

_GENERATOR_METADATA: list[TerraformProviderGeneratorMetadata] = []


def _generator_metadata() -> TerraformProviderGeneratorMetadata:
    """One immutable struct for every resource (building it runs jsii's argument type checks)."""
    if not _GENERATOR_METADATA:
        _GENERATOR_METADATA.append(TerraformProviderGeneratorMetadata(**_METADATA))
    return _GENERATOR_METADATA[0]


# cdktf's logical id of a construct directly under its stack is the id itself when the id
# has only these characters (cdktf private/unique.js: makeUniqueId, one component).
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


# A map string of a few KB costs less to send inline than a round trip; above that, each
# distinct string is sent once per process and shared by reference: the same `nodes` and
# `addresses` maps recur in every stack, and one step's `expected` after is the next's before.
_SHARE_MIN_CHARS = 4096
_SHARED_MAX = 512
_shared: OrderedDict[str, Any] = OrderedDict()


def _node_side(value: Any) -> Any:
    """`value`, or for a long string a node-side reference to an equal string."""
    if not isinstance(value, str) or len(value) < _SHARE_MIN_CHARS:
        return value
    ref = _shared.get(value)
    if ref is None:
        ref = _shared[value] = Token.as_any(value)
        if len(_shared) > _SHARED_MAX:
            _shared.popitem(last=False)
    else:
        _shared.move_to_end(value)
    return ref


class _AttributeSink(TerraformElement):
    """One per stack: emits the attributes of every tsegossip resource in the stack.

    Not a Terraform object of its own: its fragment is only `resource.<type>.<id>.<attribute>`
    for resources that exist as constructs, and it adds nothing to the stack metadata.
    """

    ID = "tsegossip-attributes"

    def __init__(self, stack: TerraformStack) -> None:
        super().__init__(stack, self.ID)
        self._stack = stack
        self._maps: dict[str, str] = {}
        self._resources: list[TsegossipResource] = []
        self._node_fragment: Any = None
        self._tokens = False
        self._resolvable = _Fragment(self)

    @classmethod
    def of(cls, stack: TerraformStack) -> _AttributeSink:
        sink = stack.__dict__.get("_tsegossip_sink")
        if sink is None:
            sink = stack.__dict__["_tsegossip_sink"] = cls(stack)
        return sink

    def add(self, resource: TsegossipResource) -> None:
        self._resources.append(resource)
        self._tokens = self._tokens or resource._tsegossip_tokens
        self.changed()

    def changed(self) -> None:
        self._node_fragment = None

    def put_map(self, name: str, text: str) -> None:
        """Keep a large map until synth writes it beside the stack (encoding's `spill`)."""
        self._maps[name] = text

    def _write_maps(self) -> None:
        """Write the stack's large maps to <working dir>/assets/tsegossip-maps/by-content/.

        Called while cdktf synthesizes the stack (its working directory exists by then, and
        cdktf writes there, never cleans it). Not a TerraformAsset on purpose: that one copies
        a staged folder, and loading its module (which pulls in a zip library) alone costs
        ~50 ms per synth here. The folder is replaced whole, so maps of an earlier synth do
        not linger. Where: the manifest's working directory for the stack, cdktf's own answer.
        """
        manifest = App.of(self._stack).manifest
        folder = Path(manifest.outdir) / manifest.for_stack(self._stack).working_directory / MAPS_DIR
        shutil.rmtree(folder.parent.parent, ignore_errors=True)  # assets/tsegossip-maps
        folder.mkdir(parents=True)
        for name, text in self._maps.items():
            (folder / name).write_text(text)

    def to_terraform(self) -> Any:
        return self._resolvable

    def fragment(self, preparing: bool) -> Any:
        # cdktf's prepareStack resolves every element once with preparing=true, only to
        # find cross-stack references; without tokens in the attributes there are none.
        if preparing and not self._tokens:
            return {}
        if self._node_fragment is None:  # built and sent once, then handed back by reference
            tree: dict[str, dict[str, Any]] = {}
            for r in self._resources:
                if not r._tsegossip_moved:
                    tree.setdefault(r.TYPE, {})[r._logical_id()] = {
                        k: _node_side(v) for k, v in r._tsegossip_attributes.items()}
            self._node_fragment = Token.as_any({"resource": tree}) if tree else {}
            if self._maps:
                self._write_maps()
        return self._node_fragment


@implements(IResolvable)
class _Fragment:
    """The sink's fragment as a token, so that it can tell cdktf's preparing resolve apart."""

    def __init__(self, sink: _AttributeSink) -> None:
        self._sink = sink

    @property
    def creation_stack(self) -> list[str]:
        return []

    def resolve(self, context: Any) -> Any:
        return self._sink.fragment(bool(context.preparing))

    def to_string(self) -> str:
        return f"<tsegossip attributes of {self._sink.node.path}>"


_CONFIGS: OrderedDict[tuple, TerraformResourceConfig] = OrderedDict()


def _resource_config(type_name: str, depends_on: Sequence[Any] | None,
                     provider: TerraformProvider | None) -> TerraformResourceConfig:
    deps = tuple(depends_on) if depends_on else ()
    # keyed by identity: a cached config holds its dependencies and provider, so their ids
    # cannot be reused by other objects while it is cached
    cache_key = (type_name, tuple(id(d) for d in deps), id(provider))
    config = _CONFIGS.get(cache_key)
    if config is None:
        config = TerraformResourceConfig(terraform_resource_type=type_name,
                                         terraform_generator_metadata=_generator_metadata(),
                                         depends_on=list(deps) or None, provider=provider)
        _CONFIGS[cache_key] = config
        if len(_CONFIGS) > 64:
            _CONFIGS.popitem(last=False)
    return config


def resources_in(stack: TerraformStack) -> list[TsegossipResource]:
    """The tsegossip resources of `stack` (at any depth), in construction order, read on the
    Python side: no jsii round trip per child, as walking `node.children` would make."""
    sink = stack.__dict__.get("_tsegossip_sink")
    return list(sink._resources) if sink is not None else []


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
        stack = scope if isinstance(scope, TerraformStack) else TerraformStack.of(scope)
        spilled: dict[str, str] = {}
        encoded = encode_attributes(self.TYPE, self.ATTRIBUTES, values, spill=spilled.__setitem__)
        # the sink goes before the stack's first resource, so that a resource's own
        # add_override still wins (cdktf deep-merges element fragments in construct order)
        sink = _AttributeSink.of(stack)
        # What TerraformResource.__init__ does, minus its per-call argument type checks
        # (typing.get_type_hints on every call, ~0.45 ms a resource): our arguments are
        # built here, and the config struct is shared by the resources that have the same
        # dependencies and provider.
        create(type(self), self, [scope, id, _resource_config(self.TYPE, depends_on, provider)])
        self._tsegossip_attributes = encoded
        self._tsegossip_moved = False
        self._tsegossip_tokens = any(
            not isinstance(v, (str, int, float, bool)) or (isinstance(v, str) and "{TfToken[" in v)
            for v in encoded.values())
        # direct child of a stack with a plain id: the logical id is the id (no round trip)
        plain = (stack is scope and _PLAIN_ID.fullmatch(id) is not None and id != "Default"
                 and type(stack)._allocate_logical_id is TerraformStack._allocate_logical_id
                 and type(stack).get_logical_id is TerraformStack.get_logical_id)
        self._tsegossip_logical_id: str | None = id if plain else None
        self._tsegossip_sink = sink
        for name, text in spilled.items():
            sink.put_map(name, text)
        sink.add(self)

    # No `_synthesize_attributes` override on purpose: see the module docstring.

    def _logical_id(self) -> str:
        if self._tsegossip_logical_id is None:
            self._tsegossip_logical_id = self.friendly_unique_id
        return self._tsegossip_logical_id

    def override_logical_id(self, new_logical_id: str) -> None:
        super().override_logical_id(new_logical_id)
        self._tsegossip_logical_id = None
        self._tsegossip_sink.changed()

    def reset_override_logical_id(self) -> None:
        super().reset_override_logical_id()
        self._tsegossip_logical_id = None
        self._tsegossip_sink.changed()

    def move_to(self, move_target: str, index: Any = None) -> None:
        super().move_to(move_target, index)
        self._tsegossip_moved = True  # cdktf emits a moved block instead of the resource
        self._tsegossip_sink.changed()

    def move_to_id(self, id: str) -> None:
        super().move_to_id(id)
        self._tsegossip_moved = True
        self._tsegossip_sink.changed()

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


class KeyringResource(TsegossipResource):
    """tsegossip_keyring: one keyring change of a key rotation (install, use, remove), proven on the live keyring."""

    TYPE = "tsegossip_keyring"


BINDINGS: dict[str, type[TsegossipResource]] = {
    cls.TYPE: cls for cls in (ServerParamsResource, ClientConfigResource, PhaseGateResource, KeyringResource)
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
            terraform_generator_metadata=_generator_metadata(),
            terraform_provider_source=schema.PROVIDER_SOURCE,
        )

    def _synthesize_attributes(self) -> dict[str, Any]:
        return {}
