"""`tsegossip plan --format json` as an interface: versioned, described by schemas/plan.schema.json, and
checked by the example policies under examples/policy/ the way a pipeline runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from tests.support import ROOT, TEST_KEY, console_script

SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
CHECK = ROOT / "examples" / "policy" / "check-plan"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def plan_json(spec, *extra) -> dict:
    r = subprocess.run([console_script(), "plan", str(spec), "--format", "json", *extra], capture_output=True,
                       text=True, timeout=60, env={**__import__("os").environ, "TSEGOSSIP_KEY": TEST_KEY})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def policy(tmp_path, doc, *policies) -> subprocess.CompletedProcess:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return subprocess.run([sys.executable, str(CHECK), str(path), *map(str, policies)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.name)
def test_every_examples_plan_is_valid_against_the_plan_schema(spec):
    doc = plan_json(spec)
    assert (doc["format"], doc["version"]) == ("tsegossip-plan", 1)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert TEST_KEY not in json.dumps(doc)


def test_the_example_policies_pass_the_smooth_plan_and_say_so(tmp_path):
    r = policy(tmp_path, plan_json(ROOT / "examples" / "tse-smooth.yaml"))
    assert r.returncode == 0 and "2 policies hold for shop" in r.stdout, r.stdout + r.stderr


def test_a_plan_with_a_jump_goes_to_a_human(tmp_path):
    r = policy(tmp_path, plan_json(ROOT / "examples" / "tse-direct.yaml"))
    assert r.returncode == 1 and "at-most-three-steps-each-proven-safe" in r.stdout, r.stdout


def test_an_enforced_step_beside_a_plaintext_group_is_refused_naming_the_rule_and_the_step(tmp_path):
    doc = plan_json(ROOT / "examples" / "tse-smooth.yaml")
    doc["steps"][1]["servers"] = "enforced"   # what a hand-edited or buggy plan could say
    doc["steps"][1]["clients"]["api"] = "plaintext"
    r = policy(tmp_path, doc, ROOT / "examples" / "policy" / "no-enforced-beside-plaintext.schema.json")
    assert r.returncode == 1, r.stdout
    assert "no step leaves the servers enforced while a client group is still plaintext: at steps/1/clients/api" \
        in r.stdout


@pytest.mark.parametrize("change, message", [
    ({"version": 2}, "plan format version 2; these policies know [1]"),
    ({"format": "something-else"}, "not a tsegossip plan"),
])
def test_a_plan_of_another_version_gets_a_clear_version_error(tmp_path, change, message):
    doc = {**plan_json(ROOT / "examples" / "tse-smooth.yaml"), **change}
    r = policy(tmp_path, doc)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
