"""The fleet itself: hosts that really are apart (addresses, filesystems, users), a network that reaches
nothing else, a `down` that cleans up after a crash, and the demo's --hosts mode."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tsegossip.keys import GossipKey
from tsegossip.lab import fleet as F
from tsegossip.lab import fleetnet
from tests.support import console_script

pytestmark = pytest.mark.timeout(240)


def ssh(fleet: F.Fleet, host: str, command: str, user: str = "root") -> subprocess.CompletedProcess:
    """The OpenSSH client with the fleet's ssh_config (host keys verified), as an operator would."""
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), f"{user}@{fleet.host(host).addr}", command],
                          capture_output=True, text=True, timeout=30)


def test_each_host_has_its_own_address_name_and_filesystem(fleet):
    r = ssh(fleet, "web-1", "hostname; ip -4 -o addr show dev eth0; cat /etc/consul.d/00-base.json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "web-1" and "198.18.0.14/24" in r.stdout
    assert '"node_name": "web-1"' in r.stdout
    # a file the runner writes to its own /etc/consul.d is invisible on the hosts ...
    probe = Path("/etc/consul.d/zz-runner-probe.json")
    probe.write_text("{}")
    try:
        assert ssh(fleet, "web-1", f"test -e {probe}").returncode == 1
    finally:
        probe.unlink()
    # ... and one a host writes is invisible to the runner and to the other hosts
    assert ssh(fleet, "web-1", "echo '{}' > /etc/consul.d/zz-host-probe.json").returncode == 0
    assert not Path("/etc/consul.d/zz-host-probe.json").exists()
    assert ssh(fleet, "web-2", "test -e /etc/consul.d/zz-host-probe.json").returncode == 1
    # its own users: consul owns the config dir; deploy logs in and may sudo
    assert ssh(fleet, "web-1", "stat -c %U /etc/consul.d").stdout.strip() == "consul"
    assert ssh(fleet, "web-1", "sudo -n id -u", user=F.DEPLOY_USER).stdout.strip() == "0"


def test_the_network_reaches_only_the_fleet(fleet):
    route = fleetnet.run(["ip", "route", "get", "198.18.1.1"], check=False)
    assert route.returncode != 0 and "No route to host" in route.stderr.decode()
    inside = F.host_run(fleet, "web-1", ["ip", "route"]).stdout.decode()
    assert "default" not in inside and "198.18.0.0/24" in inside
    out = F.host_run(fleet, "web-1", ["ip", "route", "get", "192.0.2.1"], check=False)
    assert out.returncode != 0  # no way out of a host but the bridge
    assert F.host_run(fleet, "web-1", ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]).stdout.strip() == b"1"


def test_down_removes_what_a_crashed_run_left(make_fleet):
    fleet = make_fleet(servers=1, groups={"web": 1})
    (fleet.root / "fleet.json").unlink()  # the record is gone, as after a crash mid-up
    removed = F.down(fleet.workdir)
    assert set(removed) == {"server-1", "web-1"}
    assert fleetnet.existing_netns() == [] and not fleetnet.link_exists(fleetnet.BRIDGE)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(fleet.root) not in mounts
    assert not fleet.root.exists()
    assert F.down(fleet.workdir) == []  # idempotent


def test_up_replaces_an_earlier_fleet(make_fleet):
    first = make_fleet(servers=1, groups={"web": 1})
    second = make_fleet(servers=1, groups={"api": 2})
    assert [h.name for h in second.hosts] == ["server-1", "api-1", "api-2"]
    assert fleetnet.existing_netns() == ["tsgf-api-1", "tsgf-api-2", "tsgf-server-1"]
    assert F.wait_converged(second)
    assert not Path(first.workdir).exists()  # removed, mounts and all
    assert str(first.workdir) not in Path("/proc/self/mountinfo").read_text()


def test_the_fleet_command_line(tmp_path, fleet_binary):
    env = dict(os.environ, TSEGOSSIP_FLEET_DIR=str(tmp_path / "f"), TSEGOSSIP_FLEET_KEY=GossipKey.generate().reveal())
    run = lambda *a: subprocess.run([console_script(), "lab", "fleet", *a], capture_output=True, text=True,  # noqa: E731
                                    env=env, timeout=120)
    try:
        up = run("up", "--servers", "1", "--group", "web=2", "--spec-out", str(tmp_path / "spec.json"))
        assert up.returncode == 0, up.stderr
        assert f"export {F.IDENTITY_ENV}=" in up.stderr
        st = run("status")
        assert st.returncode == 0 and st.stdout.count("member=alive") == 3, st.stdout
        assert subprocess.run([console_script(), "validate", str(tmp_path / "spec.json")], capture_output=True,
                              env=env, timeout=60).returncode == 0
        bad = run("up", "--group", "web")
        assert bad.returncode == 2 and "'web' is not NAME=COUNT" in bad.stderr
    finally:
        down = run("down")
    assert down.returncode == 0 and "removed 3 host(s)" in down.stderr
    assert run("down").stderr.strip() == "fleet: nothing to remove"


def test_demo_on_hosts(tmp_path, fleet_binary):
    r = subprocess.run([console_script(), "demo", "--hosts", "--dir", str(tmp_path / "demo"), "--clients", "4"],
                       capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "delivery ssh root@{http_host}:22" in r.stdout
    assert "7/7 nodes as expected" in r.stdout and "== fleet of hosts stopped" in r.stdout
    assert fleetnet.existing_netns() == []
