"""The lab manager: layout, spec, restart, start/stop, CLI."""
import argparse
import json
import os
import shutil

import consul
import pytest

from tsegossip import lab
from tsegossip.lab import agentapi, cli
from tsegossip.lab import cluster as lc


@pytest.fixture
def leave_waits(monkeypatch):
    """Names of the agents whose restart waited for the servers to drop them (the leave wait)."""
    calls = []
    real = lc._wait_left

    def spy(cluster, node, *args, **kwargs):
        calls.append(node.name)
        return real(cluster, node, *args, **kwargs)

    monkeypatch.setattr(lc, "_wait_left", spy)
    return calls


def test_layout_and_spec(plain_lab, tmp_path):
    wd = plain_lab.workdir
    desc = json.load(open(os.path.join(wd, "lab.json")))
    assert lab.load(wd) == plain_lab and desc["groups"] == ["web", "api"]
    for n in plain_lab.nodes:
        base = json.load(open(os.path.join(n.config_dir, "00-base.json")))
        assert base["node_name"] == n.name and base["data_dir"] == n.data_dir
        assert base["ports"]["serf_lan"] == n.serf_port and base["ports"]["http"] == n.http_port
        # Consul's own leave_on_terminate per role unless asked: nothing written
        assert base["server"] is (n.role == "server") and "leave_on_terminate" not in base
        assert base.get("bootstrap_expect") == (3 if n.role == "server" else None)
        assert base["ports"]["grpc_tls"] == -1 and base["ports"]["serf_wan"] == -1
        others = [s.serf_addr for s in plain_lab.servers if s.name != n.name]
        assert base["retry_join"] == others
        assert json.load(open(n.config_path)) == {}
        assert int(open(n.pid_path).read()) == lab.node_pid(plain_lab, n.name)
    spec = lab.write_spec(plain_lab, tmp_path / "spec.json", tsegossip_cmd="/usr/bin/tsegossip")
    assert json.load(open(tmp_path / "spec.json")) == spec
    assert spec["target"] == "enforced" and spec["strategy"] == "smooth" and spec["key_env"] == "TSEGOSSIP_KEY"
    s = spec["servers"]
    assert s["type"] == "self-managed" and s["phase"] == "plaintext"
    assert s["http_addr"] == plain_lab.node("server-1").http_addr
    assert s["config_path"] == f"{wd}/{{node}}/config/50-gossip.json"
    assert s["restart_command"] == f"/usr/bin/tsegossip lab restart --dir {wd} {{node}}"
    assert [x["name"] for x in s["nodes"]] == ["server-1", "server-2", "server-3"]
    assert [g["name"] for g in spec["client_groups"]] == ["web", "api"]
    web = spec["client_groups"][0]
    assert web == {"name": "web", "phase": "plaintext", "joined": True, "batch_size": 1,
                   "config_path": s["config_path"], "restart_command": s["restart_command"],
                   "nodes": [{"name": "web-1", "http_addr": plain_lab.node("web-1").http_addr}]}
    assert "lab restart --dir" in lab.write_spec(plain_lab, tmp_path / "s2.json")["servers"]["restart_command"]


def test_status_rows(plain_lab):
    rows = lab.status(plain_lab.workdir)
    assert [r.name for r in rows] == [n.name for n in plain_lab.nodes]
    for r in rows:
        assert r.running and r.pid and r.error is None
        assert r.members_alive == 5 and r.members_failed == 0
        assert r.encrypted is False and r.verify_incoming is True and r.verify_outgoing is True


