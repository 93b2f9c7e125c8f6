"""Issue 15: a key rotation as reviewable stages (install, use, configs, remove), planned from the spec.

The stages and their stack ids, each stage's keyrings before and after and its proof (checked here again by
simulating the members one by one, not with the module's own pair check), the rollback before remove, every
refusal the spec can know, the new key read from rotate_to_env, and the plan rendered as text, markdown (the
PR comment, with a Mermaid diagram drawn in headless Chromium) and json (against schemas/plan.schema.json).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import html
import io
import itertools
import json
import re
import subprocess
import sys
from dataclasses import replace

import jsonschema
import pytest

from tsegossip import cli, planner, rotation_report, spec
from tsegossip.errors import PlanError, SpecError
from tsegossip.keys import UNKNOWN_FINGERPRINT, InvalidKey, KeyShown, fingerprint_of, rotation_key_for_plan
from tsegossip.rotation import NEW, OLD, Keyring, MemberKeys, StageKind, plan_rotation, prove_keys
from tests.support import EXAMPLES, OTHER_KEY, ROOT, TEST_KEY, derived_key
from tests.test_mermaid_render import chromium, mermaid_blocks, render  # noqa: F401 (chromium is a fixture)

EXAMPLE = EXAMPLES / "rotation" / "tse-rotate.yaml"
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
NEW_KEY = derived_key("tsegossip rotation: the new key")
OLD_FP, NEW_FP = fingerprint_of(TEST_KEY), fingerprint_of(NEW_KEY)


def doc(**changes) -> dict:
    """The example rotation spec, self-managed servers (so every role has listed nodes), with `changes`."""
    d = spec.read_document(EXAMPLE)
    d["servers"] = {"type": "self-managed", "phase": "enforced", "http_addr": "http://s-1.test:8500",
                    "config_path": "/etc/consul.d/50-gossip.json", "restart_command": "systemctl restart consul",
                    "nodes": [{"name": "s-1", "http_addr": "http://s-1.test:8500"},
                              {"name": "s-2", "http_addr": "http://s-2.test:8500"}]}
    d.update(changes)
    return d


def at_phase(d: dict, phase: str) -> dict:
    d = copy.deepcopy(d)
    d["servers"]["phase"] = phase
    for g in d["client_groups"]:
        g["phase"] = phase
    d["target"] = phase
    return d


def refused(d: dict) -> str:
    with pytest.raises(PlanError) as err:
        plan_rotation(spec.parse(d))
    return str(err.value)


@pytest.fixture
def keys_env(monkeypatch):
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY)
    monkeypatch.setenv("TSEGOSSIP_NEW_KEY", NEW_KEY)


@pytest.fixture
def no_keys_env(monkeypatch):
    monkeypatch.delenv("TSEGOSSIP_KEY", raising=False)
    monkeypatch.delenv("TSEGOSSIP_NEW_KEY", raising=False)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ---- the spec and the model -----------------------------------------------------------------------------


def test_spec_fields_reach_the_model():
    r = spec.parse(doc(rotate_to_fingerprint=NEW_FP))
    assert (r.rotate_to_env, r.rotate_to_fingerprint, r.rotates) == ("TSEGOSSIP_NEW_KEY", NEW_FP, True)
    plain = spec.load(EXAMPLES / "tse-smooth.yaml")
    assert (plain.rotate_to_env, plain.rotate_to_fingerprint, plain.rotates) == (None, None, False)


def test_a_rotation_spec_plans_no_phase_step():
    assert planner.plan(spec.load(EXAMPLE)).steps == ()


# ---- stages, stack ids, keyrings ------------------------------------------------------------------------


def test_stages_and_stack_ids():
    p = plan_rotation(spec.load(EXAMPLE))
    assert [(s.index, s.stack, s.kind, s.key) for s in p.stages] == [
        (1, "shop-rotate-1-install", StageKind.INSTALL, NEW),
        (2, "shop-rotate-2-use", StageKind.USE, NEW),
        (3, "shop-rotate-3-configs", StageKind.CONFIGS, NEW),
        (4, "shop-rotate-4-remove", StageKind.REMOVE, OLD),
    ]
    assert [(s.index, s.stack, s.kind, s.key, s.undoes) for s in p.undo] == [
        (3, "shop-rotate-undo3-configs", StageKind.CONFIGS, OLD, True),
        (2, "shop-rotate-undo2-use", StageKind.USE, OLD, True),
        (1, "shop-rotate-undo1-install", StageKind.REMOVE, NEW, True),
    ]
    assert [s.call for s in p.stages] == ["POST /v1/operator/keyring", "PUT /v1/operator/keyring",
                                          "deliver each node's config fragment", "DELETE /v1/operator/keyring"]
    assert not any(s.restarts for s in (*p.stages, *p.undo))


@pytest.mark.parametrize("phase", ["accept-encrypted", "send-encrypted", "enforced"])
def test_stack_ids_depend_on_nothing_but_the_name(phase):
    """Not on the phase, the server type, the keys or whether they are there: a rotation resumed half way
    (or reviewed without secrets) has the ids it was started with."""
    ids = [s.stack for s in (*plan_rotation(spec.load(EXAMPLE)).stages, *plan_rotation(spec.load(EXAMPLE)).undo)]
    other = plan_rotation(spec.parse(at_phase(doc(), phase)), KeyShown("TSEGOSSIP_KEY", OLD_FP, "x", "environment"),
                          KeyShown("TSEGOSSIP_NEW_KEY", NEW_FP, "y", "environment"))
    assert [s.stack for s in (*other.stages, *other.undo)] == ids


def test_stack_ids_of_the_longest_name_fit_in_63_characters():
    p = plan_rotation(spec.parse(doc(name="a" * 40)))
    assert max(len(s.stack) for s in (*p.stages, *p.undo)) == 61


def test_each_stage_moves_the_keyrings_one_call_at_a_time():
    p = plan_rotation(spec.load(EXAMPLE))
    rings = [p.initial] + [s.after for s in p.stages]
    assert rings == [Keyring((OLD,), OLD, OLD), Keyring((OLD, NEW), OLD, OLD), Keyring((OLD, NEW), NEW, OLD),
                     Keyring((OLD, NEW), NEW, NEW), Keyring((NEW,), NEW, NEW)]
    assert all(a.after == b.before for a, b in zip(p.stages, p.stages[1:]))


def test_every_gate_in_consuls_words():
    p = plan_rotation(spec.load(EXAMPLE), KeyShown("K", "aaaaaaaaaaaa", "", "pinned"),
                      KeyShown("N", "bbbbbbbbbbbb", "", "pinned"))
    got = {s.stack: (s.requires.conditions(p.name), s.verifies.conditions(p.name)) for s in p.stages}
    alive = "every listed node an alive member (counted in NumNodes)"
    assert got["shop-rotate-1-install"][1] == ("Keys[old aaaaaaaaaaaa] == NumNodes", "Keys[new bbbbbbbbbbbb] == NumNodes",
                                               "PrimaryKeys[old aaaaaaaaaaaa] == NumNodes", alive)
    assert "PrimaryKeys[new bbbbbbbbbbbb] == NumNodes" in got["shop-rotate-2-use"][1]
    assert "every listed node's fragment carries new bbbbbbbbbbbb" in got["shop-rotate-3-configs"][1]
    # remove: only once every member sends with the new key and every fragment carries it; done when no member
    # holds the old one
    assert got["shop-rotate-4-remove"][0] == ("Keys[new bbbbbbbbbbbb] == NumNodes",
                                              "PrimaryKeys[new bbbbbbbbbbbb] == NumNodes",
                                              "every listed node's fragment carries new bbbbbbbbbbbb", alive)
    assert "old aaaaaaaaaaaa not in Keys" in got["shop-rotate-4-remove"][1]


# ---- proofs ---------------------------------------------------------------------------------------------


def test_each_stages_proof():
    p = plan_rotation(spec.load(EXAMPLE))
    during = {s.stack: {str(m) for m in s.proof.during} for s in p.stages}
    assert during == {
        "shop-rotate-1-install": {"[old; sends old]", "[old, new; sends old]"},
        "shop-rotate-2-use": {"[old, new; sends old]", "[old, new; sends new]"},   # mid-PUT: both keys held by all
        "shop-rotate-3-configs": {"[old, new; sends new]"},
        "shop-rotate-4-remove": {"[old, new; sends new]", "[new; sends new]"},
    }
    assert all(s.proof.safe for s in (*p.stages, *p.undo))
    assert "every member holds both" in p.stages[1].proof.why and "every pair decrypts" in p.stages[1].proof.why
    assert "no member sends with" in p.stages[3].proof.why
    # an agent starting from its fragment alone: cut off only between use and configs (and undo3 and undo2)
    assert [s.proof.fresh_start_ok for s in p.stages] == [True, False, True, True]
    assert [s.proof.fresh_start_ok for s in p.undo] == [False, True, True]


def test_fails_use_before_install_is_done_splits():
    """The proof can fail: the measured case (shared/facts/gossip-compat.md) of a member with the old key only
    beside one that already sends with the new key."""
    checks = prove_keys((MemberKeys(frozenset({OLD}), OLD), MemberKeys(frozenset({OLD, NEW}), NEW)))
    assert [c.ok for c in checks] == [True, False, True]
    assert str(checks[1]) == "[old; sends old] ↔ [old, new; sends new]: SPLIT"


def _simulated_safe(before: Keyring, after: Keyring, kind: StageKind, members: int = 3) -> bool:
    """Every subset of members done with the call, every pair: each holds the key the other sends with.
    Written from the keyrings alone (memberlist tries every installed key), not with the module's pair check."""
    if kind is StageKind.CONFIGS:
        return before.primary in before.held
    for done in itertools.product([False, True], repeat=members):
        rings = [after if d else before for d in done]
        if not all(b.primary in a.held and a.primary in b.held for a, b in itertools.combinations(rings, 2)):
            return False
    return True


