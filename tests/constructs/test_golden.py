"""Golden copies of every stack's JSON for the bundled examples (synthesized with the fixed
test key). Regenerate on purpose only:  TSEGOSSIP_UPDATE_GOLDEN=1 ./bootstrap -- pytest tests/constructs/test_golden.py"""

from __future__ import annotations

import json
import os

import pytest

from .conftest import EXAMPLES, GOLDEN, load_plan, stack_json

UPDATE = os.environ.get("TSEGOSSIP_UPDATE_GOLDEN") == "1"


def normalise(doc: dict) -> dict:
    """The local backend's path is absolute (the synth's working directory): keep its file name."""
    backend = doc.get("terraform", {}).get("backend", {}).get("local")
    if backend and "path" in backend:
        backend["path"] = os.path.basename(backend["path"])
    return doc


def _cases():
    return [(ex, step.stack) for ex in EXAMPLES for step in load_plan(ex).steps]


@pytest.mark.parametrize("example,stack", _cases(), ids=lambda v: getattr(v, "stem", v))
def test_stack_matches_golden(example, stack, synthesized):
    got = normalise(stack_json(synthesized[example.stem], stack))
    path = GOLDEN / example.stem / f"{stack}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    if not path.exists():
        pytest.fail(f"no golden {path.relative_to(GOLDEN.parent.parent)}; create it with TSEGOSSIP_UPDATE_GOLDEN=1")
    assert got == json.loads(path.read_text()), (
        f"{stack} differs from {path.name}; if the change is intended, regenerate with TSEGOSSIP_UPDATE_GOLDEN=1")


def test_no_stale_goldens():
    want = {f"{ex.stem}/{stack}.json" for ex, stack in _cases()}
    have = {str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*.json")}
    assert have <= want, f"goldens without a stack (delete them): {sorted(have - want)}"
