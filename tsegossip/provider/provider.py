"""The tsegossip Terraform provider (plugin protocol 6, served by the `tf` framework)."""

from __future__ import annotations

from tf.iface import Provider
from tf.schema import Schema
from tf.utils import Diagnostics

from ..resource_schema import PROVIDER_NAME, PROVIDER_SOURCE
from .resources import ALL


class TsegossipProvider(Provider):
    def get_model_prefix(self) -> str:
        return f"{PROVIDER_NAME}_"

    def full_name(self) -> str:
        return PROVIDER_SOURCE

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(version=1, attributes=[], description="Rolls out Consul gossip encryption phase by phase.")

    def validate_config(self, diags: Diagnostics, config: dict):
        pass

    def configure_provider(self, diags: Diagnostics, config: dict):
        pass

    def get_data_sources(self):
        return []

    def get_resources(self):
        return list(ALL)


def main(argv=None) -> None:
    from tf.runner import run_provider

    run_provider(TsegossipProvider(), argv)
