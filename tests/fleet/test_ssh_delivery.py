"""SSH delivery against real sshd on fleet hosts: what is written where, and each refusal.

These drive the delivery session directly (what the provider does per step, without Terraform), so
every fault is cheap to stage; tests/fleet/test_fleet_rollout.py runs the same code through
`cdktf deploy`.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tsegossip.agentconfig import fragment
from tsegossip.backends import delivery as dl
from tsegossip.delivery import Delivery
from tsegossip.keys import GossipKey
from tsegossip.lab import fleet as F
from tsegossip.lab import fleetnet
from tsegossip.phases import Phase
from tests.fleet.helpers import agent_pids, fragments, host_file

pytestmark = pytest.mark.timeout(180)


def ssh_delivery(fleet: F.Fleet, **over) -> Delivery:
    doc = dict(F.spec(fleet)["client_groups"][0]["delivery"])
    doc.update(over)
    return Delivery.from_doc(doc)


def session(fleet: F.Fleet, key: GossipKey | None = None, environ=None, **over) -> dl.Session:
    env = dict(os.environ if environ is None else environ)
    env.setdefault(F.IDENTITY_ENV, str(fleet.identity))
    return dl.open_session(ssh_delivery(fleet, **over), dl.Context(
        secrets=[key.reveal()] if key else [], hide_env=["TSEGOSSIP_FLEET_KEY"], environ=env))


def target(h: F.FleetHost, restart: str = F.RESTART_COMMAND) -> dl.Target:
    return dl.Target(h.name, h.http_addr, F.CONFIG_PATH, restart)


def accept(key: GossipKey) -> dict:
    return fragment(Phase.ACCEPT_ENCRYPTED, key, reveal=True)


def test_write_lands_on_the_nodes_host_atomic_private_owned_and_read_back(fleet):
    key = GossipKey.generate()
    web1 = fleet.host("web-1")
    runner_before = sorted(os.listdir("/etc/consul.d"))
    with session(fleet, key) as s:
        s.preflight([target(web1)])
        s.write(target(web1), accept(key), 30)
        assert s.connections == {web1.addr: 1}
    text = host_file(fleet, "web-1", F.CONFIG_PATH)
    assert key.reveal() in text and '"encrypt_verify_incoming": false' in text
    # the host's own file, owned as the file it replaced (the agent's user, consul), 0600, no temp left
    ls = F.host_run(fleet, "web-1", ["stat", "-c", "%a %u:%g %n", "/etc/consul.d/50-gossip.json"]).stdout.decode()
    assert ls.split()[:2] == ["600", f"{F.CONSUL_UID}:{F.CONSUL_UID}"], ls
    assert "tsegossip" not in F.host_run(fleet, "web-1", ["ls", "-a", "/etc/consul.d"]).stdout.decode()
    # the runner's own /etc/consul.d is untouched, and no other host changed
    assert sorted(os.listdir("/etc/consul.d")) == runner_before
    assert key.reveal() not in host_file(fleet, "web-2", F.CONFIG_PATH)


def test_owner_group_and_mode_as_the_spec_says(fleet):
    key = GossipKey.generate()
    web1 = fleet.host("web-1")
    with session(fleet, key, owner="root", group="consul", mode="0640") as s:
        s.write(target(web1), accept(key), 30)
    ls = F.host_run(fleet, "web-1", ["stat", "-c", "%a %U:%G", F.CONFIG_PATH]).stdout.decode().split()
    assert ls == ["640", "root:consul"]


def test_the_restart_runs_on_the_host_over_the_same_connection(fleet):
    key = GossipKey.generate()
    web1 = fleet.host("web-1")
    before = agent_pids(fleet)
    with session(fleet, key) as s:
        t = target(web1)
        s.preflight([t])
        s.write(t, accept(key), 30)
        result = s.restart(t, 30)
        assert result.ok and s.connections == {web1.addr: 1}
    after = agent_pids(fleet)
    assert after["web-1"] != before["web-1"] and after["web-1"].startswith("running")
    assert {k: v for k, v in after.items() if k != "web-1"} == {k: v for k, v in before.items() if k != "web-1"}
    F.wait_converged(fleet)


def test_unknown_host_key_is_refused_before_anything_is_written_anywhere(fleet):
    key = GossipKey.generate()
    web2 = fleet.host("web-2")
    F.write_known_hosts(fleet, [h for h in fleet.hosts if h.name != "web-2"])
    before = fragments(fleet)
    with session(fleet, key) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(h) for h in fleet.clients])
    msg = str(err.value)
    assert "host key of 198.18.0.15 is unknown" in msg and "nothing was written anywhere" in msg
    fp = F.host_run(fleet, "web-2", ["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.decode()
    assert fp.split()[1] in msg  # the fingerprint seen, to compare on the host
    assert f"ssh-keyscan -p 22 {web2.addr} >> {fleet.known_hosts}" in msg
    assert fragments(fleet) == before


def test_changed_host_key_is_refused_naming_both_fingerprints(fleet):
    key = GossipKey.generate()
    old = F.host_run(fleet, "web-2", ["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1]
    # the host is "reinstalled": a new host key, sshd restarted; the runner's known_hosts keeps the old one
    F.stop_sshd(fleet, "web-2")
    keyfile = fleet.private("web-2", "/etc/ssh/ssh_host_ed25519_key")
    os.unlink(keyfile)
    os.unlink(str(keyfile) + ".pub")
    fleetnet.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keyfile)])
    F.start_sshd(fleet, "web-2")
    new = F.host_run(fleet, "web-2", ["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1]
    before = fragments(fleet)
    with session(fleet, key) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(h) for h in fleet.clients])
    msg = str(err.value)
    assert "HOST KEY CHANGED for 198.18.0.15" in msg
    assert old.decode() in msg and new.decode() in msg and "ssh-keygen -R" in msg
    assert fragments(fleet) == before


def test_wrong_identity_is_refused(fleet, tmp_path):
    other = tmp_path / "other_key"
    fleetnet.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)])
    with session(fleet, environ={**os.environ, F.IDENTITY_ENV: str(other)}) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(fleet.host("web-1"))])
    assert "root@198.18.0.14:22 refused the key(s) offered" in str(err.value)


def test_identity_variable_unset_is_named(fleet, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in (F.IDENTITY_ENV, "SSH_AUTH_SOCK")}
    s = dl.open_session(ssh_delivery(fleet), dl.Context(secrets=[], hide_env=[], environ=env))
    with s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(fleet.host("web-1"))])
    assert f"${F.IDENTITY_ENV} is not set" in str(err.value)


def test_sudo_that_wants_a_password_is_refused_with_nothing_written(fleet):
    key = GossipKey.generate()
    F.set_sudo(fleet.private("web-1", "/etc/sudoers.d"), password=True)
    before = fragments(fleet)
    with session(fleet, key, user=F.DEPLOY_USER, sudo=True) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(fleet.host("web-1")), target(fleet.host("web-2"))])
    msg = str(err.value)
    assert "web-1 (198.18.0.14): sudo -n refused (sudo: a password is required)" in msg
    assert "web-2" not in msg  # web-2's deploy may sudo without a password
    assert fragments(fleet) == before


def test_sudo_without_a_password_writes_and_restarts_as_root(fleet):
    key = GossipKey.generate()
    web1 = fleet.host("web-1")
    with session(fleet, key, user=F.DEPLOY_USER, sudo=True) as s:
        s.preflight([target(web1)])
        s.write(target(web1), accept(key), 30)
        assert s.restart(target(web1), 30).ok
    assert key.reveal() in host_file(fleet, "web-1", F.CONFIG_PATH)
    F.wait_converged(fleet)


def test_read_only_config_directory_is_refused_before_any_write(fleet):
    key = GossipKey.generate()
    F.host_run(fleet, "api-2", ["mount", "-o", "remount,bind,ro", "/etc/consul.d"])
    before = fragments(fleet)
    pids = agent_pids(fleet)
    with session(fleet, key) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(h) for h in fleet.clients])
    assert "api-2 (198.18.0.18): directory /etc/consul.d is not writable" in str(err.value)
    assert fragments(fleet) == before and agent_pids(fleet) == pids


def test_full_config_directory_keeps_the_old_file_and_restarts_nothing(fleet):
    key = GossipKey.generate()
    api1 = fleet.host("api-1")
    old = host_file(fleet, "api-1", F.CONFIG_PATH)
    # a 64 KiB filesystem over the host's /etc/consul.d holding its two files, then filled up
    F.host_run(fleet, "api-1", ["sh", "-c",
                                "cp -a /etc/consul.d /tmp/.keep-$$ && mount -t tmpfs -o size=64k tmpfs /etc/consul.d && "
                                "cp -a /tmp/.keep-$$/. /etc/consul.d/ && rm -rf /tmp/.keep-$$ && "
                                "(dd if=/dev/zero of=/etc/consul.d/filler bs=1k count=200 2>/dev/null; true)"])
    pid = agent_pids(fleet)["api-1"]
    try:
        with session(fleet, key) as s:
            s.preflight([target(api1)])  # writable: the disk is full only once written to
            with pytest.raises(dl.DeliveryFailed) as err:
                s.write(target(api1), accept(key), 30)
        msg = str(err.value)
        assert "disk full" in msg and "the old file is intact and the agent was not restarted" in msg
        assert host_file(fleet, "api-1", F.CONFIG_PATH) == old
        listing = F.host_run(fleet, "api-1", ["ls", "-a", "/etc/consul.d"]).stdout.decode().split()
        assert not [n for n in listing if n.startswith(".tsegossip")], listing
        assert agent_pids(fleet)["api-1"] == pid
    finally:
        F.host_run(fleet, "api-1", ["umount", "/etc/consul.d"], check=False)


def test_sshd_down_names_the_host(fleet):
    F.stop_sshd(fleet, "api-3")
    with session(fleet) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(fleet.host("api-3"))])
    assert "cannot connect to 198.18.0.19:22" in str(err.value) and "is sshd running there?" in str(err.value)


def test_host_cut_off_mid_write_times_out_naming_the_host(fleet):
    key = GossipKey.generate()
    web3 = fleet.host("web-3")
    old = host_file(fleet, "web-3", F.CONFIG_PATH)
    try:
        with session(fleet, key, timeout_seconds=3) as s:
            s.preflight([target(web3)])
            fleetnet.set_link("web-3", up=False)
            t0 = time.monotonic()
            with pytest.raises(dl.DeliveryFailed) as err:
                s.write(target(web3), accept(key), 30)
            assert time.monotonic() - t0 < 10
        assert "on 198.18.0.16 did not finish within 3s" in str(err.value)
        assert "cut off" in str(err.value)
    finally:
        fleetnet.set_link("web-3", up=True)
    assert host_file(fleet, "web-3", F.CONFIG_PATH) == old


def test_the_key_travels_only_on_stdin(fleet):
    """While fragments are written to every client host, no process on this machine (the runner's and
    the hosts': namespaced processes are in the same /proc) has the key in its argv or environment."""
    key = GossipKey.generate()
    raw = key.reveal().encode()
    seen: list[str] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{what}", "rb") as fh:
                            if raw in fh.read():
                                seen.append(f"{pid}/{what}")
                    except OSError:
                        pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with session(fleet, key) as s:
            targets = [target(h, restart="sleep 0.3") for h in fleet.clients]
            s.preflight(targets)
            for t in targets:
                s.write(t, accept(key), 30)
                s.restart(t, 30)
    finally:
        stop.set()
        sampler.join(10)
    assert seen == []
    assert all(key.reveal() in host_file(fleet, h.name, F.CONFIG_PATH) for h in fleet.clients)


def test_through_a_jump_host(fleet):
    """jump_host: the runner connects to server-1, which opens the channel to web-1 (web-1's sshd logs
    the jump host's address, not the runner's); both host keys are verified against known_hosts."""
    key = GossipKey.generate()
    web1, jump = fleet.host("web-1"), fleet.host("server-1")
    with session(fleet, key, jump_host={"host": jump.addr}) as s:
        s.preflight([target(web1)])
        s.write(target(web1), accept(key), 30)
        assert s.connections == {web1.addr: 1, f"{jump.addr} (jump host)": 1}
    assert key.reveal() in host_file(fleet, "web-1", F.CONFIG_PATH)
    log = host_file(fleet, "web-1", "/etc/ssh/sshd.log")
    assert f"Accepted publickey for root from {jump.addr}" in log and "from 198.18.0.1 " not in log
    # an unknown jump host is refused like any other host
    F.write_known_hosts(fleet, [h for h in fleet.hosts if h.name != "server-1"])
    with session(fleet, key, jump_host={"host": jump.addr}) as s:
        with pytest.raises(dl.DeliveryFailed) as err:
            s.preflight([target(fleet.host("web-2"))])
    assert f"host key of {jump.addr} is unknown" in str(err.value)
