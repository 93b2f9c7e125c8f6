import pytest

from tests.support import TEST_KEY


@pytest.fixture
def test_key(monkeypatch):
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY)
    return TEST_KEY


# Timing is for benchmarks, not tests: on a shared 2-core machine a slow example is not a failure.
from hypothesis import settings  # noqa: E402

settings.register_profile("tsegossip", deadline=None)
settings.load_profile("tsegossip")