def test_every_stage_is_safe_member_by_member():
    p = plan_rotation(spec.load(EXAMPLE))
    for s in (*p.stages, *p.undo):
        assert _simulated_safe(s.before, s.after, s.kind), s.stack
    # and the simulation itself can fail: use straight after today (new not installed yet)
    assert not _simulated_safe(Keyring((OLD,), OLD, OLD), Keyring((OLD, NEW), NEW, OLD), StageKind.USE)


def test_undo_walks_back_through_the_same_states():
    p = plan_rotation(spec.load(EXAMPLE))
    by_index = {s.index: s for s in p.stages}
    for u in p.undo:
        assert (u.before, u.after) == (by_index[u.index].after, by_index[u.index].before)
    assert [u.stack for u in p.undo_from("shop-rotate-2-use")] == ["shop-rotate-undo2-use", "shop-rotate-undo1-install"]
    assert [u.stack for u in p.undo_from("shop-rotate-1-install")] == ["shop-rotate-undo1-install"]


def test_fails_undo_after_remove():
    p = plan_rotation(spec.load(EXAMPLE))
    with pytest.raises(PlanError, match="the old key is gone from every keyring: the way back is a rotation of its own"):
        p.undo_from("shop-rotate-4-remove")
    with pytest.raises(PlanError, match="no stage with stack id 'shop-4-remove'; this rotation's stacks: shop-rotate-1"):
        p.stage("shop-4-remove")


