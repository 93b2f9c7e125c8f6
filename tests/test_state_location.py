"""A changed state directory with the same cdktf.out: no "Backend configuration changed", no orphaned state."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tsegossip import statelocation
from tests.support import TEST_KEY

ROOT = Path(__file__).resolve().parent.parent


def _stack(outdir: Path, name: str, synthesized: str, recorded: str | None) -> Path:
    d = outdir / "stacks" / name
    (d / ".terraform").mkdir(parents=True)
    (d / "cdk.tf.json").write_text(json.dumps({"terraform": {"backend": {"local": {"path": synthesized}}}}))
    if recorded is not None:
        (d / ".terraform" / "terraform.tfstate").write_text(
            json.dumps({"version": 3, "backend": {"type": "local", "config": {"path": recorded}}}))
    return d


def test_a_record_of_an_empty_old_state_is_forgotten(tmp_path):
    d = _stack(tmp_path / "out", "s-1", str(tmp_path / "b" / "s-1.tfstate"), str(tmp_path / "a" / "s-1.tfstate"))
    (moved,) = statelocation.reconcile(tmp_path / "out", ["s-1"])
    assert moved.old == tmp_path / "a" / "s-1.tfstate" and moved.new == tmp_path / "b" / "s-1.tfstate"
    assert not (d / ".terraform" / "terraform.tfstate").exists()


def test_the_same_place_and_no_record_are_left_alone(tmp_path):
    same = str(tmp_path / "a" / "s-1.tfstate")
    d = _stack(tmp_path / "out", "s-1", same, same)
    _stack(tmp_path / "out", "s-2", same, None)
    assert statelocation.reconcile(tmp_path / "out", ["s-1", "s-2", "s-3"]) == []
    assert (d / ".terraform" / "terraform.tfstate").exists()


def test_relative_paths_are_the_stack_directory_s(tmp_path):
    d = _stack(tmp_path / "out", "s-1", "../../../state/s-1.tfstate", str(tmp_path / "state" / "s-1.tfstate"))
    assert statelocation.reconcile(tmp_path / "out", ["s-1"]) == []
    assert (d / ".terraform" / "terraform.tfstate").exists()


def test_fails_moving_away_from_a_state_that_holds_resources(tmp_path):
    old = tmp_path / "a" / "s-1.tfstate"
    old.parent.mkdir()
    old.write_text(json.dumps({"version": 4, "resources": [{"type": "tsegossip_phase_gate"}]}))
    d = _stack(tmp_path / "out", "s-1", str(tmp_path / "b" / "s-1.tfstate"), str(old))
    with pytest.raises(statelocation.StateMoved) as err:
        statelocation.reconcile(tmp_path / "out", ["s-1"])
    assert f"its Terraform state is at {old}" in str(err.value)
    assert f"mv {old} {tmp_path / 'b' / 's-1.tfstate'}" in str(err.value) and "nothing was deployed" in str(err.value)
    assert (d / ".terraform" / "terraform.tfstate").exists() and old.exists()


def test_fails_two_states_of_one_stack(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "s-1.tfstate").write_text(json.dumps({"resources": [{"type": "x"}]}))
    _stack(tmp_path / "out", "s-1", str(tmp_path / "b" / "s-1.tfstate"), str(tmp_path / "a" / "s-1.tfstate"))
    with pytest.raises(statelocation.StateMoved, match="Terraform states at both"):
        statelocation.reconcile(tmp_path / "out", ["s-1"])


@pytest.mark.timeout(300)
def test_cdktf_diff_with_another_state_dir_and_the_same_output(tmp_path):
    """What a user hit: the second `cdktf diff` stopped in `terraform init` with "Backend configuration changed"."""
    env = {**os.environ, "TSEGOSSIP_SPEC": str(ROOT / "examples" / "self-managed.yaml"),
           "TSEGOSSIP_KEY": TEST_KEY, "CHECKPOINT_DISABLE": "1"}
    stack = "dc1-1-accept-encrypted"

    def diff(state_dir: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdktf"), "diff", stack, "--output",
                               str(tmp_path / "out"), "--skip-provider-lock", "--no-color"], cwd=ROOT,
                              env={**env, "TSEGOSSIP_STATE_DIR": str(state_dir)}, capture_output=True, text=True,
                              timeout=240)

    first = diff(tmp_path / "a")
    assert first.returncode == 0, first.stdout + first.stderr
    second = diff(tmp_path / "b")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Backend configuration changed" not in second.stdout + second.stderr
    assert "to add" in second.stdout
    # a state with resources at b: moving on to c would orphan it, so synth refuses and says how to keep it
    (tmp_path / "b").mkdir(exist_ok=True)
    (tmp_path / "b" / f"{stack}.tfstate").write_text(json.dumps({"version": 4, "resources": [{"type": "x"}]}))
    third = diff(tmp_path / "c")
    assert third.returncode != 0
    assert f"error: TSEGOSSIP_STATE_DIR: stack {stack}: its Terraform state is at {tmp_path / 'b'}" in third.stdout + third.stderr
    assert TEST_KEY not in first.stdout + second.stdout + third.stdout + third.stderr
