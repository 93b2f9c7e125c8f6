"""Shared test constants and helpers (import as tests.support)."""

import base64
import hashlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def derived_key(label: str) -> str:
    """A fixed test key made at run time from a label, so that no key sits in the repository in clear."""
    return base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


TEST_KEY = derived_key("tsegossip test key")
OTHER_KEY = derived_key("tsegossip another test key")
TEST_KEY_REDACTED = TEST_KEY[:4] + "*" * 9 + TEST_KEY[-4:]


def console_script() -> str:
    """The installed `tsegossip` console script next to the running interpreter."""
    script = Path(sys.executable).parent / "tsegossip"
    if not script.exists():
        pytest.fail(f"console script missing at {script}: run ./bootstrap")
    return str(script)


# shared/facts/gossip-compat.md's measured table, as (peers' phase, X's phase, all alive?).
# The model's test and the lab's test both check against it, so each is held to the facts.
MEASURED_COMPAT = [
    ("plaintext", "plaintext", True),
    ("plaintext", "accept-encrypted", True),
    ("plaintext", "send-encrypted", False),
    ("plaintext", "enforced", False),
    ("accept-encrypted", "send-encrypted", True),
    ("accept-encrypted", "enforced", False),
    ("send-encrypted", "enforced", True),
    ("enforced", "enforced", True),
]


def json_paths(doc, here=()):
    """Every path into a JSON-like document (the root first), for tests that mutate specs."""
    yield here
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from json_paths(v, (*here, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from json_paths(v, (*here, i))


def consul_binary() -> str:
    """The Consul the lab runs. Inside ./bootstrap's environment (TSEGOSSIP_CONSUL set) a missing build
    fails the test: a skip there would let every lab test pass without running. Outside it, skip."""
    from tsegossip import lab

    try:
        return lab.ensure_binary()
    except lab.LabError as e:
        if "TSEGOSSIP_CONSUL" in os.environ:
            pytest.fail(f"Consul is not built: {e}")
        pytest.skip(f"Consul not available outside ./bootstrap's environment: {e}")