def test_tse_servers_roll_on_the_configs_save_and_say_so():
    p = plan_rotation(spec.load(EXAMPLE))
    assert [s.servers_roll for s in p.stages] == [False, False, True, False]
    assert any("TSE rolls its servers on the save" in w and "--key-env TSEGOSSIP_NEW_KEY" in w for w in p.warnings)
    assert not any(s.servers_roll for s in plan_rotation(spec.parse(doc())).stages)


def test_warnings_name_the_token_rule_and_unmanaged_members():
    p = plan_rotation(spec.parse(doc(unmanaged=[{"name": "laptop-7", "phase": "enforced"}])))
    assert any('keyring = "write"' in w for w in p.warnings)
    assert any(w.startswith("unmanaged members (laptop-7)") and "before the remove stage" in w for w in p.warnings)


# ---- refusals the spec can know -------------------------------------------------------------------------


def test_fails_rotate_to_env_same_as_key_env():
    msg = refused(doc(rotate_to_env="TSEGOSSIP_KEY"))
    assert msg.startswith("rotate_to_env: 'TSEGOSSIP_KEY' is also key_env: the new key needs a variable of its own")


def test_fails_phase_rollout_part_done():
    d = doc()
    d["client_groups"][1]["phase"] = "send-encrypted"
    msg = refused(d)
    assert msg.startswith("servers.phase, client_groups[0].phase, client_groups[1].phase: a rotation needs the servers "
                          "and every client group in one phase, but today servers enforced, web enforced, api "
                          "send-encrypted: a phase rollout is part done")
    assert "allowed: every role in accept-encrypted, send-encrypted or enforced" in msg


