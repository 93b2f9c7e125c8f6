"""Smooth rollout and rollback with real `cdktf deploy` on a lab, sampled by a membership probe."""

from __future__ import annotations

import subprocess
import warnings

import pytest

from tsegossip import check, deploy, lab, planner, spec
from tsegossip.planner import StepKind
from tests.e2e.helpers import (Out, Probe, agent_self, failed_outside_batches, lab_up, make_spec,
                               observed_phases, save_spec, tsegossip_cmd)

pytestmark = pytest.mark.usefixtures("cdktf_ready")

# A split shows as `failed` for as long as the step runs. A restarting agent whose graceful
# leave has not reached some peer yet can be marked failed by that one peer for a moment until the
# leave or its rejoin arrives (seen: server-3 saw server-1 failed 0.8 s while server-1 restarted;
# server-3 saw web-1 2.9 s while web-1 restarted, in CI). The criterion (the team's decision): no
# failed sample on a node outside the batch in flight; those inside are reported as warnings.


def assert_no_split(probe, out) -> None:
    outside = failed_outside_batches(probe, out)
    assert not outside, f"members seen failed outside the batch in flight (t, observer, member): {outside[:20]}"
    if probe.episodes:
        warnings.warn(f"transient `failed` of a node in flight (observer, member, t, seconds): {probe.episodes}")


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
        assert_no_split(probe, out)
        assert "alive" in probe.statuses
        assert set(observed_phases(c).values()) == {"enforced"}
        verdict = check.run_check(plan.rollout, key, plan.final)
        assert verdict.ok, check.as_table(verdict)
        lab.wait_converged(c, timeout=65)  # a missed alive broadcast heals at the next 30 s push/pull


@pytest.mark.timeout(300)
def test_smooth_rollout_with_acls_and_https(tmp_path, lab_binary, key, rollout_name, monkeypatch):
    """ACLs on (default deny) and HTTPS only: tsegossip runs on a least-privilege token and the lab's
    CA, both from the environment variables the spec's consul block names."""
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2, secure=True) as c:
        monkeypatch.setenv("LAB_TOKEN", lab.create_token(c, lab.TSEGOSSIP_RULES))
        monkeypatch.setenv("LAB_CA", c.ca_file)
        spec_path = tmp_path / "spec.json"
        doc = make_spec(c, spec_path, rollout_name, token_env="LAB_TOKEN", cacert_env="LAB_CA")
        assert doc["consul"] == {"token_env": "LAB_TOKEN", "cacert_env": "LAB_CA"}
        assert doc["servers"]["http_addr"].startswith("https://")
        plan = planner.plan(spec.load(spec_path))
        out = Out()
        with Probe(c, interval=0.3) as probe:
            results = deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
        assert all(r.verdict_ok for r in results) and len(results) == 3
        assert probe.rounds > 30, probe.rounds
        assert_no_split(probe, out)
        verdict = check.run_check(plan.rollout, key, plan.final)
        assert verdict.ok, check.as_table(verdict)
        assert f"{key.fingerprint}* on 5/5" in verdict.keyring
        # without the token the same check cannot read the members, and says which rule it needs
        monkeypatch.delenv("LAB_TOKEN")
        blind = check.run_check(plan.rollout, key, plan.final)
        assert not blind.ok and any('node_prefix "" { policy = "read" }' in p for p in blind.all_problems())


@pytest.mark.timeout(240)
def test_smooth_rollout_of_a_one_server_cluster_whose_server_leaves(tmp_path, lab_binary, key, rollout_name):
    """A lone server restarted with a graceful leave must come back: its peers forgot it, so it is the
    one to rejoin them (the lab lists the clients in a lone server's retry_join)."""
    with lab_up(tmp_path, lab_binary, servers=1, clients=2, groups=1, leave_on_terminate=True) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name)
        plan = planner.plan(spec.load(spec_path))
        results = deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out())
        assert [r.stack for r in results] == [s.stack for s in plan.steps] and all(r.verdict_ok for r in results)
        assert set(observed_phases(c).values()) == {"enforced"}
        verdict = check.run_check(plan.rollout, key, plan.final)
        assert verdict.ok, check.as_table(verdict)
        assert f"{key.fingerprint}* on 3/3" in verdict.keyring


def test_smooth_with_restarts_that_do_not_leave_shows_no_failed_member_at_all(tmp_path, lab_binary, key,
                                                                             rollout_name):
    """Agents with leave_on_terminate=false (Consul's default for servers) restart without a graceful
    leave: no leave broadcast can race the memberlist dead message, so the probe must see no `failed`
    and no `left` member at all, not even for one sample (the graceful-leave rollout above allows
    a sub-2 s `failed` mark on the node being restarted; see BENCHMARKS.md ## Rollout)."""
    with lab_up(tmp_path, lab_binary, servers=3, clients=6, groups=2, leave_on_terminate=False) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name, batch_size=2)
        plan = planner.plan(spec.load(spec_path))
        with Probe(c, interval=0.1) as probe:
            results = deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out())
        assert all(r.verdict_ok for r in results)
        assert probe.rounds > 50 and probe.samples > 400, (probe.rounds, probe.samples)
        assert probe.failed == [], probe.failed[:10]
        assert probe.statuses == {"alive"}, probe.statuses
        assert set(observed_phases(c).values()) == {"enforced"}


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
        out = Out()
        with Probe(c, interval=0.2) as probe:
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
        assert probe.rounds > 50 and probe.samples > 200, (probe.rounds, probe.samples)
        assert_no_split(probe, out)
        for n in c.nodes:
            me = agent_self(n)
            assert me["Stats"]["serf_lan"]["encrypted"] == "false", (n.name, me["Stats"]["serf_lan"])
            assert '"disable_keyring_file": true' in open(n.config_path).read()
        assert set(observed_phases(c).values()) == {"plaintext"}
        lab.wait_converged(c, timeout=65)  # a missed alive broadcast heals at the next 30 s push/pull


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
        lab.restart(c, "web-1", timeout=45)
        bad = subprocess.run([tsegossip_cmd(), "check", str(spec_path)], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "web-1" in bad.stdout and "expected plaintext" in bad.stdout
        assert "4/5 nodes as expected" in bad.stdout
