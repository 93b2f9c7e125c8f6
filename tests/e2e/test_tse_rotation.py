"""A key rotation with TSE servers, against the local TSE stand-in: install, use and remove through the
keyring API (runner → the servers' HTTP address), and the configs stage as the console's save of the same
phase with the new key (the operator thread saves it; TSE rolls its servers, which keep the new primary)."""

from __future__ import annotations


import pytest

from tsegossip import deploy, lab, rotation, spec
from tsegossip.lab import phase_fragment
from tsegossip.keys import GossipKey, KeyShown
from tsegossip.lab import tse_lab
from tsegossip.lab.tse_standin import TEST_SECRET_ID, TEST_SECRET_KEY, TSEStandIn, read_instance
from tsegossip.backends import tse
from tsegossip.observe import keyring
from tsegossip.phases import Phase
from tests.e2e.helpers import Out, Probe, failed_outside_batches, save_spec, tsegossip_cmd

pytestmark = pytest.mark.usefixtures("cdktf_ready")
NEW_ENV = "TSEGOSSIP_NEW_KEY"


@pytest.mark.timeout(420)
def test_rotation_with_tse_servers_saves_the_console_once(tmp_path, lab_binary, key, rollout_name, monkeypatch):
    new = GossipKey.generate()
    monkeypatch.setenv(NEW_ENV, new.reveal())
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", TEST_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", TEST_SECRET_KEY)
    workdir = tmp_path / "lab"
    try:
        c = tse_lab.up(workdir, servers_phase="enforced", instance_key=key.reveal(), binary=lab_binary, servers=3,
                       clients=2, groups=1, initial_fragments={"clients": phase_fragment("enforced", key.reveal())})
        with TSEStandIn(tse_lab.standin_dir(c)) as standin:
            monkeypatch.setenv(tse.ENDPOINT_ENV, standin.endpoint)
            spec_path = tmp_path / "spec.json"
            doc = tse_lab.write_spec(c, spec_path, "enforced", name=rollout_name, key_env="TSEGOSSIP_KEY",
                                     clients_phase="enforced", tsegossip_cmd=tsegossip_cmd())
            doc["timeouts"] = {"batch_seconds": 60, "poll_seconds": 0.3, "tse_seconds": 180}
            doc["rotate_to_env"] = NEW_ENV
            save_spec(spec_path, doc)
            rollout = spec.load(spec_path)
            plan = rotation.plan_rotation(rollout, KeyShown("TSEGOSSIP_KEY", key.fingerprint, key.redacted, "environment"),
                                          KeyShown(NEW_ENV, new.fingerprint, new.redacted, "environment"))
            out = Out()
            operator = tse_lab.Operator(standin.workdir, new, [Phase.ENFORCED], watch=out.getvalue,
                                        update_seconds=1.0, server_seconds=0.3,
                                        progress=lambda line: out.write(line + "\n"))
            operator.start()
            try:
                with Probe(c, interval=0.2) as probe:
                    done = deploy.deploy_rotation(plan, spec_path, tmp_path / "deploy", out=out)
            finally:
                operator.stop()
            assert operator.error is None, operator.error
            assert [r.stack for r in done] == [s.stack for s in plan.stages]
            assert [p for p, _ in operator.saved] == ["enforced"]  # the configs stage only
            text = out.getvalue()
            assert "saving it as the instance's gossip key (a key rotation's configs stage" in text
            assert "statuses seen: running -> updating -> restarting -> running" in text
            history = [h["status"] for h in read_instance(standin.workdir)["history"]]
            assert history == ["running", "updating", "restarting", "running"]
            ring = keyring(c.servers[0].http_addr)
            assert ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(key.fingerprint), ring.describe()
            # the console's restarts are the only ones: no failed sample of a member outside them
            assert failed_outside_batches(probe, out) == [], probe.failed
            assert new.reveal() not in text and key.reveal() not in text and TEST_SECRET_KEY not in text
    finally:
        lab.down(workdir, quiet=True)
