"""examples/ci/plan-review.yml: installs with ./bootstrap, synthesizes, writes the summary
to $GITHUB_STEP_SUMMARY and posts it as a PR comment."""

from __future__ import annotations

import yaml

from .conftest import ROOT


def test_plan_review_workflow():
    doc = yaml.safe_load((ROOT / "examples" / "ci" / "plan-review.yml").read_text())
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on
    assert doc["permissions"]["pull-requests"] == "write"
    steps = doc["jobs"]["plan"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "./bootstrap\n" in runs + "\n" or "run: ./bootstrap" in runs
    assert "./bootstrap -- cdktf synth" in runs
    assert "--format markdown" in runs and "$GITHUB_STEP_SUMMARY" in runs
    assert any(s.get("uses", "").startswith("actions/github-script@") and "createComment" in s["with"]["script"]
               for s in steps)
    # a PR plan needs no secret: no key anywhere in the job
    assert "TSEGOSSIP_KEY" not in doc["jobs"]["plan"].get("env", {}) and "secrets." not in (
        ROOT / "examples" / "ci" / "plan-review.yml").read_text()
    assert "tsegossip validate --skip-key" in runs


def test_plan_review_workflow_runs_the_policy_on_the_versioned_plan_json_before_publishing():
    doc = yaml.safe_load((ROOT / "examples" / "ci" / "plan-review.yml").read_text())
    names = [s.get("name", "") for s in doc["jobs"]["plan"]["steps"]]
    policy = next(s for s in doc["jobs"]["plan"]["steps"] if s.get("name", "").startswith("Policy"))
    assert "--format json --output plan.json" in policy["run"] and "examples/policy/check-plan plan.json" in policy["run"]
    assert names.index(policy["name"]) < names.index("Refuse to publish anything holding the key") < \
        names.index("Post or update the PR comment")
    assert (ROOT / "examples" / "policy" / "check-plan").exists()
