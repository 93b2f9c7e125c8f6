"""Every member accounted for, on real agents: an alive member the spec does not list is safe while
the cluster only accepts encryption, and the step that would cut it off is refused by the provider's
own gate through `cdktf deploy`, naming it; `check` lists it and exits 1."""

from __future__ import annotations

import json
import subprocess

import pytest

from tsegossip import check, deploy, planner, spec
from tests.e2e.helpers import Out, lab_up, make_spec, observed_phases, save_spec, tsegossip_cmd

pytestmark = [pytest.mark.usefixtures("cdktf_ready"), pytest.mark.timeout(420)]


def test_an_unlisted_alive_member_is_named_and_the_step_that_would_cut_it_off_refused(
        tmp_path, lab_binary, key, rollout_name):
    with lab_up(tmp_path, lab_binary, servers=3, clients=3, groups=1) as c:
        full_path = tmp_path / "full.json"
        full = make_spec(c, full_path, rollout_name)
        assert check.run_check(spec.load(full_path), key).ok  # every member listed: clean
        partial = json.loads(json.dumps(full))
        web = partial["client_groups"][0]
        web["nodes"] = [n for n in web["nodes"] if n["name"] != "web-3"]
        partial_path = tmp_path / "partial.json"
        save_spec(partial_path, partial)
        web3 = c.node("web-3")

        # check: a row for web-3, a problem naming it with its address, exit 1
        r = subprocess.run([tsegossip_cmd(), "check", str(partial_path), "--format", "json"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        [row] = [n for n in doc["nodes"] if n["name"] == "web-3"]
        assert row["role"] == "(not listed)" and row["member"] == "alive" and not row["ok"]
        assert f"127.0.0.1:{web3.serf_port}" in row["problems"][0]
        assert "runs plaintext or accept-encrypted" in row["problems"][0]
        # where each phase comes from: the member's own API, or (not listed) only the servers' member list
        assert row["seen_from"] == "servers" and {n["seen_from"] for n in doc["nodes"] if n["name"] != "web-3"} == {"member"}
        assert doc["audit"].startswith("0/6 members enforced (1 seen only in the servers' member list, not counted")

        # plan --live: names it and the step that would cut it off, exit 1; the full spec is clean
        plan = planner.plan(spec.load(partial_path))
        r = subprocess.run([tsegossip_cmd(), "plan", str(partial_path), "--live"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        live = " ".join(r.stdout.split())
        assert "6 member(s) in the LAN pool, 1 alive and not listed" in live
        assert f"web-3 (127.0.0.1:{web3.serf_port}): an alive member the spec does not list; it runs plaintext or " \
               f"accept-encrypted: step 2 ({plan.steps[1].stack}) would cut it off and is refused" in live
        r = subprocess.run([tsegossip_cmd(), "plan", str(full_path), "--live", "--format", "json"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["live"]["ok"] is True
        assert "every member accounted for" in json.loads(r.stdout)["live"]["lines"][-1]
        out = Out()
        # step 1 moves to accept-encrypted: safe for a plaintext member, and the gate says it saw it
        deploy.deploy_steps(plan, partial_path, key, tmp_path / "deploy", stacks=[plan.steps[0].stack], out=out,
                            check_after=False)
        assert "1 alive member(s) the spec does not list, safe during this step: web-3" in out.getvalue()
        # step 2 brings send-encrypted, which a plaintext agent cannot gossip with: refused before any restart
        before = observed_phases(c)
        with pytest.raises(deploy.DeployError) as err:
            deploy.deploy_steps(plan, partial_path, key, tmp_path / "deploy", stacks=[plan.steps[1].stack],
                                out=Out(), check_after=False)
        text = " ".join(str(err.value).split())
        assert "member(s) the spec does not list would be cut off" in text
        assert f"web-3 (127.0.0.1:{web3.serf_port}): an alive member the spec does not list" in text
        assert "as plaintext it cannot gossip with agents in send-encrypted" in text
        assert "under `unmanaged`" in text
        assert observed_phases(c) == before  # nothing restarted


def test_an_unmanaged_member_is_observed_live_and_proven_against(tmp_path, lab_binary, key, rollout_name):
    """web-3 declared unmanaged with phase `observe`: every step's gate reads its phase from its own API
    (plaintext: nobody moves it) and refuses the step that would cut it off; check shows its row."""
    with lab_up(tmp_path, lab_binary, servers=3, clients=3, groups=1) as c:
        doc = make_spec(c, tmp_path / "full.json", rollout_name)
        web = doc["client_groups"][0]
        web["nodes"] = [n for n in web["nodes"] if n["name"] != "web-3"]
        doc["unmanaged"] = [{"name": "web-3", "phase": "observe", "http_addr": c.node("web-3").http_addr}]
        spec_path = tmp_path / "spec.json"
        save_spec(spec_path, doc)
        verdict = check.run_check(spec.load(spec_path), key)
        [row] = [n for n in verdict.nodes if n.name == "web-3"]
        assert (row.role, row.expected, row.observed, row.ok) == ("(unmanaged)", "observe", "plaintext", True)
        assert verdict.ok, check.as_table(verdict)
        plan = planner.plan(spec.load(spec_path))
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[0].stack], out=Out(),
                            check_after=False)
        with pytest.raises(deploy.DeployError) as err:
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[1].stack],
                                out=Out(), check_after=False)
        text = " ".join(str(err.value).split())
        assert "web-3: unmanaged in plaintext, and this step would cut it off (it cannot gossip with agents in " \
               "send-encrypted)" in text
        assert observed_phases(c)["web-3"] == "plaintext"


def test_a_down_node_under_skip_is_left_behind_recorded_and_reported_when_back(tmp_path, lab_binary, key,
                                                                               rollout_name):
    from tsegossip import lab

    with lab_up(tmp_path, lab_binary, servers=3, clients=3, groups=1) as c:
        doc = make_spec(c, tmp_path / "spec.json", rollout_name)
        doc["client_groups"][0]["down_nodes"] = "skip"
        spec_path = tmp_path / "spec.json"
        save_spec(spec_path, doc)
        assert lab.stop(c, "web-2") == "stopped"
        plan = planner.plan(spec.load(spec_path))
        r = subprocess.run([tsegossip_cmd(), "plan", str(spec_path), "--live"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "web-2 (web): down (member left); down_nodes = skip: the steps go on without it and record it as " \
               "a straggler" in " ".join(r.stdout.split())
        first = plan.steps[0]
        out = Out()
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[first.stack], out=out,
                            check_after=False)
        text = out.getvalue()
        assert "down, skipped (down_nodes = skip): web-2 (left)" in text
        assert "skipping 1 down node(s) (down_nodes = skip), recorded as stragglers: web-2" in text
        state = json.loads((tmp_path / "deploy" / "state" / f"{first.stack}.tfstate").read_text())
        [web] = [r for r in state["resources"] if r["type"] == "tsegossip_client_config"]
        assert list(web["instances"][0]["attributes"]["stragglers"]) == ["web-2"]
        phases = observed_phases(c)
        assert phases["web-1"] == phases["web-3"] == "accept-encrypted"
        # back with its old config: check names it against the step's phases
        lab.start(c, "web-2")
        lab.wait_converged(c, timeout=65)
        verdict = check.run_check(plan.rollout, key, first.after)
        assert not verdict.ok
        assert any(p.startswith("web-2: runs plaintext") and p.endswith("expected accept-encrypted")
                   for p in verdict.all_problems()), verdict.all_problems()


def test_a_straggler_cut_off_after_enforced_is_reported_and_repaired_through_its_own_stack(
        tmp_path, lab_binary, key, rollout_name):
    """web-2 is down for the whole rollout (down_nodes: skip), comes back plaintext into an enforced
    cluster (cut off); check names it with the reason and the fix; `tsegossip repair` moves just it,
    straight to enforced, through cdktf deploy of a repair stack; nobody else restarts or fails."""
    from tsegossip import lab
    from tests.e2e.helpers import Probe, pids

    with lab_up(tmp_path, lab_binary, servers=3, clients=3, groups=1) as c:
        spec_path = tmp_path / "spec.json"
        doc = make_spec(c, spec_path, rollout_name)
        doc["client_groups"][0]["down_nodes"] = "skip"
        save_spec(spec_path, doc)
        assert lab.stop(c, "web-2") == "stopped"
        plan = planner.plan(spec.load(spec_path))
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=Out(), check_after=False)
        last = plan.steps[-1]
        lab.start(c, "web-2", wait_join=False)  # plaintext config: the enforced servers refuse it
        assert observed_phases(c)["web-2"] == "plaintext"

        r = subprocess.run([tsegossip_cmd(), "check", str(spec_path), "--after", last.stack], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        text = " ".join(r.stdout.split())
        assert "1 straggler(s), left in an old phase: web-2 runs plaintext, expected enforced: cut off: it cannot " \
               "gossip with agents in enforced" in text
        assert "Fix: `tsegossip repair SPEC`" in text

        r = subprocess.run([tsegossip_cmd(), "repair", str(spec_path), "--dry-run"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"the cluster is at {last.stack} (5/6 listed nodes run its phases)" in r.stdout
        assert "web: web-2: plaintext -> enforced" in r.stdout and "apart from the cluster now" in r.stdout
        assert pids(c)["web-2"] is not None

        others = {n: p for n, p in pids(c).items() if n != "web-2"}
        with Probe(c) as probe:
            r = subprocess.run([tsegossip_cmd(), "repair", str(spec_path), "--workdir", str(tmp_path / "deploy")],
                               capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        assert "-repair-" in out and "web (" in out and "batch 1/1: web-2 -> enforced" in out
        assert "6/6 nodes as expected" in out
        assert observed_phases(c) == {n.name: "enforced" for n in c.nodes}
        assert {n: p for n, p in pids(c).items() if n != "web-2"} == others  # nobody else restarted
        outside = [f for f in probe.failed if "web-2" not in (f[1], f[2])]
        assert outside == [], outside[:5]
        assert key.reveal() not in out + r.stderr

        r = subprocess.run([tsegossip_cmd(), "repair", str(spec_path), "--dry-run"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and "no stragglers" in r.stdout, r.stdout + r.stderr
