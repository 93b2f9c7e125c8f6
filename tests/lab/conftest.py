import pytest

from tsegossip import lab


@pytest.fixture(scope="session")
def lab_binary():
    """Build the lab agent once (lab/build.sh) or reuse lab/bin / $TSEGOSSIP_LAB_AGENT."""
    try:
        return lab.ensure_binary()
    except lab.LabError as e:
        pytest.skip(f"lab agent not available: {e}")


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory, lab_binary):
    """A shared plaintext lab: 3 servers, clients web-1 and api-1."""
    with lab.running_lab(tmp_path_factory.mktemp("plain"), servers=3, clients=2, groups=2,
                         binary=lab_binary) as c:
        yield c
