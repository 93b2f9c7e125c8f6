"""CDKTF constructs for tsegossip: one plan step = one Terraform stack.

Only `_cdk` imports the CDK libraries (cdktf, or its drop-in fork cdktn). Names are
loaded lazily so that the cdktf-free parts (`props`, `encoding`) import without starting
jsii's node process.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BINDINGS": "bindings", "ClientConfigResource": "bindings", "PhaseGateResource": "bindings",
    "ServerParamsResource": "bindings", "TsegossipProvider": "bindings",
    "BindingError": "encoding", "jsondecode_expression": "encoding", "encode_attributes": "encoding",
    "NOT_JOINED": "props", "GossipClientConfigProps": "props", "GossipServerParamsProps": "props",
    "PhaseGateProps": "props", "PropsError": "props",
    "GossipClientConfig": "gossip", "GossipServerParams": "gossip", "PhaseGate": "gossip",
    "PhaseStack": "gossip", "PhaseStackProps": "gossip",
    "RepairStack": "repair", "RepairStackProps": "repair",
    "KeyringResource": "bindings", "RotationStack": "rotation", "RotationStackProps": "rotation",
    "KeyringRepairStack": "rotation", "KeyringRejoinStack": "rotation",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
