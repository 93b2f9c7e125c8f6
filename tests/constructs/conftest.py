"""Shared helpers for the construct tests: a fixed key, the bundled examples, synth into tmp."""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
from pathlib import Path

import pytest

from tsegossip import planner, spec
from tsegossip.keys import GossipKey

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden"
# Fixed so that goldens (which carry the fingerprint) are stable. base64 of bytes 0..31.
TEST_KEY = GossipKey(base64.b64encode(bytes(range(32))).decode())

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CHECKPOINT_DISABLE", "1")


def load_plan(path: Path):
    return planner.plan(spec.load(path))


def build_app(plan, key: GossipKey = TEST_KEY, outdir: str | None = None):
    """The same wiring as main.py, into `outdir`; returns (app, stacks)."""
    from tsegossip.constructs import PhaseStack, PhaseStackProps
    from tsegossip.constructs._cdk import App

    app = App(outdir=outdir) if outdir else App()
    stacks = []
    previous = None
    for step in plan.steps:
        previous = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, key, previous))
        stacks.append(previous)
    return app, stacks


def synth_to(plan, outdir: Path, key: GossipKey = TEST_KEY) -> Path:
    app, _ = build_app(plan, key, str(outdir))
    app.synth()
    return outdir


def stack_json(outdir: Path, stack: str) -> dict:
    return json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text())


def decode_map(expr: str) -> dict:
    """Undo bindings.jsondecode_expression (the test's own reading, the way Terraform reads it)."""
    prefix, suffix = '${jsondecode("', '")}'
    assert expr.startswith(prefix) and expr.endswith(suffix), expr[:60]
    body = expr[len(prefix):-len(suffix)]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
            i += 2
        elif body.startswith("$${", i) or body.startswith("%%{", i):
            out.append(body[i] + "{")
            i += 3
        else:
            out.append(c)
            i += 1
    return json.loads("".join(out))


@pytest.fixture(scope="session", autouse=True)
def _clean_cdktf_outdirs():
    """Testing.full_synth and App() without outdir leave /tmp/cdktf.outdir.* behind."""
    before = set(glob.glob("/tmp/cdktf.outdir.*"))
    yield
    for d in set(glob.glob("/tmp/cdktf.outdir.*")) - before:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> dict[str, Path]:
    """Every bundled example synthesized once with the test key: example stem → outdir."""
    out = {}
    for path in EXAMPLES:
        outdir = tmp_path_factory.mktemp(f"synth-{path.stem}")
        out[path.stem] = synth_to(load_plan(path), outdir)
    return out
