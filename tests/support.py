"""Shared test constants and helpers (import as tests.support)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# A fixed key for tests; never a real cluster's key.
TEST_KEY = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="


def console_script() -> str:
    """The installed `tsegossip` console script next to the running interpreter."""
    script = Path(sys.executable).parent / "tsegossip"
    if not script.exists():
        pytest.fail(f"console script missing at {script}: run ./bootstrap")
    return str(script)
