"""What happens when something is wrong: a restart that fails, the wrong key, a stale keyring."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tf.utils import Diagnostics

from tsegossip import check, deploy, lab, planner, spec
from tsegossip.keys import GossipKey
from tsegossip.provider.rollout import roll_nodes
from tsegossip.provider.state import ClientConfigState
from tsegossip.provider.world import World
from tests.e2e.helpers import (KEY_ENV, Out, config_snapshot, lab_up, make_spec, observed_phases, pids,
                               save_spec, tsegossip_cmd)

pytestmark = pytest.mark.usefixtures("cdktf_ready")


@pytest.mark.timeout(300)
def test_restart_failing_mid_batch_stops_then_resumes(tmp_path, lab_binary, key, rollout_name):
    with lab_up(tmp_path, lab_binary, servers=3, clients=3, groups=1) as c:
        spec_path = tmp_path / "spec.json"
        doc = make_spec(c, spec_path, rollout_name, batch_size=1)
        fixed = tmp_path / "web-2-fixed"
        g = doc["client_groups"][0]
        g["restart_command"] = (f"if [ {{node}} = web-2 ] && [ ! -e {fixed} ]; then "
                                f"echo 'simulated: systemctl restart consul failed on web-2' >&2; exit 7; fi; "
                                + g["restart_command"])
        save_spec(spec_path, doc)
        plan = planner.plan(spec.load(spec_path))
        first = plan.steps[0]
        before_cfg, before_pid = config_snapshot(c), pids(c)

        with pytest.raises(deploy.DeployError) as err:
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out())
        text = str(err.value)
        assert first.stack in text and "stopped at web-2" in text, text
        assert "simulated: systemctl restart consul failed on web-2" in text
        # web-3 comes after web-2 in the batch order: untouched
        after_cfg, after_pid = config_snapshot(c), pids(c)
        assert after_cfg["web-3"] == before_cfg["web-3"]
        assert after_pid["web-3"] == before_pid["web-3"]
        assert after_pid["web-2"] == before_pid["web-2"]  # its restart never happened
        phases = observed_phases(c)
        assert phases["web-3"] == phases["web-2"] == "plaintext"
        assert phases["web-1"] == "accept-encrypted"
        assert {phases[n.name] for n in c.servers} == {"accept-encrypted"}
        # the cluster is healthy: everyone alive, only web-2/web-3 lag behind the step
        lab.wait_converged(c, timeout=100)  # a missed alive broadcast heals at a push/pull (30 s each)
        verdict = check.run_check(plan.rollout, key, first.after)
        assert {n.member for n in verdict.nodes} == {"alive"}
        assert {n.name for n in verdict.nodes if not n.ok} == {"web-2", "web-3"}

        fixed.touch()
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out())
        assert set(observed_phases(c).values()) == {"enforced"}
        assert check.run_check(plan.rollout, key, plan.final).ok


@pytest.mark.timeout(200)
def test_wrong_key_is_refused_before_any_restart(tmp_path, lab_binary, key, rollout_name):
    """The cluster runs accept-encrypted with key A (set by hand); the deploy is made with key B."""
    key_a = GossipKey.generate()
    assert key_a.fingerprint != key.fingerprint
    frag = lab.phase_fragment("accept-encrypted", key_a.reveal())
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2,
                initial_fragments={"servers": frag, "clients": frag}) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name, servers_phase="accept-encrypted", clients_phase="accept-encrypted")
        plan = planner.plan(spec.load(spec_path))
        before_cfg, before_pid = config_snapshot(c), pids(c)
        with pytest.raises(deploy.DeployError) as err:
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out())
        text = str(err.value)
        assert plan.steps[0].stack in text
        assert key.fingerprint in text and "keyring" in text, text
        assert config_snapshot(c) == before_cfg
        assert pids(c) == before_pid
        assert set(observed_phases(c).values()) == {"accept-encrypted"}


@pytest.mark.timeout(120)
def test_stale_keyring_is_reported_with_the_fix_and_refused(tmp_path, lab_binary, key, rollout_name):
    """web-1 first ran with another key; its config now names ours, but its data-dir keyring wins."""
    other = GossipKey.generate()
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2,
                initial_fragments={"servers": lab.phase_fragment("accept-encrypted", key.reveal()),
                                   "clients": lab.phase_fragment("accept-encrypted", key.reveal()),
                                   "web-1": lab.phase_fragment("accept-encrypted", other.reveal())}) as c:
        web1 = c.node("web-1")
        assert Path(web1.keyring_path).exists()
        lab.write_fragment(c, "web-1", lab.phase_fragment("accept-encrypted", key.reveal()))
        lab.restart(c, "web-1", timeout=45)
        assert "keyring doesn't include key provided with -encrypt, using keyring" in open(web1.log_path).read()

        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name, servers_phase="accept-encrypted", clients_phase="accept-encrypted")
        r = subprocess.run([tsegossip_cmd(), "check", str(spec_path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        out = " ".join(r.stdout.split())
        # Consul 1.14 counts keys pool-wide only (local-only drops the WAN, not the other agents):
        # 4 of 5 hold ours, and which one does not cannot be read through its API.
        assert f"does not hold key sha256:{key.fingerprint} on every node" in out, r.stdout
        assert f"{key.fingerprint}* on 4/5" in out and f"{other.fingerprint}* on 1/5" in out, r.stdout
        assert f"a member whose keyring lacks the key in ${KEY_ENV} has a stale" in out
        assert "`tsegossip repair SPEC --keyring` installs the key and makes it every member's primary" in out

        # the provider refuses the next step (accept -> send) before touching anyone
        plan = planner.plan(spec.load(spec_path))
        step = plan.steps[0]
        rollout = plan.rollout
        group = rollout.group("web")
        state = ClientConfigState(
            rollout=rollout.name, stack=step.stack, role="web", batch_size=1,
            phase=step.move_of("web").after.value, from_phase=step.move_of("web").before.value,
            nodes={n.name: n.http_addr for n in group.nodes}, config_path=group.config_path,
            restart_command=group.restart_command, key_env=KEY_ENV, key_fingerprint=key.fingerprint,
            http_addr=rollout.servers.http_addr, timeout_seconds=20.0, poll_seconds=0.3,
        )
        before_cfg, before_pid = config_snapshot(c), pids(c)
        diags = Diagnostics()
        said: list[str] = []
        world = World(environ=dict(os.environ), progress=said.append)
        assert roll_nodes(state, world, diags) is None
        assert diags.has_errors()
        text = str(diags)
        assert "The keyring does not hold the key on every node" in text, text
        assert "serf/local.keyring" in text
        assert config_snapshot(c) == before_cfg and pids(c) == before_pid

        # the fix through the keyring API: web-1 gets our key and uses it; no file deleted, nothing restarted
        fixed = subprocess.run([tsegossip_cmd(), "repair", str(spec_path), "--keyring", "--workdir",
                                str(tmp_path / "repair")], capture_output=True, text=True, timeout=240)
        assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr
        assert f"== keyring repair: cdktf deploy {rollout.name}-keyring-{key.fingerprint[:8]}" in fixed.stdout
        assert f"{key.fingerprint}* on 5/5" in fixed.stdout and key.reveal() not in fixed.stdout + fixed.stderr
        assert pids(c) == before_pid and Path(web1.keyring_path).exists()
        r = subprocess.run([tsegossip_cmd(), "check", str(spec_path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        again = subprocess.run([tsegossip_cmd(), "repair", str(spec_path), "--keyring", "--workdir",
                                str(tmp_path / "repair")], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "nothing to repair" in again.stdout, again.stdout + again.stderr
