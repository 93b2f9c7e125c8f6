import base64
import pickle
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tsegossip.keys import GossipKey, InvalidKey, fingerprint_of

from tests.support import TEST_KEY, console_script, TEST_KEY_REDACTED


def test_repr_str_and_format_never_show_the_key():
    key = GossipKey(TEST_KEY)
    for shown in (repr(key), str(key), f"{key}", "%s" % key, str([key]), str({"k": key})):
        assert TEST_KEY not in shown
        assert TEST_KEY[4:-4] not in shown
    assert key.reveal() == TEST_KEY


def test_redacted_like_the_seed_with_fingerprint():
    key = GossipKey(TEST_KEY)
    assert key.redacted == TEST_KEY_REDACTED
    assert key.fingerprint == fingerprint_of(TEST_KEY)
    assert len(key.fingerprint) == 12 and int(key.fingerprint, 16) >= 0


def test_fails_pickle():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(GossipKey(TEST_KEY))


@given(st.binary(min_size=0, max_size=64))
def test_accepts_exactly_16_24_32_bytes(raw):
    text = base64.b64encode(raw).decode()
    if len(raw) in (16, 24, 32):
        key = GossipKey(text)
        assert key.size == len(raw)
        assert key == GossipKey(text)
        assert text not in repr(key)
    else:
        with pytest.raises(InvalidKey) as err:
            GossipKey(text)
        assert text not in str(err.value) or not text
        assert "16, 24 or 32" in str(err.value) or "empty" in str(err.value)


@given(st.text(min_size=1, max_size=60).filter(lambda s: s.strip()))
def test_non_base64_is_refused_with_reason(text):
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except Exception:
        with pytest.raises(InvalidKey, match="not valid base64"):
            GossipKey(text)
        return
    if len(raw) not in (16, 24, 32):
        with pytest.raises(InvalidKey, match="decodes to"):
            GossipKey(text)


def test_fails_env_unset():
    with pytest.raises(InvalidKey, match="environment variable GK .*not set"):
        GossipKey.from_env("GK", {})


def test_fails_env_wrong_length():
    with pytest.raises(InvalidKey, match="GK: the gossip key decodes to 8 bytes"):
        GossipKey.from_env("GK", {"GK": base64.b64encode(b"12345678").decode()})


def test_keygen_prints_consul_style_key():
    out = [subprocess.run([console_script(), "keygen"], capture_output=True, text=True, check=True).stdout.strip()
           for _ in range(2)]
    assert out[0] != out[1]
    for text in out:
        assert len(text) == 44
        assert len(base64.b64decode(text, validate=True)) == 32


# ---- issue 18: one redaction rule for every printed line ----------------------------------------

def test_redact_text_removes_every_encoding_and_every_16_character_run_of_a_remembered_key():
    from tsegossip.keys import redact_text, remember
    from tests.support import derived_key

    key = derived_key("tsegossip redaction test")
    raw = base64.b64decode(key)
    remember(key)
    forms = [key, key.rstrip("="), base64.urlsafe_b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="),
             raw.hex(), raw.hex().upper()]
    for form in forms:
        for shown in (form, f"x {form}", f"{form} ", f"http://{form}:8500", f"unknown field '{form}'", form[3:22], form[-17:]):
            out = redact_text(shown)
            assert not any(form[i:i + 16] in out for i in range(len(form) - 15)), out
    assert redact_text("client_groups[0].name: 'web' is fine") == "client_groups[0].name: 'web' is fine"
    assert redact_text(key[:15]) == key[:15]  # fewer than 16 characters are not the key


def test_redact_text_also_catches_a_key_it_was_never_told_about():
    from tsegossip.keys import redact_text
    from tests.support import derived_key

    stranger = derived_key("tsegossip a key nobody remembered")
    out = redact_text(f"name: 'x {stranger}' does not match")
    assert stranger not in out and stranger[4:-4] not in out
    for ordinary in ("/etc/consul.d/50-gossip.json", "http://g00-n00001.internal:8500", "ip-10-0-0-1-compute-internal-eu",
                     "shop-undo2-accept-encrypted", "/var/lib/consul/config/gossip/fragment.json"):
        assert redact_text(ordinary) == ordinary


def test_printed_error_lines_redact_every_line():
    from tsegossip.cli import printed_lines as render_lines
    from tsegossip.errors import UserError
    from tests.support import derived_key

    key = GossipKey(derived_key("tsegossip render_lines test"))
    lines = render_lines(UserError(f"--group: 'x{key.reveal()}' is not a group\nsecond {key.reveal()[2:30]}"), "s.yaml")
    assert len(lines) == 2
    assert all(key.reveal()[i:i + 16] not in line for line in lines for i in range(29))


# ---- key_for_plan: what a plan binds to ---------------------------------------------------------------

from tsegossip.keys import UNKNOWN_FINGERPRINT, key_for_plan  # noqa: E402
from tests.support import OTHER_KEY  # noqa: E402


def test_plan_key_from_the_environment():
    key, shown = key_for_plan("K", None, {"K": TEST_KEY})
    assert key.fingerprint == fingerprint_of(TEST_KEY) and shown.present
    assert shown.fingerprint == key.fingerprint and shown.redacted == TEST_KEY_REDACTED


def test_plan_key_absent_is_unknown_or_pinned_unless_required():
    key, shown = key_for_plan("K", None, {})
    assert key is None and shown.fingerprint == UNKNOWN_FINGERPRINT and shown.source == "none"
    assert "fingerprint unknown" in shown.describe()
    key, shown = key_for_plan("K", "0123456789ab", {"K": "  "})
    assert key is None and shown.fingerprint == "0123456789ab" and shown.source == "pinned"
    with pytest.raises(InvalidKey, match="environment variable K \\(named by key_env\\) is not set"):
        key_for_plan("K", "0123456789ab", {}, required=True)


def test_fails_plan_key_other_than_pinned_names_both_fingerprints_never_the_key():
    with pytest.raises(InvalidKey) as err:
        key_for_plan("K", fingerprint_of(TEST_KEY), {"K": OTHER_KEY})
    text = str(err.value)
    assert f"holds the key with fingerprint {fingerprint_of(OTHER_KEY)}" in text
    assert f"the spec pins key_fingerprint {fingerprint_of(TEST_KEY)}" in text
    assert OTHER_KEY not in text and TEST_KEY not in text


def test_fails_plan_key_set_but_invalid_even_when_not_required():
    with pytest.raises(InvalidKey, match="not valid base64"):
        key_for_plan("K", None, {"K": "not a key!"})