def test_fails_plaintext_cluster():
    msg = refused(at_phase(doc(), "plaintext"))
    assert msg.startswith("servers.phase: every agent runs plaintext, which holds no key to rotate; allowed: "
                          "accept-encrypted, send-encrypted or enforced")


def test_fails_target_not_the_phase():
    d = at_phase(doc(), "send-encrypted")
    d["target"] = "enforced"
    msg = refused(d)
    assert msg.startswith("target: 'enforced' differs from 'send-encrypted', the phase every agent runs: a rotation "
                          "changes only the key (default target is enforced); set target: send-encrypted")


def test_fails_group_not_joined():
    d = doc()
    d["client_groups"][1]["joined"] = False
    assert refused(d).startswith("client_groups[1].joined: client group api has not joined (joined: false)")


def test_fails_unmanaged_member_without_a_keyring():
    d = at_phase(doc(), "accept-encrypted")
    d["unmanaged"] = [{"name": "laptop-7", "phase": "plaintext"}]
    msg = refused(d)
    assert msg.startswith("unmanaged[0].phase: unmanaged member laptop-7 runs plaintext: it has no keyring")


def test_fails_unmanaged_member_that_cannot_gossip_today():
    """The phase planner's own check of today, run for a rotation too."""
    msg = refused(doc(unmanaged=[{"name": "laptop-7", "phase": "accept-encrypted"}]))
    assert "unmanaged member laptop-7 runs accept-encrypted" in msg and "cannot gossip today" in msg


def test_fails_pinned_new_fingerprint_same_as_key_fingerprint():
    msg = refused(doc(key_fingerprint=OLD_FP, rotate_to_fingerprint=OLD_FP))
    assert msg.startswith(f"rotate_to_fingerprint: '{OLD_FP}' is also key_fingerprint: the new key would be the current one")


def test_fails_new_key_shown_same_as_old():
    """What the caller's key look-up showed, checked again by the planner (the constructs call it directly)."""
    with pytest.raises(PlanError, match=rf"rotate_to_env: \$TSEGOSSIP_NEW_KEY holds the same key as \$TSEGOSSIP_KEY "
                                        rf"\(fingerprint {OLD_FP}\)"):
        plan_rotation(spec.load(EXAMPLE), KeyShown("TSEGOSSIP_KEY", OLD_FP, "x", "environment"),
                      KeyShown("TSEGOSSIP_NEW_KEY", OLD_FP, "x", "environment"))


def test_fails_not_a_rotation_spec():
    with pytest.raises(PlanError, match="rotate_to_env: not set; the spec plans a phase rollout"):
        plan_rotation(spec.load(EXAMPLES / "tse-smooth.yaml"))


