import pytest

from tests.support import TEST_KEY


@pytest.fixture
def test_key(monkeypatch):
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY)
    return TEST_KEY
