"""A key rotation on the multi-host fleet through `cdktf deploy`, stack by stack, with a membership probe.

The runner is this machine's root namespace: cdktf, OpenTofu and the provider run here and reach the hosts
only over HTTP (the keyring calls and every observation) and SSH (the fragments).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from tsegossip import deploy, rotation, spec
from tsegossip.keys import GossipKey, key_for_plan, rotation_key_for_plan
from tsegossip.lab import fleet as F
from tsegossip.observe import keyring
from tests.fleet.conftest import KEY_ENV
from tests.fleet.helpers import Out, Probe, agent_pids, fragments
from tests.support import ROOT

NEW_ENV = "TSEGOSSIP_FLEET_NEW_KEY"
ENFORCED = "enforced"


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _rotation_plan(tmp_path: Path, doc: dict):
    """The rotation spec `doc` written to tmp_path/spec.json and planned with both keys' fingerprints from the
    environment: (spec path, plan)."""
    doc["rotate_to_env"] = NEW_ENV
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(doc, indent=2))
    rollout = spec.load(spec_path)
    _, old_shown = key_for_plan(rollout.key_env, None)
    _, new_shown = rotation_key_for_plan(NEW_ENV, None, old_shown)
    return spec_path, rotation.plan_rotation(rollout, old_shown, new_shown)


def _web_fleet(make_fleet, monkeypatch, prefix: str):
    """3 servers + web (2 hosts) enforced with a fresh key, both keys exported, and a spec doc with
    down_nodes: skip on web: (fleet, old, new, doc, web's group doc)."""
    old, new = GossipKey.generate(), GossipKey.generate()
    fleet = make_fleet(groups={"web": 2}, phases={"servers": ENFORCED, "clients": ENFORCED}, key=old.reveal())
    monkeypatch.setenv(F.IDENTITY_ENV, str(fleet.identity))
    monkeypatch.setenv(KEY_ENV, old.reveal())
    monkeypatch.setenv(NEW_ENV, new.reveal())
    doc = F.spec(fleet, name=f"{prefix}-{uuid.uuid4().hex[:6]}", phases={"servers": ENFORCED, "web": ENFORCED})
    [web] = [g for g in doc["client_groups"] if g["name"] == "web"]
    web["down_nodes"] = "skip"
    return fleet, old, new, doc, web


@pytest.mark.timeout(300)
def test_rotation_stage_by_stage_on_3_servers_and_2_groups_over_ssh(make_fleet, tmp_path, monkeypatch):
    """3 servers + web and api (2 hosts each), started enforced with key A (initial fragments: no phase
    rollout needed), rotated to key B with the four stacks <name>-rotate-{1-install,2-use,3-configs,4-remove},
    one `cdktf deploy` each, while the probe lists every host's members every 0.25 s from the runner.

    Where each side effect happens:
      install / use / remove  one keyring call each, from the runner (the provider, in this machine's root
                              namespace) to servers.http_addr = server-1's HTTP API (198.18.0.11:8500); Consul
                              fans it out over the LAN pool. The keyring is listed the same way.
      configs                 every agent's own /etc/consul.d/50-gossip.json, written on that agent's host
                              (its own mount namespace) over ssh root@<host>:22, no restart; the runner's
                              own /etc/consul.d is never written.
      state, progress.log,    on the runner, under the test's work dir: fingerprints only, never a key.
      cdktf output
    """
    old = GossipKey.generate()
    new = GossipKey.generate()
    fleet = make_fleet(groups={"web": 2, "api": 2}, phases={"servers": ENFORCED, "clients": ENFORCED},
                       key=old.reveal())
    monkeypatch.setenv(F.IDENTITY_ENV, str(fleet.identity))
    monkeypatch.setenv(KEY_ENV, old.reveal())
    monkeypatch.setenv(NEW_ENV, new.reveal())
    name = f"fleet-rot-{uuid.uuid4().hex[:6]}"
    server_api = fleet.servers[0].http_addr
    runner_fragment_before = Path(F.CONFIG_PATH).read_bytes() if Path(F.CONFIG_PATH).exists() else None

    doc = F.spec(fleet, name=name, phases={"servers": ENFORCED, "web": ENFORCED, "api": ENFORCED})
    assert doc["servers"]["http_addr"] == server_api and doc["servers"]["delivery"]["method"] == "ssh"
    spec_path, plan = _rotation_plan(tmp_path, doc)
    assert [s.stack for s in plan.stages] == [f"{name}-rotate-{s}" for s in
                                              ("1-install", "2-use", "3-configs", "4-remove")]

    # the starting point: every host enforced with A, A the only key everywhere
    ring = keyring(server_api)
    assert ring.primary_everywhere(old.fingerprint) and ring.held_nowhere(new.fingerprint), ring.describe()
    assert all(json.loads(f)["encrypt"] == old.reveal() for f in fragments(fleet).values())
    pids = agent_pids(fleet)
    assert all(p.startswith("running") for p in pids.values()), pids

    work = tmp_path / "deploy"
    out = Out()
    outputs: list[str] = []
    took: dict[str, float] = {}
    with Probe(fleet) as probe:
        for stage in plan.stages:
            t0 = time.monotonic()
            proc = deploy.run_cdktf("deploy", [stage.stack], spec_path, work, out)
            took[stage.stack] = round(time.monotonic() - t0, 1)
            outputs.append(proc.stdout)
            assert proc.returncode == 0, proc.stdout[-4000:]
            ring = keyring(server_api)  # runner -> servers.http_addr, as the provider does
            assert not ring.error, ring.error
            if stage.kind is rotation.StageKind.INSTALL:
                assert ring.holds_everywhere(new.fingerprint) and ring.primary_everywhere(old.fingerprint), \
                    ring.describe()
            elif stage.kind is rotation.StageKind.USE:
                assert ring.primary_everywhere(new.fingerprint) and ring.holds_everywhere(old.fingerprint), \
                    ring.describe()
            elif stage.kind is rotation.StageKind.CONFIGS:
                # each host's own file, read inside that host's namespaces (not the runner's view)
                frags = {n: json.loads(t) for n, t in fragments(fleet).items()}
                assert {n: (f["encrypt"] == new.reveal(), f.get("encrypt_verify_incoming"),
                            f.get("encrypt_verify_outgoing")) for n, f in frags.items()} == \
                    {h.name: (True, True, True) for h in fleet.hosts}
                # the keyring is untouched by configs
                assert ring.primary_everywhere(new.fingerprint) and ring.holds_everywhere(old.fingerprint), \
                    ring.describe()
            else:
                assert ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(old.fingerprint), \
                    ring.describe()
    print(f"stage wall times: {took}; probe samples: {probe.samples}")

    # nothing restarted: the same agent process on every host, and no member ever seen failed
    assert agent_pids(fleet) == pids
    assert probe.samples > 100, probe.samples
    assert probe.failed == [], probe.failed

    # the side effects where the docstring says they are
    log = (work / "progress.log").read_text()
    assert f"install key {new.fingerprint} through {server_api}" in log, log
    assert f"use key {new.fingerprint} through {server_api}" in log, log
    assert f"remove key {old.fingerprint} through {server_api}" in log, log
    assert "delivery ssh root@{http_host}:22" in out.getvalue(), out.getvalue()[-4000:]
    now = Path(F.CONFIG_PATH).read_bytes() if Path(F.CONFIG_PATH).exists() else None
    assert now == runner_fragment_before  # the runner's own /etc/consul.d was not written

    # neither key in progress.log, cdktf output, state files (or anything else the deploy left on the runner)
    states = list(work.rglob("*.tfstate")) + list(ROOT.glob(f"terraform.{name}-*.tfstate*"))
    assert {p.name for p in states} >= {f"{s.stack}.tfstate" for s in plan.stages}, states
    texts = {"progress.log": log, "echoed output": out.getvalue(),
             **{f"cdktf deploy {s.stack}": o for s, o in zip(plan.stages, outputs)},
             **{str(p): p.read_text() for p in states}}
    for what, text in texts.items():
        assert old.reveal() not in text and new.reveal() not in text, what
    left = [str(p) for p in _files_under(work)
            if old.reveal().encode() in p.read_bytes() or new.reveal().encode() in p.read_bytes()]
    assert left == []
    assert os.environ[KEY_ENV] == old.reveal()  # (the scan looked for the right bytes)

    # `tsegossip deploy SPEC` now finds the rotation done from the live keyring and deploys nothing
    again = Out()
    assert deploy.deploy_rotation(plan, spec_path, work, out=again) == []
    assert "nothing to do: every rotation stage is already done" in again.getvalue()


@pytest.mark.timeout(300)
def test_a_rotation_straggler_is_brought_back_through_the_keyring_api_and_its_own_host(make_fleet, tmp_path,
                                                                                        monkeypatch):
    """web-2's agent is down through the whole rotation (down_nodes: skip on web), comes back with the old
    keyring only and reads nothing the others send; `tsegossip repair --keyring` brings it back.

    Where each side effect happens: the keyring calls from the runner to server-1's HTTP API (198.18.0.11);
    web-2's rewritten fragment on web-2's own host (its mount namespace) over ssh; nothing on the runner but
    state and logs (fingerprints only)."""
    from tsegossip import observe
    from tsegossip.waiting import wait_until

    fleet, old, new, doc, _ = _web_fleet(make_fleet, monkeypatch, "fleet-rj")
    spec_path, plan = _rotation_plan(tmp_path, doc)
    rollout = plan.rollout
    server_api, work = fleet.servers[0].http_addr, tmp_path / "deploy"

    F.consulctl(fleet, "web-2", "stop", timeout=40)
    with Probe(fleet) as probe:
        done = deploy.deploy_rotation(plan, spec_path, work, out=Out())
        assert [r.stack for r in done] == [s.stack for s in plan.stages]
        ring = keyring(server_api)
        assert ring.num_nodes == 4 and ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(old.fingerprint)
        assert json.loads(fragments(fleet)["web-2"])["encrypt"] == old.reveal()  # skipped: not rewritten

        F.consulctl(fleet, "web-2", "start")
        web2 = fleet.host("web-2")
        assert wait_until(lambda: (observe.node_settings(web2.http_addr, "web-2").reachable, None),
                          timeout=30, interval=0.5).ok
        time.sleep(3)
        assert F.members(fleet).get("web-2") != "alive"  # cut off: it holds only the old key
        out = Out()
        assert deploy.rejoin_keyring(plan, spec_path, work, out=out) is True
    text = out.getvalue()
    assert "== keyring rejoin: cdktf deploy" in text and "for web-2 (web)" in text
    assert F.wait_converged(fleet, timeout=30)["web-2"] == "alive"
    ring = keyring(server_api)
    assert ring.num_nodes == 5 and ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(old.fingerprint)
    # web-2's own file, read inside its host's namespaces: the new key, delivered over ssh
    assert json.loads(fragments(fleet)["web-2"])["encrypt"] == new.reveal()
    log = (work / "progress.log").read_text()
    assert (f"web ({rollout.name}/{rollout.name}-keyring-rejoin): 1 node(s) to rewrite in enforced in 1 batch(es), "
            "delivery ssh root@{http_host}:22") in log, log[-3000:]
    outside = [f for f in probe.failed if "web-2" not in (f[1], f[2])]
    assert probe.samples > 50 and outside == [], outside
    assert old.reveal() not in log + text and new.reveal() not in log + text


@pytest.mark.timeout(300)
def test_a_member_that_missed_the_install_is_named_from_its_keyring_read_on_its_own_host(make_fleet, tmp_path,
                                                                                          monkeypatch):
    """web-2 is down during install (down_nodes: skip), back holding the old key only (the old key is still
    everyone's primary, so it rejoins); the use stage is refused before its call, naming web-2: its
    serf/local.keyring read on web-2's own host over ssh (data_dir in the spec), only sha256s sent back."""
    from tsegossip.waiting import wait_until

    fleet, old, new, doc, web = _web_fleet(make_fleet, monkeypatch, "fleet-nm")
    doc["servers"]["data_dir"] = web["data_dir"] = "/var/lib/consul/data"
    spec_path, plan = _rotation_plan(tmp_path, doc)
    server_api, work = fleet.servers[0].http_addr, tmp_path / "deploy"

    F.consulctl(fleet, "web-2", "stop", timeout=40)
    install, use = plan.stages[0].stack, plan.stages[1].stack
    proc = deploy.run_cdktf("deploy", [install], spec_path, work, Out())
    assert proc.returncode == 0, proc.stdout[-4000:]
    F.consulctl(fleet, "web-2", "start")
    assert F.wait_converged(fleet, timeout=60)["web-2"] == "alive"
    assert wait_until(lambda: (keyring(server_api).num_nodes == 5, None), timeout=20, interval=0.5).ok
    ring = keyring(server_api)
    assert ring.lan.keys.get(new.fingerprint) == 4, ring.describe()

    proc = deploy.run_cdktf("deploy", [use], spec_path, work, Out())
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())
    assert (f"key sha256:{new.fingerprint} is installed on 4 of 5 members of the dc1 LAN pool; 1 lacks it: web-2 "
            "(from their serf/local.keyring)") in said, said[-3000:]
    assert keyring(server_api).primary_everywhere(old.fingerprint)  # refused before the call: nothing changed
    log = (work / "progress.log").read_text()
    assert "read 5 of 5 agents' serf/local.keyring where they run" in log, log[-2000:]
    for text in (log, proc.stdout):
        assert old.reveal() not in text and new.reveal() not in text
