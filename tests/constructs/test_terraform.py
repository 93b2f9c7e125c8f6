"""The synthesized JSON is valid Terraform for the project's engine (OpenTofu by default),
with the provider from the local filesystem mirror; the jsondecode maps evaluate back to maps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tsegossip.constructs import jsondecode_expression
from tsegossip.constructs.encoding import MAPS_DIR, encode_map
from tsegossip import resource_schema as attributes

from .conftest import EXAMPLES, ROOT, decode_map, load_plan, stack_json

MIRROR = ROOT / "mirror"
LAUNCHER = (MIRROR / "registry.terraform.io" / "tsegossip" / "tsegossip" / attributes.PROVIDER_VERSION
            / "linux_amd64" / f"terraform-provider-tsegossip_v{attributes.PROVIDER_VERSION}")
TERRAFORMRC = ROOT / ".terraformrc"


def _terraform() -> str:
    """The project's engine ($TERRAFORM_BINARY_NAME, OpenTofu by default, built by ./bootstrap)."""
    exe = Path(os.environ.get("TERRAFORM_BINARY_NAME", ""))
    if not exe.is_file():
        pytest.skip(f"project engine missing at {exe} (run ./bootstrap)")
    return str(exe)


def _run(args: list[str], cwd: Path, cli_config: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(cli_config), "CHECKPOINT_DISABLE": "1",
           "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    env.pop("TF_DATA_DIR", None)
    return subprocess.run([_terraform(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_jsondecode_maps_evaluate_in_terraform(tmp_path, synthesized):
    """No provider needed: outputs holding our expressions, applied to a throwaway local state."""
    tricky = {"we\"ird": "${not} %{if} \\ back é \n nl", "a-1": "http://a-1:8500"}
    values = {"tricky": (jsondecode_expression(tricky), tricky)}
    doc = stack_json(synthesized["tse-smooth"], "shop-2-send-encrypted")
    gate = doc["resource"]["tsegossip_phase_gate"]["gate-before"]
    values["expected"] = (gate["expected"], decode_map(gate["expected"]))
    values["addresses"] = (gate["addresses"], decode_map(gate["addresses"]))
    # a large map, spilled to a file beside the stack, read back by file() relative to path.module
    big = {f"node-{i:05d}": f"http://node-{i:05d}.internal:8500" for i in range(300)}
    spilled: dict[str, str] = {}
    values["spilled"] = (encode_map(big, spilled.__setitem__), big)
    assert spilled, "300 entries are above the spill threshold"
    for name, text in spilled.items():
        (tmp_path / MAPS_DIR).mkdir(parents=True, exist_ok=True)
        (tmp_path / MAPS_DIR / name).write_text(text)
    (tmp_path / "main.tf.json").write_text(json.dumps({"output": {k: {"value": e} for k, (e, _) in values.items()}}))
    rc = tmp_path / "empty.tfrc"
    rc.write_text("disable_checkpoint = true\n")
    for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
        done = _run(args, tmp_path, rc)
        assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(_run(["output", "-json"], tmp_path, rc).stdout)
    for name, (_, want) in values.items():
        assert out[name]["value"] == want, name
        assert out[name]["type"][0] == "object"  # a map, not a string


def _mirror_ready() -> str | None:
    if not LAUNCHER.is_file():
        return f"provider mirror not built yet ({LAUNCHER.relative_to(ROOT)} missing): run tools/install-provider"
    if not TERRAFORMRC.is_file() or "filesystem_mirror" not in TERRAFORMRC.read_text():
        return ".terraformrc has no filesystem_mirror yet: run tools/install-provider"
    return None


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_terraform_validate_every_stack(example, synthesized, tmp_path):
    reason = _mirror_ready()
    if reason:
        pytest.skip(reason)
    outdir = synthesized[example.stem]
    for step in load_plan(example).steps:
        work = tmp_path / step.stack
        shutil.copytree(outdir / "stacks" / step.stack, work)
        init = _run(["init", "-backend=false", "-input=false", "-no-color"], work, TERRAFORMRC, timeout=180)
        assert init.returncode == 0, f"{step.stack}: terraform init\n{init.stdout}{init.stderr}"
        done = _run(["validate", "-json", "-no-color"], work, TERRAFORMRC, timeout=180)
        result = json.loads(done.stdout)
        assert result["valid"], f"{step.stack}: {json.dumps(result['diagnostics'], indent=1)}"


def test_terraform_validate_a_large_fleet_stack(tmp_path):
    """A stack whose maps live in files beside it is valid Terraform for the provider's schema."""
    reason = _mirror_ready()
    if reason:
        pytest.skip(reason)
    from tsegossip import planner

    from .conftest import build_app
    from .test_large_maps import fleet

    plan = planner.plan(fleet(150))
    app, _ = build_app(plan, outdir=str(tmp_path / "out"))
    app.synth()
    step = plan.steps[1]
    work = tmp_path / step.stack
    shutil.copytree(tmp_path / "out" / "stacks" / step.stack, work)
    assert list((work / MAPS_DIR).glob("*.json"))
    init = _run(["init", "-backend=false", "-input=false", "-no-color"], work, TERRAFORMRC, timeout=180)
    assert init.returncode == 0, init.stdout + init.stderr
    done = _run(["validate", "-json", "-no-color"], work, TERRAFORMRC, timeout=180)
    assert json.loads(done.stdout)["valid"], done.stdout
    (work / MAPS_DIR / next(iter(sorted(p.name for p in (work / MAPS_DIR).iterdir())))).unlink()
    broken = _run(["validate", "-json", "-no-color"], work, TERRAFORMRC, timeout=180)
    assert not json.loads(broken.stdout)["valid"], "a missing map file must make the stack invalid"