def test_restart_stop_start(tmp_path, lab_binary, capsys, leave_waits):
    with lab.running_lab(tmp_path, servers=2, clients=2, groups=2, binary=lab_binary) as c:
        # the restart re-reads the fragment: Consul refuses a key it does not know, naming it
        lab.write_fragment(c, "server-1", {"bogus_key": 1})
        with pytest.raises(lab.LabError, match="invalid config key bogus_key"):
            lab.restart(c.workdir, "server-1", timeout=45)
        assert leave_waits == [], "a server (Consul's default: no leave on terminate) is not waited out"
        lab.write_fragment(c, "server-1", {"node_meta": {"restarted": "yes"}})
        lab.start(c, "server-1", timeout=45)
        me = consul.Consul(host="127.0.0.1", port=c.node("server-1").http_port).agent.self()
        assert me["Meta"]["restarted"] == "yes"
        old = lab.node_pid(c, "web-1")
        lab.restart(c.workdir, "web-1", timeout=45)
        assert lab.node_pid(c, "web-1") not in (None, old)
        assert leave_waits == ["web-1"], "an agent that leaves on terminate is restarted after its leave"
        assert "lab: restarted web-1" in capsys.readouterr().err
        lab.wait_converged(c, timeout=10)
        assert lab.stop(c, "web-1") == "stopped"
        assert lab.node_pid(c, "web-1") is None and lab.stop(c, "web-1") == "not running"
        rows = {r.name: r for r in lab.status(c)}
        assert not rows["web-1"].running and rows["web-1"].error == "not running"
        assert rows["server-1"].members["web-1"] in ("left", "leaving")
        lab.start(c, "web-1", timeout=45)
        lab.wait_converged(c, timeout=10)
        with pytest.raises(lab.LabError, match="already running"):
            lab.start(c, "web-1")


def test_restart_without_leave_is_never_seen_as_left_or_failed(tmp_path, lab_binary, leave_waits):
    """leave_on_terminate=false (Consul's server default): a restart is a stop and start that the
    peers ride through; the servers keep listing the agent alive, and it comes back as a new process."""
    import threading
    import time

    with lab.running_lab(tmp_path, servers=3, clients=2, groups=1, binary=lab_binary,
                         leave_on_terminate=False) as c:
        for n in c.nodes:
            assert json.load(open(os.path.join(n.config_dir, "00-base.json")))["leave_on_terminate"] is False
        seen: set = set()
        done = threading.Event()

        def watch():
            while not done.is_set():
                for s in c.servers:
                    status = (agentapi.members(s, timeout=0.5) or {}).get("web-1")
                    if status is not None:
                        seen.add(status)
                done.wait(0.02)  # the sampling interval, not a wait for a condition

        t = threading.Thread(target=watch)
        t.start()
        old = lab.node_pid(c, "web-1")
        try:
            lab.restart(c.workdir, "web-1", timeout=45)
            # keep sampling for 0.5 s after the restart: a late leave or failure would show here
            time.sleep(0.5)
        finally:
            done.set()
            t.join()
        assert lab.node_pid(c, "web-1") not in (None, old)
        assert seen == {1}, f"the servers listed web-1 as {sorted(seen)}; only alive (1) was expected"
        # how much sooner the restart is back without a leave is measured by bench/restart_bench.py
        assert leave_waits == [], "without a leave there is no leave to wait for"
        assert "Gracefully shutting down" not in open(c.node("web-1").log_path).read()


def test_bad_key_fails_start_with_log(tmp_path, lab_binary):
    with lab.running_lab(tmp_path, servers=1, clients=1, groups=1, binary=lab_binary) as c:
        lab.write_fragment(c, "web-1", {"encrypt": "not-a-key!"})
        with pytest.raises(lab.LabError) as ei:
            lab.restart(c, "web-1", timeout=10)
        assert "exited during start-up" in str(ei.value)
        assert "encrypt has invalid key: illegal base64 data" in str(ei.value)
        lab.write_fragment(c, "web-1", {"encrypt": "AAAA"})  # valid base64, 3 bytes
        with pytest.raises(lab.LabError, match="Failed to configure keyring: Invalid key: key size must be 16, 24 or 32 bytes"):
            lab.start(c, "web-1", timeout=10)


def test_restart_split_node_reports_no_rejoin(tmp_path, lab_binary):
    with lab.running_lab(tmp_path, servers=1, clients=1, groups=1, binary=lab_binary) as c:
        lab.write_fragment(c, "web-1", lab.phase_fragment("enforced", lab.generate_key()))
        with pytest.raises(lab.LabError) as ei:
            lab.restart(c, "web-1", timeout=4)
        assert "did not rejoin" in str(ei.value)
        assert "Remote state is" in str(ei.value) or "couldn't join" in str(ei.value)


