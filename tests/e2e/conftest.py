"""End-to-end fixtures: real lab agents on 127.0.0.1, real `cdktf deploy`, a membership probe.

Every lab is started inside a fixture or a `with` block that downs it, so no agent outlives
its test. Each rollout gets a unique name, and deploy keeps Terraform state in the test's own
work dir (TSEGOSSIP_STATE_DIR), so no two rollouts share state.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest

from tsegossip import lab
from tests.support import consul_binary
from tsegossip.keys import GossipKey
from tests.e2e.helpers import KEY_ENV
from tests.support import ROOT


@pytest.fixture(scope="session")
def lab_binary():
    return consul_binary()


@pytest.fixture(scope="session")
def cdktf_ready():
    if not (ROOT / "node_modules" / ".bin" / "cdktf").exists():  # pragma: no cover
        pytest.skip("cdktf-cli not installed: run ./bootstrap")


@pytest.fixture
def key(monkeypatch) -> GossipKey:
    """A fresh gossip key in $TSEGOSSIP_KEY for this test (inherited by cdktf and the provider)."""
    raw = GossipKey.generate().reveal()
    monkeypatch.setenv(KEY_ENV, raw)
    return GossipKey.from_env(KEY_ENV)


@pytest.fixture
def rollout_name(request):
    """Unique rollout name; removes the tfstate files its stacks leave in the repo root."""
    base = request.node.name.split("[")[0].replace("test_", "")[:24].replace("_", "-").lower().strip("-")
    name = f"e2e-{base}-{uuid.uuid4().hex[:6]}"
    yield name
    for p in ROOT.glob(f"terraform.{name}-*.tfstate*"):
        with contextlib.suppress(OSError):
            p.unlink()


