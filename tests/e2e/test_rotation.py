"""A key rotation through `cdktf deploy`, stack by stack, on real Consul agents, with a membership probe:
install, use, configs, remove; then a new agent with the new config joins, one with the old config is cut off."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Out, Probe, lab_up, make_spec
from tsegossip import deploy, lab, rotation, spec
from tsegossip.keys import GossipKey, key_for_plan, rotation_key_for_plan
from tsegossip.observe import keyring

pytestmark = pytest.mark.usefixtures("cdktf_ready")
NEW_ENV = "TSEGOSSIP_NEW_KEY"


def enforced(key: GossipKey) -> dict:
    return lab.phase_fragment("enforced", key.reveal())


@contextlib.contextmanager
def rotation_lab(tmp_path: Path, binary: str, key: GossipKey, new: GossipKey, name: str, monkeypatch,
                 clients: int, groups: int, lab_kw: dict | None = None, spec_kw: dict | None = None, **spec_fields):
    """A lab enforced with `key`, the new key in $TSEGOSSIP_NEW_KEY and a rotation spec for it: (lab, spec path).
    lab_kw goes to lab.up (secure=True), spec_kw to lab.write_spec (token_env=...)."""
    monkeypatch.setenv(NEW_ENV, new.reveal())
    with lab_up(tmp_path, binary, servers=3, clients=clients, groups=groups,
                initial_fragments={"servers": enforced(key), "clients": enforced(key)}, **(lab_kw or {})) as c:
        spec_path = tmp_path / "spec.json"
        doc = make_spec(c, spec_path, name, servers_phase="enforced", clients_phase="enforced", **(spec_kw or {}))
        doc.update(rotate_to_env=NEW_ENV, **spec_fields)
        spec_path.write_text(json.dumps(doc, indent=2))
        yield c, spec_path


@pytest.mark.timeout(420)
def test_rotation_stage_by_stage_through_cdktf_deploy(tmp_path, lab_binary, key, rollout_name, monkeypatch):
    new = GossipKey.generate()
    work = tmp_path / "deploy"
    with rotation_lab(tmp_path, lab_binary, key, new, rollout_name, monkeypatch, clients=4, groups=2) as (c, spec_path):
        rollout = spec.load(spec_path)
        _, old_shown = key_for_plan(rollout.key_env, None)
        _, new_shown = rotation_key_for_plan(NEW_ENV, None, old_shown)
        plan = rotation.plan_rotation(rollout, old_shown, new_shown)
        s1 = c.node("server-1")
        out = Out()
        with Probe(c) as probe:
            for stage in plan.stages:
                proc = deploy.run_cdktf("deploy", [stage.stack], spec_path, work, out)
                assert proc.returncode == 0, proc.stdout[-4000:]
                ring = keyring(s1.http_addr)
                if stage.kind is rotation.StageKind.INSTALL:
                    assert ring.holds_everywhere(new.fingerprint) and ring.primary_everywhere(key.fingerprint)
                elif stage.kind is rotation.StageKind.USE:
                    assert ring.primary_everywhere(new.fingerprint) and ring.holds_everywhere(key.fingerprint)
                elif stage.kind is rotation.StageKind.CONFIGS:
                    for n in c.nodes:  # every fragment carries the new key; no agent restarted
                        frag = json.loads(Path(n.config_path).read_text())
                        assert frag["encrypt"] == new.reveal() and frag["encrypt_verify_incoming"] is True
                else:
                    assert ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(key.fingerprint), \
                        ring.describe()
        assert probe.samples > 20 and probe.failed == [], probe.failed  # no member ever failed: nothing restarted
        log = (work / "progress.log").read_text()
        assert f"install key {new.fingerprint}" in log and f"remove key {key.fingerprint}" in log
        for text in (log, proc.stdout, *(p.read_text() for p in work.rglob("*.tfstate"))):
            assert new.reveal() not in text and key.reveal() not in text

        # a finished stage deployed again is no change (its state records the change; nothing is called)
        again = deploy.run_cdktf("deploy", [plan.stages[0].stack], spec_path, work, out)
        assert again.returncode == 0, again.stdout[-3000:]

        # an agent started from the configs alone (no keyring file) joins with the new key
        web1 = c.node("web-1")
        lab.stop(c, "web-1")
        Path(web1.keyring_path).unlink()
        lab.start(c, "web-1", timeout=30)
        lab.wait_converged(c, timeout=30)
        assert keyring(s1.http_addr).holds_everywhere(new.fingerprint)

        # one started with the old config after remove is cut off: the cluster does not count it
        api1 = c.node("api-1")
        lab.stop(c, "api-1")
        Path(api1.keyring_path).unlink()
        Path(api1.config_path).write_text(json.dumps(enforced(key)))
        lab.start(c, "api-1", timeout=20, wait_join=False)
        with pytest.raises(Exception):
            lab.wait_converged(c, timeout=8)
        checked = deploy_check(spec_path)
        assert checked.returncode == 1 and "api-1" in checked.stdout


def deploy_check(spec_path: Path):
    import subprocess

    from tests.e2e.helpers import tsegossip_cmd

    return subprocess.run([tsegossip_cmd(), "check", str(spec_path), "--today"], capture_output=True, text=True,
                          timeout=120, env={**os.environ})


@pytest.mark.timeout(420)
def test_tsegossip_deploy_resumes_a_rotation_from_the_live_keyring(tmp_path, lab_binary, key, rollout_name,
                                                                  monkeypatch):
    import subprocess

    from tests.e2e.helpers import tsegossip_cmd

    new = GossipKey.generate()
    work = tmp_path / "deploy"
    with rotation_lab(tmp_path, lab_binary, key, new, rollout_name, monkeypatch, clients=2, groups=1,
                      key_fingerprint=key.fingerprint, rotate_to_fingerprint=new.fingerprint) as (c, spec_path):
        install = f"{rollout_name}-rotate-1-install"
        first = deploy.run_cdktf("deploy", [install], spec_path, work, Out())
        assert first.returncode == 0, first.stdout[-3000:]

        def run(*args):
            return subprocess.run([tsegossip_cmd(), *map(str, args)], capture_output=True, text=True, timeout=300)

        r = run("deploy", spec_path, "--workdir", work)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr
        assert f"resuming: the live keyring shows {install} done" in r.stdout
        assert f"== step 1/3: cdktf deploy {rollout_name}-rotate-2-use" in r.stdout
        assert f"== step 3/3: cdktf deploy {rollout_name}-rotate-4-remove" in r.stdout
        ring = keyring(c.node("server-1").http_addr)
        assert ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(key.fingerprint)
        again = run("deploy", spec_path, "--workdir", work)
        assert again.returncode == 0 and "nothing to do: every rotation stage is already done" in again.stdout
        assert new.reveal() not in r.stdout + r.stderr + again.stdout and key.reveal() not in r.stdout + r.stderr
        checked = run("check", spec_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"key rotation: judged against the new key sha256:{new.fingerprint}" in checked.stdout
        assert f"{new.fingerprint}* on 5/5" in checked.stdout

        # bad input: the new key variable unset is refused before anything, naming it, never a value
        monkeypatch.delenv(NEW_ENV)
        unset = run("deploy", spec_path, "--workdir", work)
        assert unset.returncode == 1
        assert f"rotate_to_env: environment variable {NEW_ENV} (named by rotate_to_env) is not set" in unset.stderr
        assert "nothing was deployed" in unset.stderr and "cdktf deploy" not in unset.stdout


@pytest.mark.timeout(420)
def test_rollback_before_remove_makes_the_old_key_primary_and_uninstalls_the_new(tmp_path, lab_binary, key,
                                                                                 rollout_name, monkeypatch):
    import subprocess

    from tests.e2e.helpers import tsegossip_cmd

    new = GossipKey.generate()
    work = tmp_path / "deploy"
    with rotation_lab(tmp_path, lab_binary, key, new, rollout_name, monkeypatch, clients=2, groups=1) as (c, spec_path):

        def run(*args):
            return subprocess.run([tsegossip_cmd(), *map(str, args)], capture_output=True, text=True, timeout=300)

        stages = [f"{rollout_name}-rotate-{s}" for s in ("1-install", "2-use", "3-configs")]
        r = run("deploy", spec_path, "--workdir", work, *[a for s in stages for a in ("--stack", s)])
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr
        s1 = c.node("server-1")
        assert keyring(s1.http_addr).primary_everywhere(new.fingerprint)
        with Probe(c) as probe:
            back = run("deploy", spec_path, "--workdir", work, "--rollback")
        assert back.returncode == 0, back.stdout[-4000:] + back.stderr
        for undo in ("undo3-configs", "undo2-use", "undo1-install"):
            assert f"cdktf deploy {rollout_name}-rotate-{undo}" in back.stdout
        ring = keyring(s1.http_addr)
        assert ring.primary_everywhere(key.fingerprint) and ring.held_nowhere(new.fingerprint), ring.describe()
        for n in c.nodes:
            assert json.loads(Path(n.config_path).read_text())["encrypt"] == key.reveal()
        assert probe.failed == [], probe.failed
        again = run("deploy", spec_path, "--workdir", work, "--rollback")
        assert again.returncode == 0 and "nothing to roll back" in again.stdout


@pytest.mark.timeout(420)
def test_a_straggler_down_during_the_rotation_is_brought_back_by_repair_keyring(tmp_path, lab_binary, key,
                                                                                rollout_name, monkeypatch):
    """down_nodes: skip on the clients; web-2 is down for the whole rotation, comes back holding only the old
    key and reads nothing the others send; `tsegossip repair --keyring` brings it back through the API."""
    import subprocess

    from tests.e2e.helpers import tsegossip_cmd
    from tsegossip.observe import members

    new = GossipKey.generate()
    work = tmp_path / "deploy"
    with rotation_lab(tmp_path, lab_binary, key, new, rollout_name, monkeypatch, clients=2, groups=1,
                      key_fingerprint=key.fingerprint, rotate_to_fingerprint=new.fingerprint) as (c, spec_path):
        doc = json.loads(spec_path.read_text())
        doc["client_groups"][0]["down_nodes"] = "skip"
        spec_path.write_text(json.dumps(doc, indent=2))
        s1, web2 = c.node("server-1"), c.node("web-2")

        def run(*args):
            return subprocess.run([tsegossip_cmd(), *map(str, args)], capture_output=True, text=True, timeout=300)

        planned = run("plan", spec_path)
        assert planned.returncode == 0 and "down_nodes = skip on web" in planned.stdout, planned.stdout
        assert lab.stop(c, "web-2") == "stopped"
        with Probe(c) as probe:
            r = run("deploy", spec_path, "--workdir", work)
            assert r.returncode == 0, r.stdout[-4000:] + r.stderr
            log = (work / "progress.log").read_text()
            assert "recorded as stragglers: web-2: member left" in log, log[-3000:]
            assert "web-2: down when" in log and "fragment not rewritten" in log
            ring = keyring(s1.http_addr)
            assert ring.num_nodes == 4 and ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(key.fingerprint)
            assert json.loads(Path(web2.config_path).read_text())["encrypt"] == key.reveal()  # left as it was

            # back, with its old keyring: it reads nothing the others send, and none of them counts it
            lab.start(c, "web-2", wait_join=False)
            time.sleep(4)
            assert members(s1.http_addr)["web-2"] != "alive"
            checked = run("check", spec_path)
            assert checked.returncode == 1 and "web-2 runs but is no alive member" in checked.stdout, checked.stdout
            assert "repair SPEC --keyring" in checked.stdout
            fixed = run("repair", spec_path, "--keyring", "--workdir", work)
            assert fixed.returncode == 0, fixed.stdout[-4000:] + fixed.stderr
            assert f"== keyring rejoin: cdktf deploy {rollout_name}-keyring-rejoin for web-2 (web)" in fixed.stdout
            assert "1. install old" in fixed.stdout and "5. remove old" in fixed.stdout
        assert set(members(s1.http_addr).values()) == {"alive"}
        ring = keyring(s1.http_addr)
        assert ring.num_nodes == 5 and ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(key.fingerprint)
        assert json.loads(Path(web2.config_path).read_text())["encrypt"] == new.reveal()
        assert probe.samples > 20
        outside = [f for f in probe.failed if "web-2" not in (f[1], f[2])]
        assert outside == [], outside  # the others never lost each other, not even while the old key was back
        again = run("repair", spec_path, "--keyring", "--workdir", work)
        assert again.returncode == 0 and "nothing to rejoin: every listed node is an alive member" in again.stdout
        for text in (r.stdout, fixed.stdout, (work / "progress.log").read_text(),
                     *(p.read_text() for p in work.rglob("*.tfstate"))):
            assert new.reveal() not in text and key.reveal() not in text


@pytest.mark.timeout(300)
def test_rotation_with_acls_and_https_needs_a_keyring_write_token(tmp_path, lab_binary, key, rollout_name,
                                                                 monkeypatch):
    """ACLs on (default deny), HTTPS only: a phase rollout's token (keyring = "read") is refused at the first
    call with Consul's 403 named and nothing changed; `tsegossip lab token --rotation`'s rules rotate."""
    import subprocess

    from tests.e2e.helpers import tsegossip_cmd

    new = GossipKey.generate()
    work = tmp_path / "deploy"
    with rotation_lab(tmp_path, lab_binary, key, new, rollout_name, monkeypatch, clients=2, groups=1,
                      lab_kw={"secure": True}, spec_kw={"token_env": "LAB_TOKEN", "cacert_env": "LAB_CA"},
                      key_fingerprint=key.fingerprint, rotate_to_fingerprint=new.fingerprint) as (c, spec_path):
        monkeypatch.setenv("LAB_CA", c.ca_file)
        monkeypatch.setenv("LAB_TOKEN", lab.create_token(c, lab.TSEGOSSIP_RULES))
        assert json.loads(spec_path.read_text())["servers"]["http_addr"].startswith("https://")

        def run(*args):
            return subprocess.run([tsegossip_cmd(), *map(str, args)], capture_output=True, text=True, timeout=300)

        r = run("deploy", spec_path, "--workdir", work)
        assert r.returncode == 1, r.stdout[-3000:]
        said = " ".join(re.sub(r"error: \S+spec\.json: ", "", r.stdout + r.stderr).split())
        assert f"Consul refused to install key {new.fingerprint}" in said, said[-3000:]
        assert ("lacks permission 'keyring:write'; the token in $LAB_TOKEN needs the rule keyring = \"write\". "
                f"Keyring: dc1 LAN: {key.fingerprint}* on 5/5") in said, said[-3000:]  # nothing changed
        assert new.reveal() not in r.stdout + r.stderr and key.reveal() not in r.stdout + r.stderr

        monkeypatch.setenv("LAB_TOKEN", lab.create_token(c, lab.ROTATION_RULES))
        r = run("deploy", spec_path, "--workdir", work)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr
        assert f"== step 4/4: cdktf deploy {rollout_name}-rotate-4-remove" in r.stdout
        checked = run("check", spec_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"{new.fingerprint}* on 5/5" in checked.stdout
