"""Rollouts on the multi-host fleet through `cdktf deploy`, stack by stack.

The runner is this machine's root namespace: cdktf, OpenTofu and the provider run here and reach
the hosts only over SSH (delivery) and HTTP (observation). Each host writes its own config and
restarts its own agent.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from tsegossip import check, deploy, planner, spec
from tsegossip.lab import fleet as F
from tests.fleet.conftest import KEY_ENV
from tests.fleet.helpers import Out, Probe, agent_pids, fragments
from tests.support import ROOT

pytestmark = pytest.mark.timeout(420)

OPENSSH_DELIVER = str(ROOT / "examples" / "delivery" / "openssh-deliver")


def write_spec(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def phases_on_hosts(fleet: F.Fleet) -> dict[str, str]:
    from tsegossip import observe
    return {h.name: observe.node_settings(h.http_addr, h.name, None, 2.0).label for h in fleet.hosts}


class KeySampler(threading.Thread):
    """Every process on this machine (the hosts' too: same /proc), while a rollout runs: argv must never
    hold the key, and an environment only in the deploy's own process tree (which inherits $key_env
    from the operator, by design) -- never a host's process, an ssh or a restart command."""

    def __init__(self, raw: str) -> None:
        super().__init__(daemon=True)
        self.raw = raw.encode()
        self.me = os.getpid()
        self.in_argv: list[str] = []
        self.in_env_outside: list[str] = []
        self.rounds = 0
        self._halt = threading.Event()

    def _in_our_tree(self, pid: str) -> bool:
        for _ in range(64):
            if int(pid) == self.me:
                return True
            try:
                with open(f"/proc/{pid}/status") as fh:
                    pid = next(ln.split()[1] for ln in fh if ln.startswith("PPid:"))
            except (OSError, StopIteration):
                return False
            if pid == "0":
                return False
        return False

    def run(self) -> None:
        while not self._halt.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        argv = fh.read()
                    with open(f"/proc/{pid}/environ", "rb") as fh:
                        env = fh.read()
                except OSError:
                    continue
                if self.raw in argv:
                    self.in_argv.append(argv.replace(b"\0", b" ").decode(errors="replace")[:80])
                if self.raw in env and not self._in_our_tree(pid):
                    self.in_env_outside.append(argv.replace(b"\0", b" ").decode(errors="replace")[:80])
            self.rounds += 1
            self._halt.wait(0.2)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self.join(10)


def files_holding(raw: bytes, roots: list[Path], since: float, skip: list[Path]) -> list[str]:
    """Files under `roots` changed since `since` whose content holds `raw`."""
    found = []
    skip_s = [str(s) for s in skip]
    for root in roots:
        for dirpath, dirs, names in os.walk(root):
            if any(dirpath == s or dirpath.startswith(s + "/") for s in skip_s):
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(dirpath, d))]
            for n in names:
                p = os.path.join(dirpath, n)
                try:
                    st = os.lstat(p)
                    if not os.path.isfile(p) or os.path.islink(p) or st.st_mtime < since or st.st_size > 64 << 20:
                        continue
                    with open(p, "rb") as fh:
                        if raw in fh.read():
                            found.append(p)
                except OSError:
                    continue
    return found


