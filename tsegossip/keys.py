"""The gossip key as a value object that never shows itself by accident.

`repr`, `str` and format all redact; `reveal()` is the one way to the clear text and
is called only where a key is written into an agent's config or sent to the keyring API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field

from .errors import UserError

VALID_SIZES = (16, 24, 32)


class InvalidKey(UserError, ValueError):
    """A key that memberlist would refuse; the message says why (never the key)."""


@dataclass(frozen=True, repr=False, eq=False)
class GossipKey:
    _encoded: str = field()

    def __post_init__(self) -> None:
        text = self._encoded
        if not isinstance(text, str):
            raise InvalidKey(f"a gossip key is a base64 string, got {type(text).__name__}")
        stripped = text.strip()
        if not stripped:
            raise InvalidKey("the gossip key is empty; generate one with `tsegossip keygen`")
        try:
            raw = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKey(
                "the gossip key is not valid base64 (standard alphabet, '=' padding); "
                "generate one with `tsegossip keygen`"
            ) from None
        if len(raw) not in VALID_SIZES:
            raise InvalidKey(
                f"the gossip key decodes to {len(raw)} bytes; memberlist accepts 16, 24 or 32 "
                "(key size must be 16, 24 or 32 bytes)"
            )
        object.__setattr__(self, "_encoded", stripped)

    @classmethod
    def generate(cls) -> GossipKey:
        """32 bytes from the OS CSPRNG, base64: what `consul keygen` prints."""
        return cls(base64.b64encode(secrets.token_bytes(32)).decode("ascii"))

    @classmethod
    def from_env(cls, name: str, environ: dict[str, str] | None = None) -> GossipKey:
        env = os.environ if environ is None else environ
        value = env.get(name)
        if value is None or not value.strip():
            raise InvalidKey(
                f"environment variable {name} (named by key_env) is not set; "
                "export the gossip key there (generate one with `tsegossip keygen`)"
            )
        try:
            return cls(value)
        except InvalidKey as err:
            raise InvalidKey(f"environment variable {name}: {err}") from None

    def reveal(self) -> str:
        """The key in clear. Only for agent configs and keyring calls."""
        return self._encoded

    @property
    def size(self) -> int:
        return len(base64.b64decode(self._encoded))

    @property
    def fingerprint(self) -> str:
        """Short, stable, safe to log and store: sha256 of the raw key bytes, 12 hex digits.

        A hash of 32 random bytes gives nothing back; 48 bits tell keys apart without
        being useful to brute force the key.
        """
        return fingerprint_of(self._encoded)

    @property
    def redacted(self) -> str:
        """The seed's style: first 11 and last 22 characters kept, middle starred.

        For a 44-character key the seed shows `VVIh+c4YAG0*********rHGjUf8rCWNTTX/uUIJAg=`:
        11 + 9 stars + 22 = 42 characters. Keeping 33 of 44 characters reveals 24 of
        32 bytes, far too much, so we keep only 4 characters on each side and always
        print 9 stars whatever the key length. It still reads as the seed's display.
        """
        return redact(self._encoded)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GossipKey):
            return NotImplemented
        return secrets.compare_digest(self._encoded, other._encoded)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"GossipKey({self.redacted}, fingerprint={self.fingerprint})"

    def __str__(self) -> str:
        return f"{self.redacted} (sha256:{self.fingerprint})"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __reduce__(self):  # pickling would carry the clear key into caches and logs
        raise TypeError("GossipKey cannot be pickled")


_B64 = re.compile(r"^[A-Za-z0-9+/]{22,}={0,2}$")


def looks_like_key(text: str) -> bool:
    """Whether text is base64 of 16, 24 or 32 bytes: what a gossip key looks like."""
    if not isinstance(text, str) or not _B64.match(text):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) in VALID_SIZES
    except (binascii.Error, ValueError):
        return False


def scrub(value):
    """A copy of a JSON-like value with every key-looking string redacted (for messages)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and looks_like_key(value):
        return redact(value)
    return value


def fingerprint_of(encoded: str) -> str:
    raw = base64.b64decode(encoded.strip())
    return hashlib.sha256(raw).hexdigest()[:12]


def redact(encoded: str) -> str:
    text = encoded.strip()
    return f"{text[:4]}*********{text[-4:]}"
