"""Fleet fixtures: hosts made of network namespaces, each with its own filesystem view, a real sshd
and a real Consul agent (tsegossip/lab/fleet.py). Every fleet is removed by its fixture, also when the
test fails; the fleet's work dir is the test's own tmp_path."""

from __future__ import annotations

import os
import shutil

import pytest

from tsegossip.keys import GossipKey
from tsegossip.lab import fleet as F
from tests.support import consul_binary

KEY_ENV = "TSEGOSSIP_FLEET_KEY"


def fleet_prerequisites() -> str:
    """The Consul binary; skip when not root (namespaces need it) or, outside ./bootstrap's
    environment, when sshd is missing. Inside it a missing sshd fails: bootstrap installs it."""
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root: network and mount namespaces, a bridge, sshd on port 22")
    if not os.path.exists(F.SSHD):
        if "TSEGOSSIP_CONSUL" in os.environ:
            pytest.fail(f"{F.SSHD} missing: ./bootstrap installs Debian's openssh-server")
        pytest.skip(f"{F.SSHD} missing (Debian's openssh-server)")
    for tool in ("ip", "nsenter", "unshare", "ssh-keygen"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")
    return consul_binary()


@pytest.fixture(scope="session")
def fleet_binary():
    return fleet_prerequisites()


@pytest.fixture
def make_fleet(tmp_path, fleet_binary):
    """make_fleet(**up_kwargs) -> Fleet; every fleet made is removed at the end of the test."""
    made = []

    def make(**kw):
        workdir = tmp_path / f"fleet{len(made)}"
        made.append(workdir)
        return F.up(workdir, binary=fleet_binary, **kw)

    yield make
    for w in made:
        F.down(w)


@pytest.fixture
def fleet(make_fleet):
    """3 servers, groups web and api of 3 hosts each, all plaintext."""
    return make_fleet()


@pytest.fixture
def fleet_env(monkeypatch, fleet):
    """The runner's identity in $TSEGOSSIP_FLEET_IDENTITY and a fresh key in $TSEGOSSIP_FLEET_KEY."""
    monkeypatch.setenv(F.IDENTITY_ENV, str(fleet.identity))
    monkeypatch.setenv(KEY_ENV, GossipKey.generate().reveal())
    return GossipKey.from_env(KEY_ENV)
