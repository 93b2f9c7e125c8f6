"""The phase gate: the cluster as the plan expects, judged like `tsegossip check` does."""

from __future__ import annotations

from tf.iface import CreateContext, ReadContext

from tests.provider.tfwire import ENV, KEY, OTHER, ctx, errors, gate_state
from tsegossip.keys import GossipKey
from tsegossip.provider.resources import PhaseGate


def test_gate_passes_with_mixed_phases_and_keyless_plaintext_members(cluster):
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted", "web-1": "plaintext",
                "web-2": "plaintext", "web-3": "plaintext", "new-1": "not-joined"}
    c = ctx(CreateContext)
    new = PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected))
    assert not errors(c), c.diagnostics
    assert new["verdict"].startswith("ok: 5 node(s) alive") and KEY.fingerprint in new["verdict"]
    assert "(web-1, web-2, web-3, expected plaintext)" in new["verdict"]


def test_gate_fails_when_a_member_meant_to_be_keyed_has_no_keyring(cluster):
    cluster.nodes["server-2"].keys.clear()
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted", "web-1": "plaintext",
                "web-2": "plaintext", "web-3": "plaintext"}
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected)) is None
    (err,) = errors(c)
    assert "the cluster-wide keyring listing failed" in err.detail


def test_fails_gate_lists_each_mismatch(cluster):
    cluster.nodes["web-2"].status = "failed"
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted", "web-1": "accept-encrypted",
                "web-2": "plaintext"}
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected)) is None
    (err,) = errors(c)
    assert err.summary == "Gate before stack 02-web-accept failed"
    assert "web-1: runs plaintext, expected accept-encrypted" in err.detail
    assert "web-2: member status failed, expected alive" in err.detail
    assert "Deploy 01-servers-accept first." in err.detail
    assert cluster.now >= 3  # a failed member may come back: it retried until timeout_seconds


def test_fails_before_gate_at_once_when_cluster_is_settled_elsewhere(cluster):
    # Everyone alive and answering, web-1 simply in another phase: waiting cannot help.
    expected = {"server-1": "accept-encrypted", "web-1": "accept-encrypted"}
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected, timeout_seconds=60)) is None
    (err,) = errors(c)
    assert err.detail.startswith("The cluster differs from the plan and waiting will not change it")
    assert "web-1: runs plaintext, expected accept-encrypted" in err.detail
    assert cluster.now < 60


def test_after_gate_waits_for_a_settled_phase_mismatch(cluster):
    expected = {"server-1": "accept-encrypted", "web-1": "accept-encrypted"}
    c = ctx(CreateContext)
    state = gate_state(cluster, expected, when="after", timeout_seconds=5)
    assert PhaseGate(world=cluster.world(ENV)).create(c, state) is None
    assert cluster.now >= 5


def test_fails_gate_key_not_in_keyring(cluster):
    # Only keyed members in the pool: Consul's listing answers, and counts the key on 1 of 2.
    # (With plaintext members in the pool it cannot: see the mixed-phases test above.)
    for name in ("web-1", "web-2", "web-3"):
        cluster.nodes[name].status = "absent"
    cluster.nodes["server-2"].keys = {GossipKey(OTHER).fingerprint}
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted"}
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected, when="after")) is None
    assert "keyring: expected " + KEY.fingerprint in errors(c)[0].detail
    assert cluster.now < 3  # a key does not arrive by waiting: no retries until the timeout


def test_gate_read_returns_prior_state(cluster):
    current = gate_state(cluster, {"web-1": "enforced"}, verdict="ok")
    assert PhaseGate(world=cluster.world(ENV)).read(ctx(ReadContext), current) is current
