"""The four gossip phases and the rule that says which of them can talk.

The rule was measured on real memberlist (shared/facts/gossip-compat.md): an agent
that sends plaintext is understood by anyone not verifying incoming traffic, and an
agent holding the key reads encrypted traffic whatever its verify flags. That makes
two agents compatible exactly when their phases are equal or adjacent.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """A gossip phase, named as the project's interface names it."""

    PLAINTEXT = "plaintext"
    ACCEPT_ENCRYPTED = "accept-encrypted"
    SEND_ENCRYPTED = "send-encrypted"
    ENFORCED = "enforced"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def has_key(self) -> bool:
        return self is not Phase.PLAINTEXT

    @property
    def verify_incoming(self) -> bool | None:
        """Consul's encrypt_verify_incoming in this phase; None when absent."""
        return _FLAGS[self][0]

    @property
    def verify_outgoing(self) -> bool | None:
        """Consul's encrypt_verify_outgoing in this phase; None when absent."""
        return _FLAGS[self][1]

    @property
    def sends(self) -> str:
        return "encrypted" if self.rank >= Phase.SEND_ENCRYPTED.rank else "plaintext"

    @property
    def accepts(self) -> str:
        return {
            Phase.PLAINTEXT: "plaintext",
            Phase.ACCEPT_ENCRYPTED: "both",
            Phase.SEND_ENCRYPTED: "both",
            Phase.ENFORCED: "encrypted",
        }[self]

    def up(self) -> Phase:
        return _ORDER[min(self.rank + 1, len(_ORDER) - 1)]

    def down(self) -> Phase:
        return _ORDER[max(self.rank - 1, 0)]

    def toward(self, target: Phase) -> Phase:
        """The next phase one step from self toward target (self if already there)."""
        if target.rank > self.rank:
            return self.up()
        if target.rank < self.rank:
            return self.down()
        return self

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> Phase:
        return cls(text)

    @classmethod
    def names(cls) -> list[str]:
        return [p.value for p in _ORDER]

    @classmethod
    def from_flags(
        cls, has_key: bool, verify_incoming: bool | None, verify_outgoing: bool | None
    ) -> Phase | None:
        """Classify an agent's observed settings; None when they match no phase.

        Consul defaults both verify flags to true when a key is set, so None means true
        here. A node verifying incoming but sending plaintext is a state no phase has
        (it would refuse its own kind's traffic) and is reported as unknown.
        """
        if not has_key:
            return cls.PLAINTEXT
        vin = True if verify_incoming is None else verify_incoming
        vout = True if verify_outgoing is None else verify_outgoing
        for phase in _ORDER[1:]:
            if (phase.verify_incoming, phase.verify_outgoing) == (vin, vout):
                return phase
        return None


_ORDER = [Phase.PLAINTEXT, Phase.ACCEPT_ENCRYPTED, Phase.SEND_ENCRYPTED, Phase.ENFORCED]
_FLAGS: dict[Phase, tuple[bool | None, bool | None]] = {
    Phase.PLAINTEXT: (None, None),
    Phase.ACCEPT_ENCRYPTED: (False, False),
    Phase.SEND_ENCRYPTED: (False, True),
    Phase.ENFORCED: (True, True),
}


def compatible(a: Phase, b: Phase) -> bool:
    """Whether agents in phases a and b gossip with each other (equal or adjacent)."""
    return abs(a.rank - b.rank) <= 1


def why_incompatible(a: Phase, b: Phase) -> str:
    """One sentence on why a and b cannot talk, in memberlist's terms."""
    low, high = (a, b) if a.rank < b.rank else (b, a)
    if low is Phase.PLAINTEXT:
        return (
            f"{high} agents send encrypted gossip that {low} agents (no key) cannot read: "
            "'Remote state is encrypted and encryption is not configured'"
        )
    return (
        f"{high} agents verify incoming gossip and drop the plaintext that {low} agents send: "
        "'Encryption is configured but remote state is not encrypted'"
    )
