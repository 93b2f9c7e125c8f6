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
    assert "(web-1, web-2, web-3, not expected to hold the key)" in new["verdict"]


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


# ---- accounting for every member (before-gates carry the step's phases) ------------------------

ALL = {"server-1": "accept-encrypted", "server-2": "accept-encrypted", "web-1": "plaintext", "web-2": "plaintext",
       "web-3": "plaintext"}
STEP_1 = {"present_phases": "plaintext,accept-encrypted", "coexisting_phases": "plaintext,accept-encrypted"}


def test_before_gate_accounts_for_every_member(cluster):
    c = ctx(CreateContext)
    new = PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, ALL, **STEP_1))
    assert not errors(c) and new["verdict"].endswith("; all 5 member(s) accounted for")


def test_an_unlisted_member_safe_during_the_step_is_noted(cluster):
    expected = {k: v for k, v in ALL.items() if k != "web-3"}
    c = ctx(CreateContext)
    new = PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected, **STEP_1))
    assert not errors(c)
    assert "1 alive member(s) the spec does not list, safe during this step: web-3 (10.0.0.5:8301)" in new["verdict"]


def test_an_unlisted_member_the_step_would_cut_off_is_refused(cluster):
    from tsegossip.phases import Phase
    for n in cluster.nodes.values():
        n.phase = Phase.ACCEPT_ENCRYPTED
        n.keys.add(KEY.fingerprint)
    expected = {k: "accept-encrypted" for k in ALL if k != "web-3"}
    c = ctx(CreateContext)
    step2 = {"present_phases": "accept-encrypted", "coexisting_phases": "accept-encrypted,send-encrypted"}
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected, **step2)) is None
    [err] = errors(c)
    assert err.summary == "Gate before stack 02-web-accept: 1 member(s) the spec does not list would be cut off"
    assert "web-3 (10.0.0.5:8301): an alive member the spec does not list; it runs plaintext or " \
           "accept-encrypted or send-encrypted" in err.detail
    assert "as plaintext it cannot gossip with agents in send-encrypted" in err.detail
    assert cluster.commands == []


def test_an_unmanaged_member_is_judged_at_its_phase_and_tse_servers_are_theirs(cluster):
    expected = {k: v for k, v in ALL.items() if not k.startswith("server")}
    c = ctx(CreateContext)
    step = {"present_phases": "plaintext,accept-encrypted", "coexisting_phases": "accept-encrypted,send-encrypted"}
    state = gate_state(cluster, expected, servers_unlisted=True, unmanaged={"laptop": "plaintext"}, **step)
    assert PhaseGate(world=cluster.world(ENV)).create(c, state) is None
    [err] = errors(c)
    assert "laptop: unmanaged in plaintext, and this step would cut it off" in err.detail
    assert "server-1" not in err.detail  # members tagged as servers belong to TSE


def test_an_unmanaged_member_to_observe_that_does_not_answer_is_refused(cluster):
    c = ctx(CreateContext)
    state = gate_state(cluster, ALL, unmanaged={"ghost": "observe"}, **STEP_1)
    state["addresses"] = {**state["addresses"], "ghost": "http://ghost:8500"}
    assert PhaseGate(world=cluster.world(ENV)).create(c, state) is None
    [err] = errors(c)
    assert "unmanaged member ghost cannot be observed" in err.summary and "no answer from" in err.detail


def test_a_down_node_of_a_skip_role_is_noted_not_a_mismatch(cluster):
    cluster.nodes["web-2"].status, cluster.nodes["web-2"].reachable = "failed", False
    c = ctx(CreateContext)
    new = PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, ALL, may_be_down={"web-2": "web"}))
    assert not errors(c), c.diagnostics
    assert "; down, skipped (down_nodes = skip): web-2 (failed)" in new["verdict"]


