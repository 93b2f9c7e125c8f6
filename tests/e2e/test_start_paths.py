"""Starting points other than all-plaintext: a fresh-TSE-like cluster, and clients that join late."""

from __future__ import annotations

import json

import pytest

from tsegossip import check, deploy, lab, planner, spec
from tsegossip.planner import SERVERS, StepKind
from tests.e2e.helpers import Out, lab_up, make_spec, observed_phases, pids

pytestmark = pytest.mark.usefixtures("cdktf_ready")


@pytest.mark.timeout(240)
def test_fresh_tse_like_start_moves_clients_first(tmp_path, lab_binary, key, rollout_name):
    """TSE creates servers with a key and both verify flags false: servers accept-encrypted, clients plaintext."""
    frag = lab.phase_fragment("accept-encrypted", key.reveal())
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2, initial_fragments={"servers": frag}) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name, servers_phase="accept-encrypted")
        plan = planner.plan(spec.load(spec_path))
        first = plan.steps[0]
        assert SERVERS not in first.moved_roles
        assert sorted(first.moved_roles) == ["api", "web"]
        assert {m.after.value for m in first.moves} == {"accept-encrypted"}
        servers_before = {n.name: lab.node_pid(c, n.name) for n in c.servers}
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[first.stack], out=Out())
        # step 1 touched only the clients
        assert {n.name: lab.node_pid(c, n.name) for n in c.servers} == servers_before
        assert set(observed_phases(c).values()) == {"accept-encrypted"}
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[s.stack for s in plan.steps[1:]],
                            out=Out())
        assert set(observed_phases(c).values()) == {"enforced"}
        assert check.run_check(plan.rollout, key, plan.final).ok
        lab.wait_converged(c, timeout=65)  # a missed alive broadcast heals at the next 30 s push/pull


@pytest.mark.timeout(240)
@pytest.mark.parametrize("configured", [
    "plaintext",
    "enforced",
])
def test_direct_with_clients_joining_after_servers_are_enforced(tmp_path, lab_binary, key, rollout_name,
                                                                configured):
    """configured: the phase the spec gives the not-yet-joined group (tse-direct.yaml says plaintext)."""
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2) as c:
        for n in c.clients:
            assert lab.stop(c, n.name) == "stopped"
        spec_path = tmp_path / "spec.json"
        doc = make_spec(c, spec_path, rollout_name, strategy="direct", joined=False,
                        clients_phase=configured)
        # The servers jump over a phase: write_spec lets their restarts skip the wait to rejoin.
        assert "--no-wait-join" in doc["servers"]["restart_command"]
        plan = planner.plan(spec.load(spec_path))
        assert [s.kind for s in plan.steps] == [StepKind.SERVERS, StepKind.JOIN]
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[0].stack], out=Out())
        assert {n.name: lab.node_pid(c, n.name) for n in c.clients} == {n.name: None for n in c.clients}
        assert {observed_phases(c)[n.name] for n in c.servers} == {"enforced"}
        deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[1].stack], out=Out())
        assert all(pids(c).values()), pids(c)
        assert set(observed_phases(c).values()) == {"enforced"}
        for n in c.clients:
            assert json.loads(open(n.config_path).read())["encrypt_verify_incoming"] is True
        assert check.run_check(plan.rollout, key, plan.final).ok
        lab.wait_converged(c, timeout=65)  # a missed alive broadcast heals at the next 30 s push/pull