@pytest.mark.parametrize("changes, expected", [
    ({"rotate_to_env": "1NEW"}, "rotate_to_env: '1NEW' does not match"),
    ({"rotate_to_env": 7}, "rotate_to_env: 7 has the wrong type (int); expected string"),
    ({"rotate_to_fingerprint": "ABCDEF123456"}, "rotate_to_fingerprint: 'ABCDEF123456' does not match ^[0-9a-f]{12}$"),
], ids=["env-name", "env-type", "fingerprint"])
def test_fails_schema_rotate_to_fields(changes, expected):
    with pytest.raises(SpecError) as err:
        spec.parse(doc(**changes))
    assert any(str(p).startswith(expected) for p in err.value.problems), err.value.problems


def test_fails_rotate_to_fingerprint_without_rotate_to_env():
    d = doc(rotate_to_fingerprint=NEW_FP)
    del d["rotate_to_env"]
    with pytest.raises(SpecError) as err:
        spec.parse(d)
    assert [str(p) for p in err.value.problems] == ["rotate_to_env: is required"]


# ---- the new key, from rotate_to_env --------------------------------------------------------------------

CURRENT = KeyShown("TSEGOSSIP_KEY", OLD_FP, "x", "environment")


def _refused_key(value: str | None, pinned: str | None = None, current: KeyShown = CURRENT) -> str:
    env = {} if value is None else {"TSEGOSSIP_NEW_KEY": value}
    with pytest.raises(InvalidKey) as err:
        rotation_key_for_plan("TSEGOSSIP_NEW_KEY", pinned, current, env, required=True)
    msg = str(err.value)
    if value and value.strip():
        assert value.strip() not in msg and value.strip()[:16] not in msg
    return msg


def test_fails_new_key_unset():
    assert _refused_key(None).startswith("environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env) is not set")
    assert _refused_key("  \n").startswith("environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env) is not set")


def test_fails_new_key_not_base64():
    msg = _refused_key(base64.urlsafe_b64encode(b"\xfb" * 32).decode())
    assert msg.startswith("environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env): the gossip key is not valid base64")


def test_fails_new_key_wrong_length():
    msg = _refused_key(base64.b64encode(b"k" * 20).decode())
    assert msg == ("environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env): the gossip key decodes to 20 bytes; "
                   "memberlist accepts 16, 24 or 32 (key size must be 16, 24 or 32 bytes)")


def test_fails_new_key_same_as_old():
    msg = _refused_key(TEST_KEY)
    assert msg == (f"environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env) holds the same key as the current "
                   f"key in $TSEGOSSIP_KEY (named by key_env), fingerprint {OLD_FP}: a rotation needs a new key; "
                   "generate one with `tsegossip keygen`")


def test_fails_new_key_same_as_the_pinned_old_key():
    msg = _refused_key(TEST_KEY, current=KeyShown("TSEGOSSIP_KEY", OLD_FP, "(not in $TSEGOSSIP_KEY)", "pinned"))
    assert "holds the same key as the current key (the spec's key_fingerprint)" in msg


def test_fails_new_key_not_the_pinned_one():
    msg = _refused_key(OTHER_KEY, pinned=NEW_FP)
    assert msg.startswith(f"environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env) holds the key with "
                          f"fingerprint {fingerprint_of(OTHER_KEY)}, but the spec pins rotate_to_fingerprint {NEW_FP}")


def test_no_new_key_in_the_environment_shows_the_pin_or_unknown():
    none = KeyShown("TSEGOSSIP_KEY", UNKNOWN_FINGERPRINT, "", "none")
    assert rotation_key_for_plan("V", None, none, {}) == (None, KeyShown("V", "unknown", "(not in $V)", "none"))
    assert rotation_key_for_plan("V", NEW_FP, none, {}) == (None, KeyShown("V", NEW_FP, "(not in $V)", "pinned"))
    key, shown = rotation_key_for_plan("V", NEW_FP, CURRENT, {"V": NEW_KEY})
    assert key.fingerprint == NEW_FP and shown.source == "environment" and NEW_KEY not in repr(shown)


# ---- the CLI: plan and validate -------------------------------------------------------------------------