def test_smooth_over_ssh_on_3_servers_and_2_groups_leaves_no_key_on_the_runner(fleet, fleet_env, tmp_path):
    key = fleet_env
    t_start = time.time()
    spec_path = write_spec(tmp_path / "spec.json", F.spec(fleet, name="fleet-smooth", batch_size=2))
    plan = planner.plan(spec.load(spec_path))
    assert [s.stack for s in plan.steps] == ["fleet-smooth-1-accept-encrypted", "fleet-smooth-2-send-encrypted",
                                             "fleet-smooth-3-enforced"]
    out = Out()
    with KeySampler(key.reveal()) as sampler, Probe(fleet) as probe:
        results = deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
    assert [r.stack for r in results] == [s.stack for s in plan.steps] and all(r.verdict_ok for r in results)
    assert "delivery ssh root@{http_host}:22" in out.getvalue()
    assert phases_on_hosts(fleet) == {h.name: "enforced" for h in fleet.hosts}
    verdict = check.run_check(plan.rollout, key, plan.final)
    assert verdict.ok and f"{key.fingerprint}* on 9/9" in verdict.keyring, check.as_table(verdict)
    assert verdict.audit() == f"9/9 members enforced, keyring dc1 LAN: {key.fingerprint}* on 9/9 (* = primary)"
    # the membership probe looked all along, and saw no member failed outside the batch in flight
    assert probe.samples > 300, probe.samples
    assert probe.outside_batches(out) == []
    # nothing of the key on the runner: files, argv, environments
    assert sampler.rounds > 20 and sampler.in_argv == [] and sampler.in_env_outside == []
    raw = key.reveal().encode()
    hosts_private = fleet.root / "hosts"
    leaks = files_holding(raw, [ROOT, Path("/tmp"), Path.home(), Path("/etc/consul.d"), Path("/var/lib/consul")],
                          t_start - 1, skip=[hosts_private, ROOT / ".git", ROOT / "node_modules", ROOT / ".venv",
                                             Path.home() / ".cache", Path.home() / "go", Path.home() / ".pyenv"])
    assert leaks == []
    planted = tmp_path / "deploy" / "planted"  # the scan finds what it looks for
    planted.write_bytes(b"x" + raw)
    assert files_holding(raw, [Path("/tmp")], t_start - 1, skip=[hosts_private]) == [str(planted)]
    # on the hosts: the key only in the config and Consul's own keyring, never in a log or a history
    for h in fleet.hosts:
        found = files_holding(raw, [hosts_private / h.name], t_start - 1, skip=[])
        assert {Path(p).name for p in found} <= {"50-gossip.json", "local.keyring"}, found


def test_direct_for_new_clients_over_ssh(make_fleet, fleet_binary, tmp_path, monkeypatch):
    """Scenario 1: servers go plaintext -> enforced in one step (nobody else gossips yet), then the new
    clients, never started so far, get their config over ssh and start encrypted."""
    from tsegossip.keys import GossipKey
    fleet = make_fleet(groups={"web": 2, "api": 2}, not_started=["web", "api"])
    monkeypatch.setenv(F.IDENTITY_ENV, str(fleet.identity))
    monkeypatch.setenv(KEY_ENV, GossipKey.generate().reveal())
    key = GossipKey.from_env(KEY_ENV)
    doc = F.spec(fleet, name="fleet-direct", strategy="direct", not_joined=["web", "api"])
    spec_path = write_spec(tmp_path / "spec.json", doc)
    plan = planner.plan(spec.load(spec_path))
    assert len(plan.steps) == 2
    assert all(a.startswith("stopped") for n, a in agent_pids(fleet).items() if not n.startswith("server"))
    out = Out()
    with Probe(fleet) as probe:
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
    assert phases_on_hosts(fleet) == {h.name: "enforced" for h in fleet.hosts}
    assert all(a.startswith("running") for a in agent_pids(fleet).values())
    assert check.run_check(plan.rollout, key, plan.final).ok
    assert probe.outside_batches(out) == []


