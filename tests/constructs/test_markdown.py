"""The PR summary (`tsegossip plan --format markdown`): warnings first, key redacted with its
fingerprint, and per stack every role's old → new flags, the verdict and the deploy command."""

from __future__ import annotations

import pytest

from tsegossip import report

from .conftest import EXAMPLES, TEST_KEY, load_plan


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_markdown_summary(example):
    plan = load_plan(example)
    md = report.as_markdown(plan, TEST_KEY)
    assert TEST_KEY.reveal() not in md
    assert f"`{TEST_KEY.redacted}` (sha256 `{TEST_KEY.fingerprint}`)" in md
    if plan.warnings:
        first_warning = md.index("> **Warning:**")
        assert first_warning < md.index("Gossip key:") < md.index("### 1.")
    for step in plan.steps:
        section = md[md.index(f"### {step.index}. `{step.stack}`"):]
        nxt = section.find("\n### ", 1)
        section = section if nxt < 0 else section[:nxt]
        assert f"cdktf deploy {step.stack}" in section
        assert ("Verdict: **✅ safe**" if step.proof.safe else "Verdict: **⚠️ transient split**") in section
        for role in step.before.roles():
            label = "servers" if role == "servers" else f"client group {role}"
            assert f"| {label}" in section, (step.stack, role)
        for m in step.moves:
            if m.after.has_key:
                assert f"verify_incoming={str(m.after.verify_incoming).lower()}" in section