def test_a_down_node_of_a_refuse_role_fails_the_gate_naming_the_policy(cluster):
    cluster.nodes["web-2"].status, cluster.nodes["web-2"].reachable = "failed", False
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, ALL, timeout_seconds=1)) is None
    [err] = errors(c)
    assert "web-2: member status failed, expected alive" in err.detail and "`down_nodes: skip`" in err.detail


# ---- a repair's before-gate: stragglers need not be members -------------------------------------

def test_a_repair_gate_takes_a_cut_off_straggler_at_its_own_apis_word(cluster):
    from tsegossip.phases import Phase
    for name in ("server-1", "server-2", "web-1", "web-3"):
        cluster.nodes[name].phase = Phase.SEND_ENCRYPTED
        cluster.nodes[name].keys.add(KEY.fingerprint)
    cluster.nodes["web-2"].status = "failed"  # plaintext, cut off from a send-encrypted cluster
    expected = {n: "send-encrypted" for n in ALL if n != "web-2"}
    step = {"present_phases": "send-encrypted", "coexisting_phases": "send-encrypted"}
    c = ctx(CreateContext)
    new = PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected, repairing={"web-2": "plaintext"},
                                                                   **step))
    assert not errors(c), c.diagnostics
    assert "all 5 member(s) accounted for" in new["verdict"]  # the straggler counts as listed


def test_a_repair_gate_refuses_when_the_straggler_moved_since_the_repair_was_planned(cluster):
    c = ctx(CreateContext)
    expected = {n: p for n, p in ALL.items() if n != "web-2"}
    assert PhaseGate(world=cluster.world(ENV)).create(
        c, gate_state(cluster, expected, repairing={"web-2": "accept-encrypted"}, timeout_seconds=1)) is None
    [err] = errors(c)
    assert "web-2: the repair was planned with it in accept-encrypted, now it runs plaintext" in err.detail
    assert cluster.commands == []


def test_fails_gate_with_another_key_says_so_instead_of_deploy_first(cluster):
    # Stage 1 ran with OTHER; stage 2 re-synthesized with the key exported now (KEY): the phases are
    # right, so "Deploy <previous> first" would send the operator the wrong way.
    for name in ("web-1", "web-2", "web-3"):
        cluster.nodes[name].status = "absent"
    for name in ("server-1", "server-2"):
        cluster.nodes[name].keys = {GossipKey(OTHER).fingerprint}
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted"}
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected)) is None
    (err,) = errors(c)
    assert "keyring: expected " + KEY.fingerprint in err.detail
    assert "Deploy 01-servers-accept first" not in err.detail
    assert (f"The key in $TSEGOSSIP_KEY (sha256:{KEY.fingerprint}) is not the one the cluster holds: export the "
            "key the earlier stages were deployed with") in err.detail
    assert "pin it in the spec as key_fingerprint" in err.detail


def test_a_rotation_keyring_stage_gate_leaves_the_keyring_to_its_resource(cluster):
    """keyring_proven_by: the stage's tsegossip_keyring lists the keyring itself; the gate does not list it
    again (a keyring listing is a serf query over the whole pool), even where it would find the key short."""
    from dataclasses import replace

    cluster.nodes["server-2"].keys = {GossipKey(OTHER).fingerprint}
    for name in ("web-1", "web-2", "web-3"):
        cluster.nodes[name].status = "absent"
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted"}
    listed = []
    plain = cluster.world(ENV)
    world = replace(plain, keyring=lambda *a, **k: listed.append(a) or plain.keyring(*a, **k))
    c = ctx(CreateContext)
    new = PhaseGate(world=world).create(c, gate_state(cluster, expected, when="after",
                                                      keyring_proven_by="tsegossip_keyring.keyring"))
    assert not errors(c), c.diagnostics
    assert listed == [] and new["verdict"].endswith("; keyring listed and proven by tsegossip_keyring.keyring")
    # without it the same gate lists the keyring and refuses the short key
    c = ctx(CreateContext)
    assert PhaseGate(world=world).create(c, gate_state(cluster, expected, when="after")) is None
    assert listed and "keyring: expected " + KEY.fingerprint in errors(c)[0].detail