def test_validate_checks_both_keys(keys_env):
    code, out, err = run_cli("validate", str(EXAMPLE))
    assert code == 0, err
    assert "valid (key rotation at enforced, 4 stages" in out
    assert f"sha256:{OLD_FP}" in out and f"new key {NEW_KEY[:4]}*********{NEW_KEY[-4:]} sha256:{NEW_FP}" in out
    assert NEW_KEY not in out + err and TEST_KEY not in out + err


def test_fails_validate_lists_every_key_problem(monkeypatch):
    monkeypatch.delenv("TSEGOSSIP_KEY", raising=False)
    monkeypatch.setenv("TSEGOSSIP_NEW_KEY", "c2hvcnQ=")
    code, out, err = run_cli("validate", str(EXAMPLE))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"error: {EXAMPLE}: key_env: environment variable TSEGOSSIP_KEY (named by key_env) is not set; export the "
        "gossip key there (generate one with `tsegossip keygen`)",
        f"error: {EXAMPLE}: rotate_to_env: environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env): the gossip "
        "key decodes to 5 bytes; memberlist accepts 16, 24 or 32 (key size must be 16, 24 or 32 bytes)",
    ]


def test_fails_plan_with_the_old_key_as_the_new_one(monkeypatch):
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY)
    monkeypatch.setenv("TSEGOSSIP_NEW_KEY", TEST_KEY)
    code, out, err = run_cli("plan", str(EXAMPLE))
    assert code == 1 and out == ""
    assert "rotate_to_env: environment variable TSEGOSSIP_NEW_KEY (named by rotate_to_env) holds the same key" in err
    assert TEST_KEY not in err


def test_fails_plan_live_of_a_rotation(keys_env):
    code, _, err = run_cli("plan", str(EXAMPLE), "--live")
    assert code == 1 and "--live: not for a key rotation yet" in err


def test_plan_text(keys_env):
    code, out, err = run_cli("plan", str(EXAMPLE))
    assert code == 0, err
    assert out.startswith("rollout shop: key rotation, every agent stays enforced; no stage restarts an agent\n"
                          f"current key: {TEST_KEY[:4]}*********{TEST_KEY[-4:]} (sha256:{OLD_FP}) from $TSEGOSSIP_KEY\n"
                          f"new key: {NEW_KEY[:4]}*********{NEW_KEY[-4:]} (sha256:{NEW_FP}) from $TSEGOSSIP_NEW_KEY\n")
    assert "stage 4/4  stack shop-rotate-4-remove  (remove)" in out
    assert "deploy: cdktf deploy shop-rotate-4-remove --skip-provider-lock --ignore-missing-stack-dependencies" in out
    assert NEW_KEY not in out and TEST_KEY not in out


def test_plan_json_against_the_plan_schema_and_the_policies(keys_env, tmp_path):
    code, out, err = run_cli("plan", str(EXAMPLE), "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(d)
    assert (d["format"], d["version"], d["steps"]) == ("tsegossip-plan", 1, [])
    rot = d["rotation"]
    assert [s["stack"] for s in rot["stages"]] == ["shop-rotate-1-install", "shop-rotate-2-use",
                                                   "shop-rotate-3-configs", "shop-rotate-4-remove"]
    assert rot["new_key"] == {"redacted": f"{NEW_KEY[:4]}*********{NEW_KEY[-4:]}", "fingerprint": NEW_FP,
                              "env": "TSEGOSSIP_NEW_KEY", "source": "environment"}
    assert rot["stages"][1]["after"]["primary"] == {"key": "new", "fingerprint": NEW_FP}
    assert rot["stages"][3]["after"]["held"] == [{"key": "new", "fingerprint": NEW_FP}]
    assert [s["stack"] for s in rot["undo"]] == ["shop-rotate-undo3-configs", "shop-rotate-undo2-use",
                                                 "shop-rotate-undo1-install"]
    assert all("deploy" in s for s in rot["stages"]) and not any("deploy" in s for s in rot["undo"])
    assert NEW_KEY not in out and TEST_KEY not in out
    # a pipeline's policies read a rotation plan without tripping (no phase step to object to)
    path = tmp_path / "plan.json"
    path.write_text(out)
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "policy" / "check-plan"), str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "2 policies hold for shop" in r.stdout, r.stdout + r.stderr


