import pytest

from tsegossip import lab
from tests.support import consul_binary


@pytest.fixture(scope="session")
def lab_binary():
    """The Consul binary the lab runs ($TSEGOSSIP_CONSUL or .tools/bin/consul, built by ./bootstrap)."""
    return consul_binary()


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory, lab_binary):
    """A shared plaintext lab: 3 servers, clients web-1 and api-1."""
    with lab.running_lab(tmp_path_factory.mktemp("plain"), servers=3, clients=2, groups=2,
                         binary=lab_binary) as c:
        yield c
