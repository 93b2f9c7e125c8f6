"""The gossip fragment of a Consul agent's config, per phase.

This is the exact JSON the provider writes to a node's config_path and the exact
parameter set shown for TSE's console. It is validated against
schemas/agent-gossip-config.schema.json wherever it is emitted.
"""

from __future__ import annotations

from typing import Any

from .keys import GossipKey
from .phases import Phase

# Consul persists the key in <data_dir>/serf/local.keyring and keeps loading that file
# after `encrypt` disappears from the config, with both verify flags back at their
# default (true): an agent rolled back to plaintext by deleting `encrypt` alone comes up
# ENFORCED and is cut off. Disabling the keyring file makes the rollback real.
PLAINTEXT_FRAGMENT: dict[str, Any] = {"disable_keyring_file": True}

# The same persisted keyring wins over a changed `encrypt`; Consul logs this when it does.
KEYRING_WINS_LOG = "keyring doesn't include key provided with -encrypt, using keyring"


def stale_keyring_remedy(agent: str) -> str:
    """How to make `agent`, whose data-dir keyring lacks the key, use it (`tsegossip check` and the provider)."""
    return (
        "`tsegossip repair SPEC --keyring` installs the key and makes it every member's primary through the "
        "keyring API (POST, then PUT /v1/operator/keyring; no file deleted, nothing restarted); by hand: "
        "`consul keyring -install`, then `-use`"
    )


def fragment(phase: Phase, key: GossipKey | None, *, reveal: bool = False) -> dict[str, Any]:
    """The config fragment for `phase`; the key is redacted unless reveal=True."""
    if phase is Phase.PLAINTEXT:
        return dict(PLAINTEXT_FRAGMENT)
    if key is None:
        raise ValueError(f"phase {phase} needs a gossip key")
    return {
        "encrypt": key.reveal() if reveal else key.redacted,
        "encrypt_verify_incoming": phase.verify_incoming,
        "encrypt_verify_outgoing": phase.verify_outgoing,
    }


def tse_parameters(phase: Phase, key: GossipKey | None, *, reveal: bool = False) -> dict[str, Any]:
    """What to save in TSE's console (System parameters → Gossip encryption).

    TSE's console edits exactly these three parameters; it has no keyring-file switch,
    so plaintext is shown as an empty key with both flags false.
    """
    if phase is Phase.PLAINTEXT:
        return {"encrypt": "", "encrypt_verify_incoming": False, "encrypt_verify_outgoing": False}
    return fragment(phase, key, reveal=reveal)


def phase_of_fragment(doc: dict[str, Any]) -> Phase | None:
    """Which phase a written fragment puts an agent in (None if it matches none)."""
    has_key = bool(doc.get("encrypt"))
    return Phase.from_flags(
        has_key, doc.get("encrypt_verify_incoming"), doc.get("encrypt_verify_outgoing")
    )

