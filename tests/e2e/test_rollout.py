"""Smooth rollout and rollback with real `cdktf deploy` on a lab, sampled by a membership probe."""

from __future__ import annotations

import subprocess

import pytest

from tsegossip import check, deploy, lab, planner, spec
from tsegossip.planner import StepKind
from tests.e2e.helpers import (KEY_ENV, Out, Probe, agent_self, lab_up, make_spec, observed_phases,
                               save_spec, tsegossip_cmd)

pytestmark = pytest.mark.usefixtures("cdktf_ready")


@pytest.mark.timeout(240)
def test_smooth_plaintext_to_enforced_never_fails_a_member(tmp_path, lab_binary, key, rollout_name):
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name)
        plan = planner.plan(spec.load(spec_path))
        assert [s.after.servers.value for s in plan.steps] == ["accept-encrypted", "send-encrypted", "enforced"]
        out = Out()
        with Probe(c, interval=0.2) as probe:
            results = deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
        assert [r.stack for r in results] == [s.stack for s in plan.steps]
        assert all(r.verdict_ok for r in results)
        # the probe really looked: 5 nodes, ~0.2 s apart, for tens of seconds
        assert probe.rounds > 50 and probe.samples > 200, (probe.rounds, probe.samples)
        assert probe.failed == [], f"members seen as failed (t, observer, member): {probe.failed[:20]}"
        assert "alive" in probe.statuses
        assert set(observed_phases(c).values()) == {"enforced"}
        verdict = check.run_check(plan.rollout, key, plan.final)
        assert verdict.ok, check.as_table(verdict)
        lab.wait_converged(c, timeout=5)


@pytest.mark.timeout(240)
def test_rollback_enforced_to_plaintext_one_phase_per_step(tmp_path, lab_binary, key, rollout_name):
    frag = lab.phase_fragment("enforced", key.reveal())
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2,
                initial_fragments={"servers": frag, "clients": frag}) as c:
        spec_path = tmp_path / "spec.json"
        doc = make_spec(c, spec_path, rollout_name, servers_phase="enforced", clients_phase="enforced")
        doc["target"] = "plaintext"
        save_spec(spec_path, doc)
        plan = planner.plan(spec.load(spec_path))
        assert [s.kind for s in plan.steps] == [StepKind.ROLLBACK] * 3
        assert [s.after.servers.value for s in plan.steps] == ["send-encrypted", "accept-encrypted", "plaintext"]
        with Probe(c, interval=0.2) as probe:
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out())
        assert probe.rounds > 50 and probe.samples > 200, (probe.rounds, probe.samples)
        assert probe.failed == [], f"members seen as failed (t, observer, member): {probe.failed[:20]}"
        for n in c.nodes:
            me = agent_self(n)
            assert me["Stats"]["serf_lan"]["encrypted"] == "false", (n.name, me["Stats"]["serf_lan"])
            assert '"disable_keyring_file": true' in open(n.config_path).read()
        assert set(observed_phases(c).values()) == {"plaintext"}
        lab.wait_converged(c, timeout=5)


@pytest.mark.timeout(90)
def test_check_console_script_exit_codes(tmp_path, lab_binary, key, rollout_name):
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name)
        ok = subprocess.run([tsegossip_cmd(), "check", str(spec_path)], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "5/5 nodes as expected" in ok.stdout
        # web-1 moved to accept-encrypted by hand: still connected, but not what the spec says
        lab.write_fragment(c, "web-1", lab.phase_fragment("accept-encrypted", key.reveal()))
        lab.restart(c, "web-1", timeout=20)
        bad = subprocess.run([tsegossip_cmd(), "check", str(spec_path)], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "web-1" in bad.stdout and "expected plaintext" in bad.stdout
        assert "4/5 nodes as expected" in bad.stdout
