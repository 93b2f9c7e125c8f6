"""`tsegossip render` emits, for every step and every group, config valid against
schemas/agent-gossip-config.schema.json (redacted and revealed)."""

from __future__ import annotations

import json

import pytest

from tsegossip import cli, schemas

from .conftest import EXAMPLES, TEST_KEY, load_plan


def _cases():
    out = []
    for ex in EXAMPLES:
        plan = load_plan(ex)
        for step in plan.steps:
            for role in step.after.roles():
                out.append((ex, step.stack, role, step.after.phase_of(role)))
    return out


@pytest.mark.parametrize("example,stack,group,phase", _cases(),
                         ids=lambda v: getattr(v, "stem", str(v)))
@pytest.mark.parametrize("reveal", [False, True], ids=["redacted", "revealed"])
def test_render_is_schema_valid(example, stack, group, phase, reveal, monkeypatch, capsys):
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY.reveal())
    args = ["render", str(example), "--stack", stack, "--group", group] + (["--reveal"] if reveal else [])
    code = cli.main(args)
    captured = capsys.readouterr()
    if phase is None:  # a group that has not joined after this step has no config yet
        assert code == 1 and "has not joined" in captured.err
        return
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert schemas.problems("agent-gossip-config", doc) == []
    if phase.has_key:
        assert (doc["encrypt"] == TEST_KEY.reveal()) is reveal
        assert doc["encrypt_verify_incoming"] is phase.verify_incoming
    else:
        assert doc == {"disable_keyring_file": True}
    assert (TEST_KEY.reveal() in captured.out) is (reveal and phase.has_key)
