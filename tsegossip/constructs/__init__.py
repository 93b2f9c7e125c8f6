"""CDKTF constructs for tsegossip: one plan step = one Terraform stack.

Only `_cdk` imports the CDK libraries (cdktf, or its drop-in fork cdktn).
"""

from .bindings import (
    BINDINGS,
    BindingError,
    ClientConfigResource,
    PhaseGateResource,
    ServerParamsResource,
    TsegossipProvider,
    jsondecode_expression,
)
from .gossip import (
    NOT_JOINED,
    GossipClientConfig,
    GossipClientConfigProps,
    GossipServerParams,
    GossipServerParamsProps,
    PhaseGate,
    PhaseGateProps,
    PhaseStack,
    PhaseStackProps,
    PropsError,
)

__all__ = [
    "BINDINGS", "BindingError", "ClientConfigResource", "PhaseGateResource", "ServerParamsResource",
    "TsegossipProvider", "jsondecode_expression", "NOT_JOINED", "GossipClientConfig", "GossipClientConfigProps",
    "GossipServerParams", "GossipServerParamsProps", "PhaseGate", "PhaseGateProps", "PhaseStack",
    "PhaseStackProps", "PropsError",
]
