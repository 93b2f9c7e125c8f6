"""Steps refused before any agent is touched, and the cases the checks let through."""

from __future__ import annotations

from tf.iface import CreateContext

from tests.provider.tfwire import ENV, KEY, OTHER, ctx, errors, client_state, server_state
from tsegossip.keys import GossipKey
from tsegossip.provider.resources import ClientConfig, ServerParams


def test_fails_wrong_key_fingerprint(cluster):
    c = ctx(CreateContext)
    out = ClientConfig(world=cluster.world({"TSEGOSSIP_KEY": OTHER})).create(c, client_state(cluster, ["web-1"]))
    assert out is None and cluster.commands == [] and cluster.writes == []
    (err,) = errors(c)
    assert err.summary == "The gossip key does not match the plan"
    assert GossipKey(OTHER).fingerprint in err.detail and KEY.fingerprint in err.detail
    assert err.path == ["key_fingerprint"]


def test_fails_key_env_not_set(cluster):
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world({})).create(c, client_state(cluster, ["web-1"])) is None
    (err,) = errors(c)
    assert "TSEGOSSIP_KEY" in err.detail and err.path == ["key_env"]


def test_fails_unsafe_move_names_stack_to_deploy_first(cluster):
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1", "web-2"], stack="03-web-send", previous_stack="02-web-accept",
                         from_phase="accept-encrypted", phase="send-encrypted")
    assert ClientConfig(world=cluster.world(ENV)).create(c, state) is None
    (err,) = errors(c)
    assert err.detail.startswith(
        "web are in plaintext; stack 03-web-send expects accept-encrypted: deploy 02-web-accept first.")
    assert cluster.commands == [] and cluster.writes == []


def test_fails_key_missing_from_keyring(cluster):
    for n in cluster.nodes.values():
        n.phase, n.keys = cluster.nodes["server-1"].phase, {GossipKey(OTHER).fingerprint}
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1", "web-2"], from_phase="accept-encrypted", phase="send-encrypted")
    assert ClientConfig(world=cluster.world(ENV)).create(c, state) is None
    (err,) = errors(c)
    assert err.summary == "The keyring does not hold the key on every node"
    assert "keyring doesn't include key provided with -encrypt" in err.detail
    assert "serf/local.keyring" in err.detail and "/v1/operator/keyring" in err.detail
    assert cluster.commands == []


def test_keyring_holding_key_everywhere_allows_next_step(cluster):
    for n in cluster.nodes.values():
        n.phase, n.keys = cluster.nodes["server-1"].phase, {KEY.fingerprint}
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1"], from_phase="accept-encrypted", phase="send-encrypted")
    new = ClientConfig(world=cluster.world(ENV)).create(c, state)
    assert not errors(c) and new["observed"] == {"web-1": "send-encrypted"}


def test_joining_nodes_may_be_absent(cluster):
    c = ctx(CreateContext)
    state = client_state(cluster, ["new-1"], joining=True)
    new = ClientConfig(world=cluster.world(ENV)).create(c, state)
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"new-1": "accept-encrypted"}


def test_joining_nodes_may_skip_phases(cluster):
    # direct: a group that never gossiped joins straight into the servers' phase; there is
    # no old/new split inside it because its old config never was in the cluster.
    c = ctx(CreateContext)
    state = client_state(cluster, ["new-1"], joining=True, from_phase="plaintext", phase="enforced")
    new = ClientConfig(world=cluster.world(ENV)).create(c, state)
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"new-1": "enforced"}


def test_fails_jump_when_not_joining(cluster):
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1"], from_phase="plaintext", phase="enforced")
    assert ClientConfig(world=cluster.world(ENV)).create(c, state) is None
    assert errors(c)[0].summary == "Moving plaintext -> enforced skips a phase"


def test_fails_absent_nodes_when_not_joining(cluster):
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["new-1"])) is None
    assert "unreachable" in errors(c)[0].detail


def test_fails_server_jump_without_allow_jump(cluster):
    c = ctx(CreateContext)
    state = server_state(cluster, from_phase="accept-encrypted", phase="enforced")
    assert ServerParams(world=cluster.world(ENV)).create(c, state) is None
    assert errors(c)[0].summary == "Moving accept-encrypted -> enforced skips a phase"


def test_server_jump_with_allow_jump(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["server-1"].phase
    c = ctx(CreateContext)
    state = server_state(cluster, phase="enforced", allow_jump=True)
    assert ServerParams(world=cluster.world(ENV)).create(c, state)["observed"]["server-2"] == "enforced"


def test_fails_configuration_synthesized_without_the_key(cluster):
    # A plan made for review with no key in the environment carries key_fingerprint "unknown": with the
    # key exported or not, nothing is applied from it.
    for env in (ENV, {}):
        c = ctx(CreateContext)
        state = client_state(cluster, ["web-1"], key_fingerprint="unknown")
        assert ClientConfig(world=cluster.world(env)).create(c, state) is None
        (err,) = errors(c)
        assert err.summary == "This configuration was synthesized without the gossip key"
        assert "$TSEGOSSIP_KEY was not set when it was synthesized" in err.detail
        assert "nothing was changed" in err.detail and err.path == ["key_fingerprint"]
    assert cluster.commands == [] and cluster.writes == []
