"""The constructs as a library: a user's own cdktf App holding an unrelated stack and the rollout's stacks,
synthesized and deployed together, outside the checkout, against a real lab."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tsegossip import deploy, planner, spec
from tests.e2e.helpers import Out, lab_up, make_spec, observed_phases
from tests.support import ROOT

pytestmark = pytest.mark.usefixtures("cdktf_ready")

APP = '''import os, sys
from cdktf import App, TerraformOutput, TerraformStack
from tsegossip.app import add_rollout

app = App()
other = TerraformStack(app, "platform-dns")   # somebody else's stack, in the same app
TerraformOutput(other, "zone", value="consul.example.internal")
add_rollout(app, os.environ["TSEGOSSIP_SPEC"])
app.synth()
'''


@pytest.mark.timeout(300)
def test_an_app_with_another_stack_synthesizes_and_deploys_both(tmp_path, lab_binary, key, rollout_name):
    app = tmp_path / "their-repo"
    app.mkdir()
    (app / "main.py").write_text(APP)
    (app / "cdktf.json").write_text(json.dumps({"language": "python", "app": f"{sys.executable} main.py",
                                                "sendCrashReports": False, "terraformProviders": []}))
    (app / "node_modules").symlink_to(ROOT / "node_modules")   # their repo would `npm install cdktf-cli`
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=1) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name)
        plan = planner.plan(spec.load(spec_path))
        first = plan.steps[0]
        work = tmp_path / "deploy"
        proc = deploy.run_cdktf("deploy", ["platform-dns", first.stack], spec_path, work, Out(), root=app)
        assert proc.returncode == 0, proc.stdout
        assert sorted(p.name for p in (work / "cdktf.out" / "stacks").iterdir()) == sorted(
            ["platform-dns", *(s.stack for s in plan.steps)])
        assert "consul.example.internal" in proc.stdout
        assert set(observed_phases(c).values()) == {first.after.servers.value}
