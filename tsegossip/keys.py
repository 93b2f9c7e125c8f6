"""The gossip key as a value object that never shows itself by accident.

`repr`, `str` and format all redact; `reveal()` is the one way to the clear text and
is called only where a key is written into an agent's config or sent to the keyring API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
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
        remember(stripped)  # from now on every printed line is cleaned of it, in every encoding

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


UNKNOWN_FINGERPRINT = "unknown"
"""key_fingerprint of a plan synthesized with no key in the environment and none pinned in the spec:
reviewable, never deployable (the provider refuses it)."""


@dataclass(frozen=True)
class KeyShown:
    """What a plan shows of its key: the redaction, the fingerprint, where it came from. A pull request's
    plan needs no secret: with no key in the environment it shows the spec's pinned fingerprint, or unknown."""
    env: str
    fingerprint: str
    redacted: str
    source: str   # "environment" | "pinned" (spec's key_fingerprint, key not in the environment) | "none"

    @property
    def present(self) -> bool:
        return self.source == "environment"

    def describe(self) -> str:
        if self.source == "environment":
            return f"{self.redacted} (sha256:{self.fingerprint}) from ${self.env}"
        if self.source == "pinned":
            return f"not in ${self.env} here; pinned in the spec as sha256:{self.fingerprint} (deploy needs it)"
        return f"not in ${self.env} here; fingerprint unknown (deploy needs it; pin it with key_fingerprint)"


def key_for_plan(env: str, pinned: str | None, environ: dict[str, str] | None = None,
                 required: bool = False) -> tuple[GossipKey | None, KeyShown]:
    """The key in $env (None when unset and not required) and what a plan shows of it.

    A key that is set must be valid and, when the spec pins a fingerprint, be that key: otherwise
    InvalidKey, naming the variable and both fingerprints, never the key."""
    values = os.environ if environ is None else environ
    if not (values.get(env) or "").strip() and not required:
        fp = pinned or UNKNOWN_FINGERPRINT
        return None, KeyShown(env, fp, f"(not in ${env})", "pinned" if pinned else "none")
    key = GossipKey.from_env(env, dict(values))
    if pinned and key.fingerprint != pinned:
        raise InvalidKey(
            f"environment variable {env} (named by key_env) holds the key with fingerprint {key.fingerprint}, "
            f"but the spec pins key_fingerprint {pinned}; export the pinned key, or change key_fingerprint "
            "in the spec (a change the pull request shows)")
    return key, KeyShown(env, key.fingerprint, key.redacted, "environment")


def rotation_key_for_plan(env: str, pinned: str | None, current: KeyShown, environ: dict[str, str] | None = None,
                          required: bool = False) -> tuple[GossipKey | None, KeyShown]:
    """The new key of a rotation, in $env (the spec's rotate_to_env), and what a plan shows of it: `key_for_plan`
    for the key a rotation installs, pinned by rotate_to_fingerprint, checked against `current` (what
    `key_for_plan` showed of key_env's key: its fingerprint when the key is there or pinned).

    Unset (when required), not a key, another key than the pinned one, or the current key: InvalidKey naming
    the variable and the field, never the value. Not required and unset: the pinned fingerprint, or unknown."""
    values = os.environ if environ is None else environ
    named = f"environment variable {env} (named by rotate_to_env)"
    text = values.get(env)
    if not (text or "").strip():
        if required:
            raise InvalidKey(f"{named} is not set; export the new gossip key there (generate one with "
                             "`tsegossip keygen`); the current key stays in key_env")
        key, shown = None, KeyShown(env, pinned or UNKNOWN_FINGERPRINT, f"(not in ${env})",
                                    "pinned" if pinned else "none")
    else:
        try:
            key = GossipKey(text)
        except InvalidKey as err:
            raise InvalidKey(f"{named}: {err}") from None
        if pinned and key.fingerprint != pinned:
            raise InvalidKey(
                f"{named} holds the key with fingerprint {key.fingerprint}, but the spec pins rotate_to_fingerprint "
                f"{pinned}; export the pinned new key, or change rotate_to_fingerprint in the spec (a change the pull "
                "request shows)")
        shown = KeyShown(env, key.fingerprint, key.redacted, "environment")
    # A pin equal to a pin is the planner's refusal (it names both fields); here, a key that is there.
    if (shown.present or current.present) and shown.fingerprint == current.fingerprint != UNKNOWN_FINGERPRINT:
        where = {"environment": f"{named} holds", "pinned": "the spec's rotate_to_fingerprint pins"}[shown.source]
        theirs = (f"the current key in ${current.env} (named by key_env)" if current.present
                  else "the current key (the spec's key_fingerprint)")
        raise InvalidKey(
            f"{where} the same key as {theirs}, fingerprint {shown.fingerprint}: a rotation needs a new key; "
            "generate one with `tsegossip keygen`")
    return key, shown


