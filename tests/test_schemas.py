import json

import pytest
from jsonschema import Draft202012Validator

from tsegossip import schemas
from tsegossip.agentconfig import fragment
from tsegossip.keys import GossipKey
from tsegossip.phases import Phase
from tests.support import ROOT, TEST_KEY


@pytest.mark.parametrize("path", sorted((ROOT / "schemas").glob("*.json")))
def test_every_schema_is_valid_draft_2020_12(path):
    Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_fragment_is_valid(phase):
    doc = fragment(phase, GossipKey(TEST_KEY), reveal=True)
    assert schemas.problems("agent-gossip-config", doc) == []


def test_fails_verify_incoming_without_outgoing():
    [p] = schemas.problems("agent-gossip-config", {"encrypt": TEST_KEY, "encrypt_verify_incoming": True,
                                                   "encrypt_verify_outgoing": False})
    assert "matches none of the allowed forms (plaintext; accept-encrypted, send-encrypted or enforced)" in p.message
    assert TEST_KEY not in p.message


def test_fails_plaintext_with_a_stray_flag():
    assert schemas.problems("agent-gossip-config", {"disable_keyring_file": True, "encrypt_verify_incoming": False})


def test_fails_unknown_field_in_fragment():
    problems = schemas.problems("agent-gossip-config", {"disable_keyring_file": True, "verify": 1})
    assert any(p.path == "verify" and "unknown field" in p.message for p in problems)


def test_defaults_are_filled_from_the_schema():
    doc = schemas.apply_defaults("rollout", {"client_groups": [{"name": "a"}], "servers": {"type": "tse"}})
    assert doc["target"] == "enforced"
    assert doc["client_groups"][0]["joined"] is True
    assert doc["client_groups"][0]["batch_size"] == 1
