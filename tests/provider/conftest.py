"""The simulated cluster most provider tests run against."""

from __future__ import annotations

import pytest

from tests.provider.fakeworld import FakeCluster
from tests.support import TEST_KEY


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path, {"server-1": "accept-encrypted", "server-2": "accept-encrypted",
                                  "web-1": "plaintext", "web-2": "plaintext", "web-3": "plaintext"}, key=TEST_KEY)
