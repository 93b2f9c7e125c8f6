"""tsegossip: switch on Consul gossip encryption without breaking a running cluster."""

__version__ = "0.1.0"
