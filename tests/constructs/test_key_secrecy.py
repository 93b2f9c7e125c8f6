"""No file under cdktf.out may carry the gossip key, in any encoding."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tsegossip.keys import GossipKey

from .conftest import EXAMPLES, ROOT, TEST_KEY, load_plan, synth_to


def _forms(key: GossipKey) -> dict[str, bytes]:
    raw = base64.b64decode(key.reveal())
    b64 = key.reveal().encode()
    return {
        "base64": b64,
        "base64 without padding": b64.rstrip(b"="),
        "urlsafe base64": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "raw bytes": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base64 of the base64": base64.b64encode(b64).rstrip(b"="),
    }


def _leaks(outdir: Path, key: GossipKey) -> list[str]:
    files = [p for p in outdir.rglob("*") if p.is_file()]
    assert files, f"nothing synthesized under {outdir}"
    found = []
    for p in files:
        data = p.read_bytes()
        for name, form in _forms(key).items():
            if form in data:
                found.append(f"{p.relative_to(outdir)}: {name}")
    return found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_key_never_in_synthesized_files(example, tmp_path):
    key = GossipKey.generate()
    out = synth_to(load_plan(example), tmp_path / "cdktf.out", key)
    assert _leaks(out, key) == []
    assert key.fingerprint.encode() in (next(out.rglob("cdk.tf.json"))).read_bytes()


def test_key_never_in_cdktf_out_from_main_py(tmp_path):
    """The real entry point, with the key in the environment variable the spec names."""
    key = GossipKey.generate()
    for example in EXAMPLES:
        cwd = tmp_path / example.stem
        cwd.mkdir()
        env = {**os.environ, "TSEGOSSIP_SPEC": str(example), "TSEGOSSIP_KEY": key.reveal()}
        done = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert key.reveal() not in done.stdout + done.stderr
        assert _leaks(cwd / "cdktf.out", key) == []


def test_leak_detector_detects():
    """The check above would see a key if one were written."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        for name, form in _forms(TEST_KEY).items():
            Path(d, name.replace(" ", "_")).write_bytes(b"x" + form + b"y")
        assert len(_leaks(Path(d), TEST_KEY)) >= len(_forms(TEST_KEY))
