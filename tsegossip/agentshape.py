"""Fields of Consul's /v1/agent/self, read without an HTTP client.

Its own module so that the lab's restart command (run once per restarted agent, several at
once per batch) does not import python-consul2 and requests just to read two flags.
"""

from __future__ import annotations

from typing import Mapping


def verify_flags(agent_self: Mapping) -> tuple[bool | None, bool | None]:
    """(incoming, outgoing): DebugConfig.StaticRuntimeConfig.* on Consul 1.12+, DebugConfig.* before."""
    debug = agent_self.get("DebugConfig") or {}
    static = debug.get("StaticRuntimeConfig") or {}
    vin = static.get("EncryptVerifyIncoming", debug.get("EncryptVerifyIncoming"))
    vout = static.get("EncryptVerifyOutgoing", debug.get("EncryptVerifyOutgoing"))
    return vin, vout
