"""The one module that imports the CDK libraries.

CDKTF was archived at 0.21.0; its community fork CDK Terrain (`cdktn`) is a drop-in
rename. Everything else in tsegossip imports from here, so switching is one line:
TSEGOSSIP_CDK=cdktn picks the fork even where both are installed (tests/test_cdktn.py);
otherwise cdktf, and the fork where cdktf is missing.
"""

from __future__ import annotations

import os

if os.environ.get("TSEGOSSIP_CDK") == "cdktn":
    import cdktn as cdk  # type: ignore[no-redef]
else:
    try:
        import cdktf as cdk
    except ImportError:  # pragma: no cover - exercised only where the fork alone is installed
        import cdktn as cdk  # type: ignore[no-redef]

import constructs
import jsii

App = cdk.App
TerraformStack = cdk.TerraformStack
TerraformResource = cdk.TerraformResource
TerraformElement = cdk.TerraformElement
TerraformProvider = cdk.TerraformProvider
TerraformProviderGeneratorMetadata = cdk.TerraformProviderGeneratorMetadata
LocalBackend = cdk.LocalBackend
TerraformResourceConfig = cdk.TerraformResourceConfig
Testing = cdk.Testing
Token = cdk.Token
IResolvable = cdk.IResolvable
Construct = constructs.Construct
IValidation = constructs.IValidation
implements = jsii.implements
create = jsii.create
"""jsii's constructor call, which every generated binding ends in (see bindings.TsegossipResource)."""
LIBRARY = cdk.__name__

__all__ = [
    "App", "TerraformStack", "TerraformResource", "TerraformElement", "TerraformProvider",
    "TerraformProviderGeneratorMetadata", "LocalBackend", "TerraformResourceConfig", "create", "Testing", "Token",
    "IResolvable", "Construct", "IValidation", "implements", "LIBRARY",
]
