"""`tsegossip init DIR`: a cdktf app outside the checkout that validates, plans and synthesizes out of the box."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import TEST_KEY, console_script

SCAFFOLD = ["cdktf.json", "main.py", "spec.yaml", "requirements.lock", ".gitignore"]


def cli(*args, cwd=None, env=None):
    return subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def test_init_writes_an_app_that_plans_and_synthesizes_with_no_key_in_its_output(tmp_path):
    app = tmp_path / "infra" / "gossip"
    r = cli("init", app)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in app.iterdir()) == sorted(SCAFFOLD)
    assert json.loads((app / "cdktf.json").read_text())["app"] == f"{sys.executable} main.py"
    lock = (app / "requirements.lock").read_text()
    assert "tsegossip==0.1.0" in lock and "cdktf==0.21.0" in lock
    env = {**os.environ, "TSEGOSSIP_KEY": TEST_KEY}
    env.pop("TSEGOSSIP_SPEC", None)
    assert cli("validate", "spec.yaml", cwd=app, env=env).returncode == 0
    plan = cli("plan", "spec.yaml", "--format", "json", cwd=app, env=env)
    assert plan.returncode == 0, plan.stderr
    stacks = [s["stack"] for s in json.loads(plan.stdout)["steps"]]
    assert stacks == ["gossip-1-accept-encrypted", "gossip-2-send-encrypted", "gossip-3-enforced"]
    synth = subprocess.run([sys.executable, "main.py"], cwd=app, env=env, capture_output=True, text=True,
                           timeout=300)
    assert synth.returncode == 0, synth.stderr
    out = app / "cdktf.out" / "stacks"
    assert sorted(p.name for p in out.iterdir()) == stacks
    for f in out.rglob("*.json"):
        assert TEST_KEY not in f.read_text()


def test_init_refuses_a_non_empty_directory_naming_what_it_would_overwrite(tmp_path):
    (tmp_path / "main.py").write_text("print('mine')\n")
    (tmp_path / "notes.txt").write_text("x")
    r = cli("init", tmp_path)
    assert r.returncode == 1 and "would overwrite main.py" in r.stderr and "--force" in r.stderr
    assert (tmp_path / "main.py").read_text() == "print('mine')\n"
    forced = cli("init", tmp_path, "--force")
    assert forced.returncode == 0 and "tsegossip.app" in (tmp_path / "main.py").read_text()
    assert (tmp_path / "notes.txt").read_text() == "x"