def test_down_is_idempotent(tmp_path, lab_binary):
    custom = tmp_path / "my-agent"  # any binary name works (pid checks use the node's config dir)
    shutil.copy(lab_binary, custom)
    c = lab.up(tmp_path / "l", servers=1, clients=0, groups=0, binary=custom)
    pid = lab.node_pid(c, "server-1")
    assert pid
    assert lab.down(c.workdir) == {"server-1": "stopped"}
    assert lab.down(c.workdir) == {}
    assert lab.down(tmp_path / "nothing-here") == {}
    # re-up in the same dir keeps node files unless fresh=True
    lab.write_fragment(c, "server-1", {"datacenter": "dc1"})
    c2 = lab.up(c.workdir, servers=1, clients=0, groups=0, binary=custom, wait=False)
    lab.down(c2)
    assert json.load(open(c2.node("server-1").config_path)) == {"datacenter": "dc1"}
    c3 = lab.up(c.workdir, servers=1, clients=0, groups=0, binary=custom, wait=False, fresh=True)
    lab.down(c3)
    assert json.load(open(c3.node("server-1").config_path)) == {}
    assert os.path.exists(c.node("server-1").log_path)  # files kept
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_up_refuses_running_lab(plain_lab):
    with pytest.raises(lab.LabError, match="already running"):
        lab.up(plain_lab.workdir, servers=1, clients=0, groups=0)


# ------------------------------------------------------------------ CLI

def parser():
    p = argparse.ArgumentParser(prog="tsegossip")
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    return p


@pytest.mark.parametrize("argv", [["lab"], ["lab", "up"], ["lab", "status"], ["lab", "restart"], ["lab", "down"]])
def test_cli_help(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        parser().parse_args(argv + ["--help"])
    assert ei.value.code == 0
    assert "usage: tsegossip lab" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    p = parser()
    args = p.parse_args(["lab", "status", "--dir", str(tmp_path / "missing")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no lab in ") and err.count("\n") == 1 and "Traceback" not in err
    args = p.parse_args(["lab", "restart", "--dir", str(tmp_path / "missing"), "web-1"])
    assert args.func(args) == 1
    assert capsys.readouterr().err.startswith("error: ")
    args = p.parse_args(["lab", "down", "--dir", str(tmp_path / "missing")])
    assert args.func(args) == 0


def test_cli_up_status_down(tmp_path, lab_binary, capsys, monkeypatch):
    monkeypatch.delenv("TSEGOSSIP_KEY", raising=False)
    p = parser()
    d = str(tmp_path / "l")
    args = p.parse_args(["lab", "up", "--dir", d, "--servers", "1", "--clients", "2", "--groups", "1",
                         "--binary", lab_binary, "--servers-phase", "accept-encrypted",
                         "--spec-out", str(tmp_path / "spec.json")])
    try:
        assert args.func(args) == 0
        err = capsys.readouterr().err
        assert "lab: started server-1" in err and "lab: started web-2" in err
        key_file = os.path.join(d, "gossip.key")
        assert f"export TSEGOSSIP_KEY=$(cat {os.path.abspath(key_file)})" in err
        key = open(key_file).read().strip()
        assert key not in err  # the generated key is never printed
        assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
        assert json.load(open(os.path.join(d, "server-1", "config", "50-gossip.json")))["encrypt"] == key
        spec = json.load(open(tmp_path / "spec.json"))
        assert spec["servers"]["phase"] == "accept-encrypted" and spec["client_groups"][0]["phase"] == "plaintext"
        args = p.parse_args(["lab", "status", "--dir", d, "--format", "json"])
        assert args.func(args) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["encrypted"] for r in rows] == [True, False, False]
        args = p.parse_args(["lab", "status", "--dir", d])
        assert args.func(args) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].split()[:3] == ["NODE", "ROLE", "PID"] and "web-2" in out
        args = p.parse_args(["lab", "restart", "--dir", d, "web-1"])
        assert args.func(args) == 0
        assert "lab: restarted web-1" in capsys.readouterr().err
    finally:
        args = p.parse_args(["lab", "down", "--dir", d])
        assert args.func(args) == 0