_B64 = re.compile(r"^[A-Za-z0-9+/]{22,}={0,2}$")


def looks_like_key(text: str) -> bool:
    """Whether text is base64 of 16, 24 or 32 bytes: what a gossip key looks like."""
    if not isinstance(text, str) or not _B64.match(text):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) in VALID_SIZES
    except (binascii.Error, ValueError):
        return False


# ---- the one redaction rule ------------------------------------------------------------------
#
# Every key this process has seen (GossipKey, the spec's key_env, key-looking environment values)
# is remembered in all its encodings. `redact_text` replaces any run of MIN_RUN or more characters
# of any of those encodings, and any token that looks like a key by itself; every line the
# program prints or logs goes through it. `key_problem` is the spec loader's side of the same rule.

MIN_RUN = 16
_FORMS: set[str] = set()        # every clear encoding of every remembered key
_GRAMS: set[str] = set()        # their MIN_RUN-character pieces, matched as they are
_HEX_GRAMS: set[str] = set()    # the pieces of the hex forms, matched without regard to case
_HEX_FORMS: set[str] = set()    # lower-case hex encodings, matched without regard to case


def encodings(secret: str) -> set[str]:
    """The forms a key is written in: standard and URL-safe base64, with and without padding, hex."""
    text = secret.strip()
    forms = {text}
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) >= 12:
        std = base64.b64encode(raw).decode()
        url = base64.urlsafe_b64encode(raw).decode()
        forms |= {std, std.rstrip("="), url, url.rstrip("="), raw.hex()}
    return {f for f in forms if len(f) >= MIN_RUN}


def remember(secret: str | None) -> None:
    """Treat `secret` (a key, or whatever a key variable holds) as never to be printed."""
    if not isinstance(secret, str) or len(secret.strip()) < MIN_RUN:
        return
    for form in encodings(secret):
        if form in _FORMS:
            continue
        _FORMS.add(form)
        is_hex = re.fullmatch(r"[0-9a-f]+", form) is not None
        if is_hex:
            _HEX_FORMS.add(form)
        (_HEX_GRAMS if is_hex else _GRAMS).update(form[i:i + MIN_RUN] for i in range(len(form) - MIN_RUN + 1))


def remember_environ(environ=None) -> None:
    """Remember every environment value that is a gossip key: redaction before any spec is read."""
    for value in (os.environ if environ is None else environ).values():
        if looks_like_key(value.strip()):
            remember(value)


def remembered_forms() -> frozenset[str]:
    return frozenset(_FORMS)


_RUN = re.compile(r"[A-Za-z0-9+/_-]+=*")
# last character of the canonical encoding of 16 bytes (4 zero bits) and of 32 bytes (2 zero bits)
_END16 = set("AQgw")
_END32 = set("AEIMQUYcgkosw048")


def _keyish(tok: str) -> bool:
    """A run of base64 characters that is exactly the canonical encoding of 16, 24 or 32 bytes."""
    body = tok.rstrip("=")
    pad = len(tok) - len(body)
    n = len(body)
    if ("+" in body or "/" in body) and ("-" in body or "_" in body):
        return False
    if n == 22 and pad in (0, 2):
        end = _END16
    elif n == 43 and pad in (0, 1):
        end = _END32
    elif n == 32 and pad == 0:
        end = None
    else:
        return False
    last = body[-1].translate(_URL_TO_STD)
    if end is not None and last not in end:
        return False
    if pad and n != 32:
        return True  # padded and canonical: a key's own shape
    return any(c.isdigit() for c in body) and any(c.isupper() for c in body) and any(c.islower() for c in body)


