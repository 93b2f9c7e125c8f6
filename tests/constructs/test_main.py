"""main.py (the CDKTF app) and `cdktf synth` with the pinned cli."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES, ROOT, TEST_KEY, load_plan


def _main(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("TSEGOSSIP_SPEC", "TSEGOSSIP_KEY")}
    full.update(env)
    return subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)


def _one_clear_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_main_synthesizes_one_stack_per_step(example, tmp_path):
    done = _main(tmp_path, TSEGOSSIP_SPEC=str(example), TSEGOSSIP_KEY=TEST_KEY.reveal())
    assert done.returncode == 0, done.stderr
    stacks = sorted(p.name for p in (tmp_path / "cdktf.out" / "stacks").iterdir())
    assert stacks == sorted(s.stack for s in load_plan(example).steps)


def test_main_defaults_to_tse_smooth(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = _main(tmp_path, TSEGOSSIP_KEY=TEST_KEY.reveal())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cdktf.out" / "stacks" / "shop-1-accept-encrypted" / "cdk.tf.json").is_file()


def test_fails_missing_spec(tmp_path):
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(tmp_path / "nope.yaml"), TSEGOSSIP_KEY=TEST_KEY.reveal()))
    assert line == f"error: TSEGOSSIP_SPEC: no such file: {tmp_path / 'nope.yaml'}"


def test_fails_invalid_spec(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text((ROOT / "examples" / "tse-smooth.yaml").read_text().replace("target: enforced", "target: secure"))
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(path), TSEGOSSIP_KEY=TEST_KEY.reveal()))
    assert line.startswith(f"error: {path}: target: 'secure' is not allowed; allowed: ")


def _fingerprints(out: Path) -> set[str]:
    found = set()
    for tf in (out / "cdktf.out" / "stacks").glob("*/cdk.tf.json"):
        for kind in json.loads(tf.read_text()).get("resource", {}).values():
            found |= {r["key_fingerprint"] for r in kind.values() if "key_fingerprint" in r}
    return found


def test_synth_without_the_key_is_the_same_plan_with_fingerprint_unknown(tmp_path):
    # A pull request's plan needs no secret: the same stacks, every fingerprint "unknown" (deploy refuses them).
    with_key, without = tmp_path / "with", tmp_path / "without"
    with_key.mkdir(), without.mkdir()
    assert _main(with_key, TSEGOSSIP_SPEC=str(EXAMPLES[0]), TSEGOSSIP_KEY=TEST_KEY.reveal()).returncode == 0
    done = _main(without, TSEGOSSIP_SPEC=str(EXAMPLES[0]))
    assert done.returncode == 0, done.stderr
    assert _fingerprints(with_key) == {TEST_KEY.fingerprint} and _fingerprints(without) == {"unknown"}
    a = sorted(p.name for p in (with_key / "cdktf.out" / "stacks").iterdir())
    assert a == sorted(p.name for p in (without / "cdktf.out" / "stacks").iterdir())
    for stack in a:
        one = (with_key / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_text()
        other = (without / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_text()
        # the default local backend is in the working directory: the one other difference
        assert one.replace(TEST_KEY.fingerprint, "unknown").replace(str(with_key), str(without)) == other


def test_synth_without_the_key_carries_the_pinned_fingerprint(tmp_path):
    spec = tmp_path / "pinned.yaml"
    spec.write_text(EXAMPLES[0].read_text() + f"\nkey_fingerprint: {TEST_KEY.fingerprint}\n")
    done = _main(tmp_path, TSEGOSSIP_SPEC=str(spec))
    assert done.returncode == 0, done.stderr
    assert _fingerprints(tmp_path) == {TEST_KEY.fingerprint}


def test_fails_key_other_than_the_pinned_one(tmp_path):
    from tsegossip.keys import GossipKey

    other = GossipKey.generate()
    spec = tmp_path / "pinned.yaml"
    spec.write_text(EXAMPLES[0].read_text() + f"\nkey_fingerprint: {TEST_KEY.fingerprint}\n")
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(spec), TSEGOSSIP_KEY=other.reveal()))
    assert (f"environment variable TSEGOSSIP_KEY (named by key_env) holds the key with fingerprint "
            f"{other.fingerprint}, but the spec pins key_fingerprint {TEST_KEY.fingerprint}") in line
    assert other.reveal() not in line and not list(tmp_path.glob("cdktf.out/stacks/*/cdk.tf.json"))


def test_fails_invalid_key(tmp_path):
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(EXAMPLES[0]), TSEGOSSIP_KEY="c2hvcnQ="))
    assert "decodes to 5 bytes; memberlist accepts 16, 24 or 32" in line


def test_fails_no_safe_plan(tmp_path):
    spec = (ROOT / "examples" / "tse-direct.yaml").read_text().replace("joined: false", "joined: true")
    path = tmp_path / "split.yaml"
    path.write_text(spec)
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(path), TSEGOSSIP_KEY=TEST_KEY.reveal()))
    assert line.startswith(f"error: {path}: ") and "strategy direct is only for clients that have not joined yet" in line


def test_cdktf_synth_with_pinned_cli(tmp_path):
    cli = ROOT / "node_modules" / ".bin" / "cdktf"
    if not cli.exists():
        pytest.skip("node_modules/.bin/cdktf missing: run ./bootstrap (npm ci installs cdktf-cli 0.21.0)")
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("cdktf.json runs .venv/bin/python main.py: run ./bootstrap")
    env = {**os.environ, "TSEGOSSIP_SPEC": str(ROOT / "examples" / "tse-smooth.yaml"),
           "TSEGOSSIP_KEY": TEST_KEY.reveal(), "CHECKPOINT_DISABLE": "1",
           "CDKTF_HOME": os.environ.get("CDKTF_HOME", str(tmp_path / "cdktf-home")),
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    out = tmp_path / "out"
    done = subprocess.run([str(cli), "synth", "--output", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["stacks"]) == sorted(s.stack for s in load_plan(ROOT / "examples" / "tse-smooth.yaml").steps)
    assert TEST_KEY.reveal() not in done.stdout + done.stderr
