"""Each resource operation as a function, against a simulated cluster (no Terraform, no network)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from tf.iface import CreateContext, DeleteContext, PlanContext, ReadContext, UpdateContext
from tf.types import Unknown
from tf.utils import Diagnostics

from tests.provider.fakeworld import SERVER, FakeCluster, addr
from tests.support import TEST_KEY, OTHER_KEY
from tsegossip.backends.tse import InstanceStatus
from tsegossip.keys import GossipKey
from tsegossip.provider.resources import ClientConfig, PhaseGate, ServerParams

KEY = GossipKey(TEST_KEY)
OTHER = OTHER_KEY
ENV = {"TSEGOSSIP_KEY": TEST_KEY}


def ctx(kind):
    return kind(Diagnostics(), "tsegossip_test")


def errors(c):
    return [d for d in c.diagnostics.diagnostics if d.severity == "error"]


def warnings(c):
    return [d for d in c.diagnostics.diagnostics if d.severity == "warning"]


def client_state(cluster, names, **kw):
    state = {
        "id": Unknown, "rollout": "lab", "stack": "02-web-accept", "previous_stack": "01-servers-accept",
        "role": "web", "phase": "accept-encrypted", "from_phase": "plaintext", "allow_jump": None,
        "key_env": "TSEGOSSIP_KEY", "key_fingerprint": KEY.fingerprint, "http_addr": SERVER,
        "token_env": None, "cacert_env": None, "client_cert_env": None, "client_key_env": None,
        "timeout_seconds": 10, "poll_seconds": 1, "batch_size": 1, "joining": None,
        "nodes": cluster.addresses(names), "config_path": cluster.config_path,
        "restart_command": cluster.restart_command, "observed": Unknown,
    }
    state.update(kw)
    return state


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path, {"server-1": "accept-encrypted", "server-2": "accept-encrypted",
                                  "web-1": "plaintext", "web-2": "plaintext", "web-3": "plaintext"}, key=TEST_KEY)


def test_client_config_moves_group_in_batches(cluster):
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1", "web-2", "web-3"], batch_size=2)
    new = ClientConfig(world=cluster.world(ENV)).create(c, state)
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"web-1": "accept-encrypted", "web-2": "accept-encrypted", "web-3": "accept-encrypted"}
    assert new["id"] == "lab/02-web-accept/web" and new["phase"] == "accept-encrypted"
    restarted = [c.split()[1] for c in cluster.commands]
    # web-1 and web-2 restart together (in either order), web-3 only after they settled.
    assert sorted(restarted[:2]) == ["web-1", "web-2"] and restarted[2:] == ["web-3"]
    assert [line for line in cluster.lines if ": batch " in line and "->" in line] == [
        "web (lab/02-web-accept): batch 1/2: web-1, web-2 -> accept-encrypted",
        "web (lab/02-web-accept): batch 2/2: web-3 -> accept-encrypted",
    ]
    path = cluster.tmp / "web-1" / "50-gossip.json"
    assert json.loads(path.read_text()) == {"encrypt": TEST_KEY, "encrypt_verify_incoming": False,
                                            "encrypt_verify_outgoing": False}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The key goes to the config file only: not state, not commands, not progress, and not the child's env.
    assert TEST_KEY not in json.dumps(new) + " ".join(cluster.commands) + " ".join(cluster.lines)
    assert cluster.command_env_hidden[0] == ["TSEGOSSIP_KEY"]


def test_client_config_nothing_to_do_when_already_in_phase(cluster):
    for n in ("web-1", "web-2"):
        cluster.nodes[n].phase = cluster.nodes["server-1"].phase
    c = ctx(CreateContext)
    new = ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"]))
    assert not errors(c) and cluster.commands == []
    assert new["observed"] == {"web-1": "accept-encrypted", "web-2": "accept-encrypted"}


def test_client_config_resumes_skipping_nodes_in_phase(cluster):
    cluster.nodes["web-1"].phase = cluster.nodes["server-1"].phase
    c = ctx(CreateContext)
    ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"]))
    assert not errors(c)
    assert [c.split()[1] for c in cluster.commands] == ["web-2"]
    assert any("1 already there (resumed)" in line for line in cluster.lines)


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


def test_a_batch_restarts_together(cluster):
    # Each restart waits until the whole batch has started: run one after another, the
    # first would wait forever (the barrier breaks after 5 s and the apply fails).
    import threading

    barrier = threading.Barrier(3, timeout=5)
    plain = cluster.run_command

    def together(command, timeout, secrets=(), hide_env=()):
        barrier.wait()
        return plain(command, timeout, secrets, hide_env)

    cluster.run_command = together
    c = ctx(CreateContext)
    new = ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2", "web-3"],
                                                                        batch_size=3))
    assert not errors(c), c.diagnostics
    assert set(new["observed"].values()) == {"accept-encrypted"}


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


def test_fails_stops_at_first_node_that_does_not_come_back(cluster):
    cluster.nodes["web-1"].comes_back = False
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"])) is None
    (err,) = errors(c)
    assert err.summary == "Rollout of web stopped at web-1"
    assert "member failed" in err.detail and "(web-2)" in err.detail
    assert [c.split()[1] for c in cluster.commands] == ["web-1"]


def test_update_failure_keeps_prior_state(cluster):
    cluster.nodes["web-1"].comes_back = False
    prior = client_state(cluster, ["web-1"], phase="plaintext", observed={"web-1": "plaintext"}, id="lab/x/web")
    c = ctx(UpdateContext)
    assert ClientConfig(world=cluster.world(ENV)).update(c, prior, client_state(cluster, ["web-1"])) == prior
    assert errors(c)


def server_state(cluster, **kw):
    state = client_state(cluster, ["server-1", "server-2"], role="servers", stack="01-servers-send",
                         previous_stack="00-servers-accept", from_phase="accept-encrypted", phase="send-encrypted",
                         server_type="self-managed", instance_id=None, region=None)
    state.pop("batch_size"), state.pop("joining")
    state.update(kw)
    return state


def test_server_params_self_managed_one_at_a_time(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["server-1"].phase
    c = ctx(CreateContext)
    new = ServerParams(world=cluster.world(ENV)).create(c, server_state(cluster, batch_size=5))
    assert not errors(c), c.diagnostics
    assert sum(": batch " in line and "->" in line for line in cluster.lines) == 2
    assert new["observed"] == {"server-1": "send-encrypted", "server-2": "send-encrypted"}


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


def tse_state(cluster, **kw):
    return server_state(cluster, server_type="tse", instance_id="ins-abc123", region="ap-guangzhou", nodes=None,
                        config_path=None, restart_command=None, http_addr=addr("server-1"), from_phase="plaintext",
                        phase="accept-encrypted", timeout_seconds=None, **kw)


def test_tse_shows_redacted_json_then_waits_for_running_and_flags(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["web-1"].phase  # plaintext
    polls = []

    def describe(instance_id, region):
        polls.append(cluster.now)
        if len(polls) == 3:  # the operator saved the console; TSE rolls the servers
            cluster.nodes["server-1"].phase = cluster.nodes["server-1"].phase.up()
        return InstanceStatus(instance_id, "restarting" if len(polls) < 5 else "running")

    world = cluster.world(ENV)
    world.describe_tse = describe
    c = ctx(CreateContext)
    new = ServerParams(world=world).create(c, tse_state(cluster))
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"server-1": "accept-encrypted"} and len(polls) == 5
    shown = next(line for line in cluster.lines if "System parameters" in line)
    assert KEY.redacted in shown and TEST_KEY not in shown and '"encrypt_verify_incoming": false' in shown


def test_fails_tse_timeout_repeats_what_to_save(cluster):
    world = cluster.world(ENV)
    world.describe_tse = lambda i, r: InstanceStatus(i, "running")
    c = ctx(CreateContext)
    state = tse_state(cluster)
    state["timeout_seconds"] = 5
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["web-1"].phase
    assert ServerParams(world=world).create(c, state) is None
    (err,) = errors(c)
    assert "did not reach accept-encrypted within 5s" in err.summary
    assert KEY.redacted in err.detail and TEST_KEY not in err.detail


def gate_state(cluster, expected, **kw):
    state = {"id": Unknown, "rollout": "lab", "stack": "02-web-accept", "when": "before",
             "previous_stack": "01-servers-accept", "http_addr": SERVER, "expected": expected,
             "addresses": cluster.addresses(), "key_env": "TSEGOSSIP_KEY", "key_fingerprint": KEY.fingerprint,
             "token_env": None, "cacert_env": None, "client_cert_env": None, "client_key_env": None,
             "timeout_seconds": 3, "verdict": Unknown}
    state.update(kw)
    return state


def test_gate_passes_with_mixed_phases_and_per_node_keyring(cluster):
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted", "web-1": "plaintext",
                "web-2": "plaintext", "web-3": "plaintext", "new-1": "not-joined"}
    c = ctx(CreateContext)
    new = PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected))
    assert not errors(c), c.diagnostics
    assert new["verdict"].startswith("ok: 5 node(s) alive") and KEY.fingerprint in new["verdict"]


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
    cluster.nodes["server-2"].keys = {GossipKey(OTHER).fingerprint}
    expected = {"server-1": "accept-encrypted", "server-2": "accept-encrypted"}
    c = ctx(CreateContext)
    assert PhaseGate(world=cluster.world(ENV)).create(c, gate_state(cluster, expected, when="after")) is None
    assert "keyring: expected " + KEY.fingerprint in errors(c)[0].detail
    assert cluster.now < 3  # a key does not arrive by waiting: no retries until the timeout


def test_read_reports_live_phase_for_drift(cluster):
    cluster.nodes["web-1"].phase = cluster.nodes["server-1"].phase
    current = client_state(cluster, ["web-1", "web-2"], id="lab/02-web-accept/web",
                           observed={"web-1": "accept-encrypted", "web-2": "accept-encrypted"})
    c = ctx(ReadContext)
    new = ClientConfig(world=cluster.world(ENV)).read(c, current)
    assert new["phase"] == "mixed" and new["observed"] == {"web-1": "accept-encrypted", "web-2": "plaintext"}


def test_read_keeps_prior_state_when_unreachable(cluster):
    for n in cluster.nodes.values():
        n.reachable = False
    current = client_state(cluster, ["web-1"], observed={"web-1": "accept-encrypted"})
    c = ctx(ReadContext)
    assert ClientConfig(world=cluster.world(ENV)).read(c, current) is current
    assert "keeping the last known state" in warnings(c)[0].summary


def test_gate_read_returns_prior_state(cluster):
    current = gate_state(cluster, {"web-1": "enforced"}, verdict="ok")
    assert PhaseGate(world=cluster.world(ENV)).read(ctx(ReadContext), current) is current


@pytest.mark.parametrize("kind", [ClientConfig, ServerParams, PhaseGate])
def test_delete_forgets_with_a_warning(cluster, kind):
    c = ctx(DeleteContext)
    assert kind(world=cluster.world(ENV)).delete(c, {"id": "lab/x/web", "phase": "enforced"}) is None
    (w,) = c.diagnostics.diagnostics
    assert w.severity == "warning" and "never downgrades" in w.detail
    assert cluster.commands == [] and cluster.writes == []


def test_plan_marks_observed_unknown_when_an_input_changes(cluster):
    prior = client_state(cluster, ["web-1"], id="i", phase="plaintext", observed={"web-1": "plaintext"})
    planned = dict(prior, phase="accept-encrypted")
    out = ClientConfig().plan(PlanContext(Diagnostics(), "t", changed_fields={"phase"}), prior, planned)
    assert out["observed"] is Unknown and out["id"] == "i"
    same = ClientConfig().plan(PlanContext(Diagnostics(), "t", changed_fields=set()), prior, dict(prior))
    assert same["observed"] == {"web-1": "plaintext"}


def test_validate_rejects_unknown_phase_names():
    d = Diagnostics()
    ClientConfig().validate(d, "tsegossip_client_config", {"phase": "half-encrypted", "from_phase": Unknown})
    assert [x.path for x in d.diagnostics] == [["phase"]]