_URL_TO_STD = str.maketrans("-_", "+/")


def _candidates(run: str):
    """The run itself and every stretch of it between '/' (a key may sit in a path or a URL)."""
    yield run
    if "/" in run:
        parts = run.split("/")
        for i in range(len(parts)):
            for j in range(i + 1, len(parts) + 1):
                if (i, j) != (0, len(parts)):
                    yield "/".join(parts[i:j])


def key_like_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds something that looks like a key by itself (no remembered key needed)."""
    spans = []
    for m in _RUN.finditer(text):
        run = m.group()
        if len(run) < 22:
            continue
        for cand in _candidates(run):
            if _keyish(cand):
                start = m.start() + run.index(cand)
                spans.append((start, start + len(cand)))
                break
    return spans


def _remembered_spans(text: str) -> list[tuple[int, int]]:
    if not (_GRAMS or _HEX_GRAMS) or len(text) < MIN_RUN:
        return []
    spans = []
    for grams, hay in ((_GRAMS, text), (_HEX_GRAMS, text.lower() if _HEX_GRAMS else "")):
        for gram in grams:
            i = hay.find(gram)
            while i >= 0:
                spans.append((i, i + MIN_RUN))
                i = hay.find(gram, i + 1)
    return spans


def redact_text(text: str) -> str:
    """`text` with every remembered key (any encoding, any 16+ character run of one) and every
    key-looking token replaced. The one rule for every line printed or logged."""
    if not isinstance(text, str):
        text = str(text)
    spans = _remembered_spans(text)
    marked = [(s, e, "<redacted>") for s, e in _merge(spans)]
    for s, e in key_like_spans(text):
        if not any(s < me and ms < e for ms, me, _ in marked):
            marked.append((s, e, redact(text[s:e])))
    if not marked:
        return text
    out, at = [], 0
    for s, e, shown in sorted(marked):
        out.append(text[at:s])
        out.append(shown)
        at = e
    out.append(text[at:])
    return "".join(out)


def _merge(spans):
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def key_problem(text: str, forms=None) -> str | None:
    """Why `text` (a value or a field name from a spec) holds a gossip key, or None.

    A remembered key in any encoding anywhere in it, a whole value that is a key, or a token inside
    it that is a key's canonical encoding. The answer never quotes the key.
    """
    if not isinstance(text, str):
        return None
    forms = _FORMS if forms is None else forms
    if forms:
        lower = None
        for form in forms:
            if form in _HEX_FORMS:
                lower = text.lower() if lower is None else lower
                if form in lower:
                    return "holds the gossip key (hex)"
            elif form in text:
                return "holds the gossip key"
    if looks_like_key(text):
        return "looks like a literal gossip key (base64 of 16, 24 or 32 bytes)"
    if key_like_spans(text):
        return "holds something that looks like a literal gossip key (base64 of 16, 24 or 32 bytes)"
    return None


def scrub(value):
    """A copy of a JSON-like value with every key-looking string redacted (for messages)."""
    if isinstance(value, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        if looks_like_key(value):
            return redact(value)
        return redact_text(value) if len(value) >= MIN_RUN else value
    return value


def fingerprint_of(encoded: str) -> str:
    raw = base64.b64decode(encoded.strip())
    return hashlib.sha256(raw).hexdigest()[:12]


def keyring_file(text: str) -> tuple[str, ...] | None:
    """The fingerprints an agent's serf/local.keyring holds, primary first; None when it is not one.

    The file is a JSON list of base64 keys; the clear keys go no further than this function.
    """
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, list) or not all(isinstance(k, str) for k in doc):
        return None
    out = []
    for k in doc:
        try:
            out.append(fingerprint_of(k))
        except (ValueError, TypeError):
            out.append("unparseable-key")
    return tuple(out)


def redact(encoded: str) -> str:
    text = encoded.strip()
    return f"{text[:4]}*********{text[-4:]}"


def redact_line(line: str) -> str:
    """The rule for a line about to be printed: every key seen so far, and any in the environment."""
    remember_environ()  # a key in the environment is redacted even before any spec names it
    return redact_text(line)