def test_plan_json_without_keys_is_valid_too(no_keys_env):
    code, out, err = run_cli("plan", str(EXAMPLE), "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(d)
    assert d["key"]["fingerprint"] == d["rotation"]["new_key"]["fingerprint"] == "unknown"


def _pinned(tmp_path):
    path = tmp_path / "pinned.yaml"
    path.write_text(EXAMPLE.read_text() + f"\nkey_fingerprint: {OLD_FP}\nrotate_to_fingerprint: {NEW_FP}\n")
    return path


def test_markdown_with_no_secret_in_the_environment(tmp_path, monkeypatch):
    """A pull request's plan: the pinned fingerprints, every stage, and the same text as with the keys there
    but for the key lines and the (redacted) key in the TSE console's parameters."""
    path = _pinned(tmp_path)
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY)
    monkeypatch.setenv("TSEGOSSIP_NEW_KEY", NEW_KEY)
    code, with_keys, err = run_cli("plan", str(path), "--format", "markdown")
    assert code == 0, err
    monkeypatch.delenv("TSEGOSSIP_KEY")
    monkeypatch.delenv("TSEGOSSIP_NEW_KEY")
    code, md, err = run_cli("plan", str(path), "--format", "markdown")
    assert code == 0, err
    assert f"Current gossip key: sha256 `{OLD_FP}` (pinned in the spec; not in `$TSEGOSSIP_KEY`" in md
    assert f"New gossip key: sha256 `{NEW_FP}` (pinned in the spec; not in `$TSEGOSSIP_NEW_KEY`" in md
    assert (f"| 2 | `shop-rotate-2-use` | make new `{NEW_FP}` every member's primary key (PUT /v1/operator/keyring) | "
            f"old `{OLD_FP}`, new `{NEW_FP}` | old `{OLD_FP}` → **new `{NEW_FP}`** | old `{OLD_FP}` | ✅ safe |") in md
    for s in ("shop-rotate-1-install", "shop-rotate-2-use", "shop-rotate-3-configs", "shop-rotate-4-remove"):
        section = md[md.index(f"`{s}`\n\nDoes:"):]
        assert f"cdktf deploy {s} --skip-provider-lock" in section[:section.find("\n### ")]
    assert "### Rollback before `remove`" in md and "cdktf deploy shop-rotate-undo" not in md
    assert len(mermaid_blocks(md)) == 1
    differ = [(a, b) for a, b in zip(with_keys.splitlines(), md.splitlines()) if a != b]
    assert len(with_keys.splitlines()) == len(md.splitlines())
    assert [a.split(":")[0] for a, _ in differ if "gossip key:" in a] == ["Current gossip key", "New gossip key"]
    assert all('"encrypt": "(not in $TSEGOSSIP_' in b for a, b in differ if "gossip key:" not in a), differ
    assert NEW_KEY not in with_keys and TEST_KEY not in with_keys


# ---- the diagram ----------------------------------------------------------------------------------------


def _labels(svg: str) -> dict[str, str]:
    """Each box's label (its HTML, <br> as a newline) by node id (s0..s4, u1..u3)."""
    return {m.group(1): m.group(2).replace("<br>", "\n")
            for m in re.finditer(r'<g class="node[^"]*" id="diagram-flowchart-([su]\d+)-\d+".*?'
                                 r'<span class="nodeLabel"[^>]*><p>(.*?)</p></span>', svg, re.S)}


