"""The TSE document's two scenarios through `cdktf deploy`, against the local TSE stand-in.

The servers are real Consul servers owned by the stand-in; the provider asks them about the
instance with the real tencentcloud SDK (TC3-signed, through TSEGOSSIP_TSE_ENDPOINT) and the
console step is answered by an operator thread that saves, through the stand-in's console, what
deploy shows, with the key from the environment.
"""

from __future__ import annotations

import json

import pytest

from tsegossip import check, deploy, lab, planner, spec
from tsegossip.backends import tse
from tsegossip.lab import tse_lab
from tsegossip.lab.tse_standin import TEST_SECRET_ID, TEST_SECRET_KEY, TSEStandIn, read_instance
from tsegossip.phases import Phase
from tsegossip.planner import StepKind
from tests.e2e.helpers import (KEY_ENV, Out, Probe, failed_outside_batches, observed_phases, pids, save_spec,
                               tsegossip_cmd)

pytestmark = pytest.mark.usefixtures("cdktf_ready")


@pytest.fixture
def tse_env(monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", TEST_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", TEST_SECRET_KEY)

    def point_at(standin):
        monkeypatch.setenv(tse.ENDPOINT_ENV, standin.endpoint)
    return point_at


def tse_spec(c, path, name, servers_phase, **kw):
    doc = tse_lab.write_spec(c, path, servers_phase, name=name, key_env=KEY_ENV, tsegossip_cmd=tsegossip_cmd(), **kw)
    doc["timeouts"] = {"batch_seconds": 60, "poll_seconds": 0.3, "tse_seconds": 180}
    save_spec(path, doc)
    return doc


def statuses(standin) -> list[str]:
    return [h["status"] for h in read_instance(standin.workdir)["history"]]


@pytest.mark.timeout(420)
def test_scenario_2_smooth_on_tse_servers_with_two_groups_already_in_plaintext(tmp_path, lab_binary, key,
                                                                               rollout_name, tse_env):
    workdir = tmp_path / "lab"
    try:
        c = tse_lab.up(workdir, servers_phase="plaintext", binary=lab_binary, servers=3, clients=4, groups=2)
        with TSEStandIn(tse_lab.standin_dir(c)) as standin:
            tse_env(standin)
            spec_path = tmp_path / "spec.json"
            tse_spec(c, spec_path, rollout_name, "plaintext")
            plan = planner.plan(spec.load(spec_path))
            assert [s.after.servers.value for s in plan.steps] == ["accept-encrypted", "send-encrypted", "enforced"]
            out = Out()
            operator = tse_lab.Operator(standin.workdir, key, [Phase.ACCEPT_ENCRYPTED, Phase.SEND_ENCRYPTED,
                                                               Phase.ENFORCED], watch=out.getvalue,
                                        update_seconds=1.0, server_seconds=0.3, progress=lambda line: out.write(line + "\n"))
            operator.start()
            try:
                with Probe(c, interval=0.2) as probe:
                    results = deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", out=out)
            finally:
                operator.stop()
            assert operator.error is None, operator.error
            assert [p for p, _ in operator.saved] == ["accept-encrypted", "send-encrypted", "enforced"]
            assert [r.stack for r in results] == [s.stack for s in plan.steps] and all(r.verdict_ok for r in results)
            text = out.getvalue()
            # credentials and instance first, then what to save, then the wait on evidence
            first = text.index("TSE instance ins-1ab0c0de (ap-guangzhou) found")
            assert first < text.index("TSE has no API for these parameters")
            assert text.count("statuses seen: running -> updating -> restarting -> running") == 3
            assert key.reveal() not in text and TEST_SECRET_KEY not in text
            assert statuses(standin) == ["running"] + ["updating", "restarting", "running"] * 3
            assert probe.rounds > 50, probe.rounds
            assert failed_outside_batches(probe, out) == []
            assert set(observed_phases(c).values()) == {"enforced"}
            verdict = check.run_check(plan.rollout, key, plan.final)
            assert verdict.ok, check.as_table(verdict)
            for state in (tmp_path / "deploy").rglob("*.tfstate"):
                assert key.reveal() not in state.read_text() and TEST_SECRET_KEY not in state.read_text()
    finally:
        lab.down(workdir, quiet=True)


