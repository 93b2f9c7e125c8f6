"""Rough edges a new user hit, on a real lab through the console script: deploy again after (part of) a
rollout, check after a rollout without --after, a closed servers.http_addr."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import tempfile
import time

import pytest

from tsegossip import deploy, planner, spec
from tests.e2e.helpers import Out, lab_up, make_spec, tsegossip_cmd

pytestmark = pytest.mark.usefixtures("cdktf_ready")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, timeout=300):
    return subprocess.run([tsegossip_cmd(), *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(360)
def test_deploy_resumes_from_the_live_cluster_and_says_when_every_step_is_done(tmp_path, lab_binary, key,
                                                                                rollout_name):
    work = tmp_path / "deploy"
    leftovers = set(glob.glob(os.path.join(tempfile.gettempdir(), "terraform-log*")))
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name)
        plan = planner.plan(spec.load(spec_path))
        first, second, third = plan.steps
        deploy.deploy_steps(plan, spec_path, key, work, stacks=[first.stack, second.stack], out=Out())

        # The spec still says plaintext (today's phases as written); the cluster is two steps on.
        r = run("deploy", spec_path, "--workdir", work)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (f"resuming: the live cluster is where {second.stack} leaves it (5/5 listed nodes); "
                f"{first.stack}, {second.stack} already done, deploying {third.stack}") in r.stdout
        assert f"== step 1/1: cdktf deploy {third.stack}" in r.stdout

        t0 = time.monotonic()
        again = run("deploy", spec_path, "--workdir", work)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to do: every step is already done" in again.stdout and third.stack in again.stdout
        assert "cdktf deploy" not in again.stdout and time.monotonic() - t0 < 30

        checked = run("check", spec_path, "--format", "json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        doc = json.loads(checked.stdout)
        assert doc["ok"] and f"judged against the phases planned after {third.stack}" in doc["judged_against"]
        assert {n["observed"] for n in doc["nodes"]} == {"enforced"}
        today = run("check", spec_path, "--today")
        assert today.returncode == 1 and "expected plaintext" in today.stdout

        # stage 1, finished and then moved past by stages 2 and 3: its diff is clean and says why
        diff = deploy.run_cdktf("diff", [first.stack], spec_path, work, Out())
        assert diff.returncode == 0, diff.stdout
        text = " ".join(diff.stdout.split())
        assert "No changes" in text and "to change" not in text, diff.stdout
        assert "superseded by a later stage" in text, diff.stdout
    # old engines (panicwrap) left a /tmp/terraform-log* per run; ours leave nothing behind
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "terraform-log*"))) == leftovers

    # the lab is gone: a closed servers.http_addr fails at once, naming the field, deploying nothing
    doc = json.loads(spec_path.read_text())
    closed = f"http://127.0.0.1:{_closed_port()}"
    doc["servers"]["http_addr"] = closed
    spec_path.write_text(json.dumps(doc))
    t0 = time.monotonic()
    r = run("deploy", spec_path, "--workdir", work, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"servers.http_addr: {closed}: the servers' API does not answer" in r.stderr
    assert "nothing was deployed" in r.stderr and "cdktf deploy" not in r.stdout
    assert time.monotonic() - t0 < 15