def test_one_group_over_ssh_and_one_over_the_operators_command(fleet, fleet_env, tmp_path, monkeypatch):
    key = fleet_env
    monkeypatch.setenv("TSEGOSSIP_SSH_CONFIG", str(fleet.ssh_config))
    command = {"method": "command", "command": [OPENSSH_DELIVER], "timeout_seconds": 30}
    doc = F.spec(fleet, name="fleet-mixed", delivery={"api": command})
    api = next(g for g in doc["client_groups"] if g["name"] == "api")
    api["restart_command"] = f"{OPENSSH_DELIVER} --run {{http_addr}} {F.RESTART_COMMAND}"
    spec_path = write_spec(tmp_path / "spec.json", doc)
    plan = planner.plan(spec.load(spec_path))
    out = Out()
    with Probe(fleet) as probe:
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
    text = out.getvalue()
    assert "web (fleet-mixed/fleet-mixed-1-accept-encrypted): 3 node(s) to move plaintext -> accept-encrypted " \
           "in 3 batch(es), delivery ssh root@{http_host}:22" in text
    assert f"delivery command ({OPENSSH_DELIVER} on the runner)" in text
    assert phases_on_hosts(fleet) == {h.name: "enforced" for h in fleet.hosts}
    assert check.run_check(plan.rollout, key, plan.final).ok
    assert probe.outside_batches(out) == []
    assert all(key.reveal() in f for f in fragments(fleet).values())


def test_sshd_down_on_one_host_stops_the_batch_and_a_rerun_resumes(fleet, fleet_env, tmp_path):
    key = fleet_env
    spec_path = write_spec(tmp_path / "spec.json", F.spec(fleet, name="fleet-resume"))
    plan = planner.plan(spec.load(spec_path))
    first = plan.steps[0].stack
    F.stop_sshd(fleet, "web-2")
    before = fragments(fleet)
    out = Out()
    with pytest.raises(deploy.DeployError) as err:
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[first], out=out)
    assert "rerun to resume" in str(err.value)
    text = " ".join((out.getvalue() + str(err.value)).split())
    # refused before any write of the web group: sshd's absence is found by the preflight
    assert "cannot connect to 198.18.0.15:22" in text and "No node was written to or restarted" in text
    after = fragments(fleet)
    assert after["web-1"] == before["web-1"] and after["web-3"] == before["web-3"]
    # (the servers and the api group went on in parallel; the web group did not start)
    F.start_sshd(fleet, "web-2")
    out2 = Out()
    deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[first], out=out2)
    again = out2.getvalue()
    # the servers and api finished in the first run (in Terraform's state): only web moves now
    assert "progress: servers (" not in again and "progress: api (" not in again, again
    assert "web (fleet-resume/fleet-resume-1-accept-encrypted): 3 node(s) to move" in again
    assert {phases_on_hosts(fleet)[h.name] for h in fleet.hosts} == {"accept-encrypted"}


def test_local_delivery_against_the_fleet_changes_no_agent(fleet, fleet_env, tmp_path, monkeypatch):
    """The old way (write config_path on the runner, restart over ssh) on a real multi-host fleet: the
    runner's file reaches no agent; the agent restarts plaintext and the provider stops at the first."""
    key = fleet_env
    doc = F.spec(fleet, name="fleet-local")
    for role in [doc["servers"], *doc["client_groups"]]:
        role["delivery"] = {"method": "local"}
        role["restart_command"] = f"{OPENSSH_DELIVER} --run {{http_addr}} {F.RESTART_COMMAND}"
    # restarting over ssh from the runner, as examples/ used to (`ssh {node} sudo systemctl restart consul`)
    monkeypatch.setenv("TSEGOSSIP_SSH_CONFIG", str(fleet.ssh_config))
    spec_path = write_spec(tmp_path / "spec.json", doc)
    plan = planner.plan(spec.load(spec_path))
    before = fragments(fleet)
    try:
        with pytest.raises(deploy.DeployError):
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[0].stack],
                                out=Out())
        assert fragments(fleet) == before
        assert set(phases_on_hosts(fleet).values()) == {"plaintext"}
        # the key went where local delivery puts it: the runner's own /etc/consul.d
        assert key.reveal() in Path(F.CONFIG_PATH).read_text()
    finally:
        Path(F.CONFIG_PATH).unlink(missing_ok=True)  # it holds this test's key in clear