@pytest.mark.timeout(420)
def test_scenario_1_a_fresh_instance_with_its_own_key_adopted_then_new_clients_join_encrypted(
        tmp_path, lab_binary, key, rollout_name, tse_env):
    # A new TSE instance has a key of its own and verifies nothing: the operator adopts that key
    # (puts it in $TSEGOSSIP_KEY: the `key` fixture's), tsegossip checks it against the keyring.
    workdir = tmp_path / "lab"
    try:
        c = tse_lab.up(workdir, servers_phase="accept-encrypted", instance_key=key.reveal(), binary=lab_binary,
                       servers=3, clients=2, groups=2)
        for n in c.clients:
            assert lab.stop(c, n.name) == "stopped"
        with TSEStandIn(tse_lab.standin_dir(c)) as standin:
            tse_env(standin)
            spec_path = tmp_path / "spec.json"
            tse_spec(c, spec_path, rollout_name, "accept-encrypted", strategy="direct", joined=False)
            plan = planner.plan(spec.load(spec_path))
            assert [s.kind for s in plan.steps] == [StepKind.SERVERS, StepKind.JOIN]
            out = Out()
            operator = tse_lab.Operator(standin.workdir, key, [Phase.ENFORCED], watch=out.getvalue,
                                        update_seconds=1.0, server_seconds=0.3, progress=lambda line: out.write(line + "\n"))
            operator.start()
            try:
                deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[0].stack],
                                    out=out)
            finally:
                operator.stop()
            assert operator.error is None, operator.error
            assert f"the servers' keyring holds {key.fingerprint}, the key in ${KEY_ENV}: adopting it" in out.getvalue()
            assert {n.name: lab.node_pid(c, n.name) for n in c.clients} == {n.name: None for n in c.clients}
            assert {observed_phases(c)[n.name] for n in c.servers} == {"enforced"}
            deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[1].stack], out=out)
            assert all(pids(c).values()), pids(c)
            assert set(observed_phases(c).values()) == {"enforced"}
            for n in c.clients:
                assert json.loads(open(n.config_path).read())["encrypt_verify_incoming"] is True
            verdict = check.run_check(plan.rollout, key, plan.final)
            assert verdict.ok, check.as_table(verdict)
    finally:
        lab.down(workdir, quiet=True)


@pytest.mark.timeout(300)
def test_a_key_that_is_not_the_instances_own_is_refused_before_the_console_step(tmp_path, lab_binary, key,
                                                                                 rollout_name, tse_env):
    workdir = tmp_path / "lab"
    try:
        instance_key = lab.generate_key()   # the instance's; $TSEGOSSIP_KEY holds another
        c = tse_lab.up(workdir, servers_phase="accept-encrypted", instance_key=instance_key, binary=lab_binary,
                       servers=3, clients=2, groups=1)
        for n in c.clients:
            lab.stop(c, n.name)
        with TSEStandIn(tse_lab.standin_dir(c)) as standin:
            tse_env(standin)
            spec_path = tmp_path / "spec.json"
            tse_spec(c, spec_path, rollout_name, "accept-encrypted", strategy="direct", joined=False)
            plan = planner.plan(spec.load(spec_path))
            out = Out()
            with pytest.raises(deploy.DeployError) as err:
                deploy.deploy_steps(plan, spec_path, key, tmp_path / "deploy", stacks=[plan.steps[0].stack],
                                    out=out)
            text = out.getvalue() + str(err.value)
            assert "The keyring does not hold the key on every node" in text
            assert "TSE has no API for these parameters" not in text
            assert statuses(standin) == ["running"]
            assert instance_key not in text and key.reveal() not in text
    finally:
        lab.down(workdir, quiet=True)
