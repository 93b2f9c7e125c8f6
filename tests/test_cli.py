"""The CLI through the real console script."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import EXAMPLES, OTHER_KEY, TEST_KEY, console_script, TEST_KEY_REDACTED


def run(*args, key=TEST_KEY, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "TSEGOSSIP_KEY"}
    if key is not None:
        env["TSEGOSSIP_KEY"] = key
    env.update(env_extra or {})
    return subprocess.run([console_script(), *args], capture_output=True, text=True, env=env, timeout=60)


def test_plan_json_shape():
    r = run("plan", str(EXAMPLES / "tse-smooth.yaml"), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["stack"] for s in doc["steps"]] == ["shop-1-accept-encrypted", "shop-2-send-encrypted", "shop-3-enforced"]
    assert doc["steps"][0]["servers"] == "accept-encrypted"
    assert doc["steps"][0]["clients"] == {"web": "accept-encrypted", "api": "accept-encrypted"}
    assert doc["steps"][2]["clients"] == {"web": "enforced", "api": "enforced"}
    assert isinstance(doc["warnings"], list)
    assert TEST_KEY not in r.stdout
    assert doc["key"]["redacted"] == TEST_KEY_REDACTED


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_plan_for_people_never_shows_key(fmt):
    r = run("plan", str(EXAMPLES / "tse-direct.yaml"), "--format", fmt)
    assert r.returncode == 0, r.stderr
    assert TEST_KEY not in r.stdout and TEST_KEY not in r.stderr
    assert "billing-servers-enforced" in r.stdout
    assert TEST_KEY_REDACTED in r.stdout


def test_validate_ok():
    r = run("validate", str(EXAMPLES / "self-managed.yaml"))
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout and TEST_KEY not in r.stdout


def test_render_redacted_and_revealed():
    args = ["render", str(EXAMPLES / "tse-smooth.yaml"), "--stack", "shop-2-send-encrypted", "--group", "web"]
    r = run(*args)
    assert json.loads(r.stdout) == {"encrypt": TEST_KEY_REDACTED, "encrypt_verify_incoming": False,
                                    "encrypt_verify_outgoing": True}
    r = run(*args, "--reveal")
    assert json.loads(r.stdout)["encrypt"] == TEST_KEY


@pytest.mark.parametrize("command", [("render", "--stack", "shop-1-accept-encrypted", "--group", "web"),
                                     ("deploy", "--workdir", "/nonexistent/never-made")])
def test_fails_key_env_unset(command):
    r = run(command[0], str(EXAMPLES / "tse-smooth.yaml"), *command[1:], key=None)
    assert r.returncode == 1
    assert "environment variable TSEGOSSIP_KEY (named by key_env) is not set" in r.stderr
    assert "Traceback" not in r.stderr and "cdktf deploy" not in r.stdout


def test_plan_without_the_key_reviews_the_same_with_fingerprint_unknown():
    with_key = run("plan", str(EXAMPLES / "tse-smooth.yaml"), "--format", "markdown")
    without = run("plan", str(EXAMPLES / "tse-smooth.yaml"), "--format", "markdown", key=None)
    assert with_key.returncode == 0 and without.returncode == 0, without.stderr
    a, b = with_key.stdout.splitlines(), without.stdout.splitlines()
    differ = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b)
    key_line = [(x, y) for x, y in differ if x.startswith("Gossip key:")]
    assert len(key_line) == 1 and "fingerprint **unknown**" in key_line[0][1]
    # the rest that differs is the redacted key in the TSE console parameters, nothing else
    assert all('"encrypt": "' in x and '"encrypt": "(not in $TSEGOSSIP_KEY)"' in y for x, y in differ if (x, y) not in key_line)
    doc = json.loads(run("plan", str(EXAMPLES / "tse-smooth.yaml"), "--format", "json", key=None).stdout)
    assert doc["key"] == {"redacted": "(not in $TSEGOSSIP_KEY)", "fingerprint": "unknown", "env": "TSEGOSSIP_KEY",
                          "source": "none"}


def test_plan_without_the_key_shows_the_pinned_fingerprint(tmp_path):
    from tsegossip.keys import fingerprint_of

    pinned = tmp_path / "pinned.yaml"
    pinned.write_text((EXAMPLES / "tse-smooth.yaml").read_text() + f"\nkey_fingerprint: {fingerprint_of(TEST_KEY)}\n")
    r = run("plan", str(pinned), "--format", "json", key=None)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["key"]["fingerprint"] == fingerprint_of(TEST_KEY)
    assert json.loads(r.stdout)["key"]["source"] == "pinned"
    ok = run("validate", str(pinned))
    assert ok.returncode == 0 and "(as pinned)" in ok.stdout, ok.stderr
    other = run("validate", str(pinned), key=OTHER_KEY)
    assert other.returncode == 1 and f"the spec pins key_fingerprint {fingerprint_of(TEST_KEY)}" in other.stderr
    assert OTHER_KEY not in other.stdout + other.stderr


def test_keygen_prints_the_fingerprint_to_pin_on_stderr():
    r = run("keygen")
    from tsegossip.keys import fingerprint_of

    assert r.returncode == 0 and len(r.stdout.split()) == 1
    assert f"key_fingerprint: {fingerprint_of(r.stdout.strip())}" in r.stderr
    assert r.stdout.strip() not in r.stderr


def test_fails_key_wrong_length():
    r = run("plan", str(EXAMPLES / "tse-smooth.yaml"), key="c2hvcnQ=")
    assert r.returncode == 1
    assert "decodes to 5 bytes; memberlist accepts 16, 24 or 32" in r.stderr


def test_fails_key_not_base64():
    r = run("plan", str(EXAMPLES / "tse-smooth.yaml"), key="not a key!")
    assert r.returncode == 1
    assert "not valid base64" in r.stderr


def test_fails_invalid_spec_exit_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "tse-smooth.yaml").read_text().replace("strategy: smooth", "strategy: fast"))
    r = run("plan", str(bad))
    assert r.returncode == 1
    assert r.stderr.strip() == f"{bad}: strategy: 'fast' is not allowed; allowed: smooth, direct"


def test_fails_direct_with_joined_clients(tmp_path):
    bad = tmp_path / "direct.yaml"
    bad.write_text((EXAMPLES / "tse-smooth.yaml").read_text().replace("strategy: smooth", "strategy: direct"))
    r = run("plan", str(bad))
    assert r.returncode == 1
    assert "strategy direct is only for clients that have not joined yet" in r.stderr
    assert "Use strategy smooth" in r.stderr


def test_fails_unknown_stack():
    r = run("render", str(EXAMPLES / "tse-smooth.yaml"), "--stack", "nope", "--group", "web")
    assert r.returncode == 1
    assert "no step with stack id 'nope'" in r.stderr


def test_usage_error_exit_2():
    r = run("plan")
    assert r.returncode == 2
    assert "usage:" in r.stderr


def _commands(parser=None, prefix=()):
    """Every command path of the real parser (so a new command cannot miss this test)."""
    import argparse

    from tsegossip.cli import build_parser

    parser = parser or build_parser()
    yield list(prefix)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


def test_the_help_walk_sees_the_new_commands():
    paths = {" ".join(c) for c in _commands()}
    assert {"init", "provider install", "tse-parameters", "lab tse save", "lab fleet up", "repair"} <= paths


@pytest.mark.parametrize("cmd", list(_commands()), ids=lambda c: " ".join(c) or "tsegossip")
def test_every_command_has_help(cmd):
    r = run(*cmd, "--help")
    assert r.returncode == 0
    assert "usage: tsegossip" in r.stdout


def test_printed_deploy_commands_of_later_stages_work_by_hand():
    from tsegossip import planner, report, spec

    plan = planner.plan(spec.load(str(Path(__file__).resolve().parent.parent / "examples" / "tse-smooth.yaml")))
    first, *later = [report.deploy_command(s) for s in plan.steps]
    assert first == f"cdktf deploy {plan.steps[0].stack} --skip-provider-lock"
    assert later and all(c.endswith("--skip-provider-lock --ignore-missing-stack-dependencies") for c in later)