def test_discover_fill_in_validate_deploy(fleet, fleet_env, tmp_path):
    """A spec from the live fleet: servers from their tags, groups web and api from the names, phases
    from each host's API; validate names what only the operator knows; filled in, it deploys."""
    import subprocess

    import yaml

    from tests.support import console_script

    out = tmp_path / "discovered.yaml"
    r = subprocess.run([console_script(), "discover", fleet.servers[0].http_addr, "--name", "found",
                        "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "3 server(s), 2 group(s), 6 client(s)" in r.stderr
    doc = yaml.safe_load(out.read_text())
    assert [n["name"] for n in doc["servers"]["nodes"]] == ["server-1", "server-2", "server-3"]
    assert {g["name"]: [n["name"] for n in g["nodes"]] for g in doc["client_groups"]} == {
        "api": ["api-1", "api-2", "api-3"], "web": ["web-1", "web-2", "web-3"]}
    assert {g["phase"] for g in doc["client_groups"]} == {"plaintext"} and doc["servers"]["phase"] == "plaintext"
    assert doc["client_groups"][0]["nodes"][0]["http_addr"] == fleet.host("api-1").http_addr
    doc["key_env"] = KEY_ENV
    out.write_text(yaml.safe_dump(doc))
    bad = subprocess.run([console_script(), "validate", str(out)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "servers.delivery.known_hosts: is required" in bad.stderr, bad.stderr
    for role in [doc["servers"], *doc["client_groups"]]:
        role["delivery"].update(known_hosts=str(fleet.known_hosts), identity_env=F.IDENTITY_ENV)
        role["restart_command"] = F.RESTART_COMMAND
    out.write_text(yaml.safe_dump(doc))
    ok = subprocess.run([console_script(), "validate", str(out)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    plan = planner.plan(spec.load(out))
    deploy.deploy_steps(plan, out, fleet_env, tmp_path / "deploy", stacks=[plan.steps[0].stack], out=Out())
    assert set(phases_on_hosts(fleet).values()) == {"accept-encrypted"}


def test_a_straggler_down_for_the_whole_rollout_is_repaired_over_ssh_on_its_own_host(fleet, fleet_env, tmp_path):
    """web-2's agent is down through all three steps (down_nodes: skip), comes back plaintext into an
    enforced cluster, and `repair` moves just it: the fragment written on web-2's own host over SSH."""
    from tsegossip import observe, repair
    from tsegossip.waiting import wait_until

    key = fleet_env
    doc = F.spec(fleet, name="fleet-repair", batch_size=2)
    [web] = [g for g in doc["client_groups"] if g["name"] == "web"]
    web["down_nodes"] = "skip"
    spec_path = write_spec(tmp_path / "spec.json", doc)
    plan = planner.plan(spec.load(spec_path))
    F.consulctl(fleet, "web-2", "stop", timeout=40)
    deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out(), check_after=False)
    plain = fragments(fleet)["web-2"]
    F.consulctl(fleet, "web-2", "start")
    web2 = fleet.host("web-2")
    assert wait_until(lambda: (observe.node_settings(web2.http_addr, "web-2").label == "plaintext", None),
                      timeout=30, interval=0.5).ok
    others = {n: p for n, p in agent_pids(fleet).items() if n != "web-2"}
    out = Out()
    with Probe(fleet) as probe:
        done = repair.run(plan, spec_path, key, tmp_path / "deploy", out=out)
    text = out.getvalue()
    assert done is not None and {n: p.value for n, p in done.stragglers.items()} == {"web-2": "plaintext"}
    assert f"the cluster is at {plan.steps[-1].stack} (8/9 listed nodes run its phases)" in text
    assert "delivery ssh root@{http_host}:22" in text and "delivery opened 1 connection(s) to 1 host(s)" in text
    assert phases_on_hosts(fleet) == {h.name: "enforced" for h in fleet.hosts}
    assert fragments(fleet)["web-2"] != plain  # rewritten on web-2's own host
    assert {n: p for n, p in agent_pids(fleet).items() if n != "web-2"} == others
    assert [f for f in probe.failed if "web-2" not in (f[1], f[2])] == []
    assert check.run_check(plan.rollout, key, plan.final).ok
    assert key.reveal() not in text