def test_diagram_renders(chromium):
    p = plan_rotation(spec.load(EXAMPLE), KeyShown("TSEGOSSIP_KEY", OLD_FP, "", "pinned"),
                      KeyShown("TSEGOSSIP_NEW_KEY", NEW_FP, "", "pinned"))
    [block] = mermaid_blocks(rotation_report.as_markdown(p))
    result = render(chromium, block)
    print(f"rotation diagram: parse + render {result.render_ms} ms, {result.wall_s:.2f} s for the Chromium run")
    assert result.status == "OK", result.body
    labels = _labels(result.body)
    assert sorted(labels) == ["s0", "s1", "s2", "s3", "s4", "u1", "u2", "u3"]
    assert labels["s0"] == f"today\nheld: old {OLD_FP}\nprimary: old {OLD_FP}\nfragments: old {OLD_FP}"
    assert labels["s2"] == (f"2. shop-rotate-2-use\nheld: old {OLD_FP}, new {NEW_FP}\nprimary: <b>new {NEW_FP}</b>\n"
                            f"fragments: old {OLD_FP}")
    assert labels["u1"] == f"undo 1. shop-rotate-undo1-install\nheld: <b>old {OLD_FP}</b>\nprimary: old {OLD_FP}\nfragments: old {OLD_FP}"
    assert result.label_widths and min(result.label_widths) > 20, result.label_widths


def test_diagram_names_mermaid_dislikes_stay_text(chromium):
    """A stack id no spec may hold: escaping, not the name pattern, keeps it from ending a label."""
    p = plan_rotation(spec.load(EXAMPLE))
    hostile = 'x"]; click s0 call alert(1); y["<i>&#35;`md`'
    p = replace(p, stages=(replace(p.stages[0], stack=hostile), *p.stages[1:]))
    block = "\n".join(rotation_report._mermaid_diagram(p)[1:-1]) + "\n"
    result = render(chromium, block)
    assert result.status == "OK", result.body
    assert _labels(result.body)["s1"].startswith("1. " + html.escape(hostile, quote=False) + "\n")


@pytest.mark.parametrize("changes, drop", [({}, None), ({"rotate_to_fingerprint": NEW_FP}, None),
                                           ({"rotate_to_fingerprint": NEW_FP}, "rotate_to_env")],
                         ids=["rotation", "pinned", "pin-without-env"])
def test_fast_and_detailed_validators_agree_on_rotation_specs(changes, drop):
    from tsegossip import schemas

    d = doc(**changes)
    if drop:
        del d[drop]
    slow = not any(schemas.reference_validator("rollout").iter_errors(d))
    assert schemas.fast_validator("rollout").is_valid(d) is slow is (drop is None)


def test_rejoin_calls_step_back_to_the_old_key_and_forward_again_each_proven():
    from tsegossip.rotation import KeyName, rejoin_calls

    after_remove = rejoin_calls(old_removed=True)
    assert [(c.operation, c.key) for c in after_remove] == [
        ("install", KeyName.OLD), ("use", KeyName.OLD), ("install", KeyName.NEW), ("use", KeyName.NEW),
        ("remove", KeyName.OLD)]
    assert [c.awaits for c in after_remove] == [False, True, False, False, False]
    assert all(c.safe and c.checks for c in after_remove)
    # the await's proof includes the straggler reading the others once they send with the old key
    assert any("[old; sends old]" in str(x) for x in after_remove[1].checks)
    # until the new key reaches the stragglers, no gate asks for it on every member (NumNodes counts them)
    assert all(KeyName.NEW not in c.verifies.held_by_all for c in after_remove[:2])
    before_remove = rejoin_calls(old_removed=False)
    assert [(c.operation, c.key) for c in before_remove] == [
        ("use", KeyName.OLD), ("install", KeyName.NEW), ("use", KeyName.NEW)]
    assert all(c.safe for c in before_remove)


def test_a_rotation_with_down_nodes_skip_warns_what_a_straggler_costs():
    d = doc()
    assert not [w for w in plan_rotation(spec.parse(d)).warnings if w.startswith("down_nodes = skip")]
    d["client_groups"][0]["down_nodes"] = "skip"
    d["servers"]["down_nodes"] = "skip"
    (w,) = [w for w in plan_rotation(spec.parse(d)).warnings if w.startswith("down_nodes = skip on")]
    assert w.startswith(f"down_nodes = skip on servers, {d['client_groups'][0]['name']}:")
    assert "tsegossip repair SPEC --keyring" in w and "the old key is in use for that while" in w
