"""Props are checked when built: each failure says what is wrong, the value, and what is allowed."""

from __future__ import annotations


import pytest

from tsegossip.constructs import (
    GossipClientConfig,
    GossipClientConfigProps,
    GossipServerParamsProps,
    PhaseGateProps,
    PhaseStack,
    PhaseStackProps,
    PropsError,
)
from tsegossip.constructs import _cdk
from tsegossip.phases import Phase

from .conftest import EXAMPLES, TEST_KEY, load_plan

COMMON = dict(rollout="shop", stack="shop-1-accept-encrypted", key_env="TSEGOSSIP_KEY",
              key_fingerprint=TEST_KEY.fingerprint, http_addr="http://consul:8500")
CLIENT = dict(COMMON, group="web", phase="accept-encrypted", from_phase="plaintext",
              nodes={"web-1": "http://web-1:8500"}, config_path="/etc/consul.d/50-gossip.json",
              restart_command="systemctl restart consul")
SERVERS_TSE = dict(COMMON, server_type="tse", phase="accept-encrypted", from_phase="plaintext",
                   instance_id="ins-00000001", region="ap-guangzhou")
GATE = dict(COMMON, when="before", expected={"web-1": "plaintext"})


def test_valid_props_normalise_phases_and_freeze_maps():
    p = GossipClientConfigProps(**CLIENT)
    assert p.phase is Phase.ACCEPT_ENCRYPTED and p.from_phase is Phase.PLAINTEXT
    with pytest.raises(TypeError):
        p.nodes["web-2"] = "x"  # read-only
    with pytest.raises(Exception):
        p.batch_size = 3  # frozen


def test_fails_unknown_phase():
    with pytest.raises(PropsError, match=r"GossipClientConfigProps.phase: 'enforcd' is not a phase; "
                                         r"allowed: plaintext, accept-encrypted, send-encrypted, enforced"):
        GossipClientConfigProps(**{**CLIENT, "phase": "enforcd"})


def test_fails_empty_nodes():
    with pytest.raises(PropsError, match=r"GossipClientConfigProps.nodes: no nodes given \(empty nodes\); "
                                         r"at least one node name → http_addr is required"):
        GossipClientConfigProps(**{**CLIENT, "nodes": {}})


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_fails_batch_size_below_one(bad):
    with pytest.raises(PropsError, match=rf"GossipClientConfigProps.batch_size: {bad!r} is out of range; "
                                         r"allowed: an integer >= 1"):
        GossipClientConfigProps(**{**CLIENT, "batch_size": bad})


def test_fails_client_skips_a_phase():
    with pytest.raises(PropsError, match=r"client group web from plaintext to send-encrypted skips a phase; "
                                         r"allowed: plaintext, accept-encrypted \(one phase per step\)"):
        GossipClientConfigProps(**{**CLIENT, "phase": "send-encrypted"})


def test_fails_servers_jump_without_allow_jump():
    with pytest.raises(PropsError, match=r"servers from plaintext to enforced skips a phase.*allow_jump=True"):
        GossipServerParamsProps(**{**SERVERS_TSE, "phase": "enforced"})
    assert GossipServerParamsProps(**{**SERVERS_TSE, "phase": "enforced", "allow_jump": True}).allow_jump


def test_fails_client_group_named_servers():
    with pytest.raises(PropsError, match=r"GossipClientConfigProps.group: 'servers' names the servers"):
        GossipClientConfigProps(**{**CLIENT, "group": "servers"})


def test_fails_key_instead_of_fingerprint():
    with pytest.raises(PropsError, match=r"key_fingerprint: a GossipKey was given; pass key.fingerprint"):
        GossipClientConfigProps(**{**CLIENT, "key_fingerprint": TEST_KEY})


def test_fails_clear_key_as_fingerprint_without_echoing_it():
    with pytest.raises(PropsError) as err:
        GossipClientConfigProps(**{**CLIENT, "key_fingerprint": TEST_KEY.reveal()})
    assert TEST_KEY.reveal() not in str(err.value)
    assert "is not a key fingerprint; allowed: 12 lowercase hex digits" in str(err.value)


def test_fails_bad_key_env():
    with pytest.raises(PropsError, match=r"key_env: 'MY-KEY' is not an environment variable name; allowed: "):
        GossipClientConfigProps(**{**CLIENT, "key_env": "MY-KEY"})


def test_fails_unknown_server_type():
    with pytest.raises(PropsError, match=r"server_type: 'k8s' is not allowed; allowed: tse, self-managed"):
        GossipServerParamsProps(**{**SERVERS_TSE, "server_type": "k8s"})


def test_fails_tse_without_instance_id():
    with pytest.raises(PropsError, match=r"GossipServerParamsProps.instance_id: None is not allowed; a non-empty string"):
        GossipServerParamsProps(**{**SERVERS_TSE, "instance_id": None})


def test_fails_self_managed_without_nodes():
    with pytest.raises(PropsError, match=r"GossipServerParamsProps.nodes: no nodes given"):
        GossipServerParamsProps(**{**SERVERS_TSE, "server_type": "self-managed"})


def test_fails_gate_unknown_when():
    with pytest.raises(PropsError, match=r"PhaseGateProps.when: 'during' is not allowed; allowed: before, after"):
        PhaseGateProps(**{**GATE, "when": "during"})


def test_fails_gate_empty_expected():
    with pytest.raises(PropsError, match=r"PhaseGateProps.expected: no nodes given \(empty expected\)"):
        PhaseGateProps(**{**GATE, "expected": {}})


def test_fails_gate_unknown_expected_phase():
    with pytest.raises(PropsError, match=r"expected: node web-1: 'half' is not a phase; allowed: plaintext, "
                                         r"accept-encrypted, send-encrypted, enforced, not-joined"):
        PhaseGateProps(**{**GATE, "expected": {"web-1": "half"}})


def test_fails_gate_addresses_for_unexpected_nodes():
    with pytest.raises(PropsError, match=r"addresses: db-9 not in expected"):
        PhaseGateProps(**{**GATE, "addresses": {"db-9": "http://db-9:8500"}})


def test_fails_timeout_not_positive():
    with pytest.raises(PropsError, match=r"timeout_seconds: 0 is out of range; allowed: a number > 0"):
        PhaseGateProps(**{**GATE, "timeout_seconds": 0})


def test_fails_stack_id_not_the_planners():
    plan = load_plan(EXAMPLES[0])
    app = _cdk.App()
    with pytest.raises(PropsError, match=r"PhaseStack id 'step-1' is not the planner's stack id"):
        PhaseStack(app, "step-1", PhaseStackProps.for_step(plan, plan.steps[0], TEST_KEY))


def test_fails_wrong_props_type():
    app = _cdk.App()
    stack = _cdk.TerraformStack(app, "s")
    with pytest.raises(PropsError, match=r"GossipClientConfig c: props is a dict; allowed: GossipClientConfigProps"):
        GossipClientConfig(stack, "c", dict(CLIENT))
