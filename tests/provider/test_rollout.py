"""Client groups and self-managed servers moved batch by batch, against a simulated cluster."""

from __future__ import annotations

import json
import os
import stat

from tf.iface import CreateContext
from tf.types import Unknown

from tests.provider.tfwire import ENV, ctx, errors, client_state, server_state
from tests.support import TEST_KEY
from tsegossip.provider.resources import ClientConfig, ServerParams


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


def test_settle_wait_looks_again_after_50ms_then_backs_off_to_poll_seconds(cluster):
    # web-1 rejoins only on the 6th look after its restart.
    looks, sleeps = [], []
    members, sleep = cluster.members, cluster.sleep

    def rejoining(http_addr, access=None, timeout=None):
        seen = members(http_addr, access, timeout)
        if cluster.commands:
            looks.append(cluster.now)
            if len(looks) < 6:
                seen["web-1"] = "failed"
        return seen

    cluster.members = rejoining
    cluster.sleep = lambda s: (sleeps.append(round(s, 6)), sleep(s))
    c = ctx(CreateContext)
    new = ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1"], poll_seconds=0.2))
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"web-1": "accept-encrypted"}
    assert sleeps == [0.05, 0.075, 0.1125, 0.16875, 0.2]


def test_fails_stops_at_first_node_that_does_not_come_back(cluster):
    cluster.nodes["web-1"].comes_back = False
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"])) is None
    (err,) = errors(c)
    assert err.summary == "Rollout of web (lab/02-web-accept) stopped at web-1"
    assert "member failed" in err.detail and "(web-2)" in err.detail
    assert [c.split()[1] for c in cluster.commands] == ["web-1"]


def test_a_node_back_in_phase_but_listed_leaving_stops_naming_the_stale_leave_and_the_remedy(cluster):
    cluster.nodes["web-1"].listed_after_restart = "leaving"  # serf's leave intent relayed after the rejoin
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"])) is None
    (err,) = errors(c)
    assert "web-1: member leaving, phase" in err.detail and "a stale leave: the node answers in" in err.detail
    assert "consul join" in err.detail and "(web-2)" in err.detail  # the rest untouched, rerun resumes


def test_server_params_self_managed_one_at_a_time(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["server-1"].phase
    c = ctx(CreateContext)
    new = ServerParams(world=cluster.world(ENV)).create(c, server_state(cluster, batch_size=5))
    assert not errors(c), c.diagnostics
    assert sum(": batch " in line and "->" in line for line in cluster.lines) == 2
    assert new["observed"] == {"server-1": "send-encrypted", "server-2": "send-encrypted"}


def test_a_server_batch_counts_as_back_once_the_server_knows_the_raft_leader(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["server-1"].phase
    c = ctx(CreateContext)
    assert ServerParams(world=cluster.world(ENV)).create(c, server_state(cluster)) is not None
    assert not errors(c), c.diagnostics
    # each restarted server is asked on its own address, and the observed agent too
    assert "http://server-1:8500" in cluster.leader_asks and "http://server-2:8500" in cluster.leader_asks
    done = [line for line in cluster.lines if "alive in send-encrypted" in line]
    assert len(done) == 2 and all("raft leader 10.0.0.1:8300 known to server-" in line for line in done), done


def test_a_server_alive_in_gossip_but_outside_raft_stops_the_rollout_before_the_next_server(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["server-1"].phase
    cluster.nodes["server-1"].knows_leader = False
    c = ctx(CreateContext)
    assert ServerParams(world=cluster.world(ENV)).create(c, server_state(cluster)) is None
    (err,) = errors(c)
    assert err.summary.endswith("stopped at server-1"), err.summary
    assert "not back in raft" in err.detail and "server-1: no leader" in err.detail, err.detail
    assert "(server-2)" in err.detail  # named as untouched
    assert [cmd.split()[1] for cmd in cluster.commands] == ["server-1"]


def test_client_groups_do_not_wait_for_raft(cluster):
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"])) is not None
    assert not errors(c) and cluster.leader_asks == []


def test_a_failed_delivery_preflight_refuses_before_any_write(cluster):
    """An ssh step whose preflight fails on one host (here: a stand-in session) writes and restarts nothing."""
    from dataclasses import replace
    from tsegossip.backends import delivery as dl

    opened = []

    class Refusing(dl.Session):
        def preflight(self, targets):
            opened.append([t.node for t in targets])
            raise dl.DeliveryFailed("1 of 2 host(s) failed the check before any write, so nothing was written "
                                    "anywhere: web-2 (10.0.0.2): host key of 10.0.0.2 is unknown")

    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1", "web-2"])
    state["delivery"] = '{"known_hosts":"/k","method":"ssh"}'
    world = replace(cluster.world(ENV), open_delivery=lambda how, ctx: Refusing(how, ctx))
    assert ClientConfig(world=world).create(c, state) is None
    assert opened == [["web-1", "web-2"]]
    assert cluster.writes == [] and cluster.commands == []
    [err] = errors(c)
    assert "refused before any change" in str(err) and "host key of 10.0.0.2 is unknown" in str(err)
    assert "No node was written to or restarted" in str(err)


def test_a_bad_delivery_attribute_is_refused_naming_the_field(cluster):
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-1"])
    state["delivery"] = '{"method":"ssh","known_hosts":"/k","port":0}'
    assert ClientConfig(world=cluster.world(ENV)).create(c, state) is None
    [err] = errors(c)
    assert "delivery.port: 0 is out of range; allowed: >= 1" in str(err) and cluster.commands == []


def test_down_nodes_skip_goes_on_without_a_down_node_and_records_it(cluster):
    cluster.nodes["web-2"].status, cluster.nodes["web-2"].reachable = "failed", False
    c = ctx(CreateContext)
    new = ClientConfig(world=cluster.world(ENV)).create(
        c, client_state(cluster, ["web-1", "web-2", "web-3"], down_nodes="skip", stragglers=Unknown))
    assert not errors(c), c.diagnostics
    assert [cmd.split()[1] for cmd in cluster.commands] == ["web-1", "web-3"]
    assert new["stragglers"] == {"web-2": "down when 02-web-accept ran (member failed); not moved to accept-encrypted"}
    assert any("skipping 1 down node(s) (down_nodes = skip), recorded as stragglers: web-2" in line
               for line in cluster.lines)
    assert any(line.endswith("done, 2 node(s) in accept-encrypted, 1 straggler(s) down") for line in cluster.lines)


def test_down_nodes_refuse_is_the_default(cluster):
    cluster.nodes["web-2"].status, cluster.nodes["web-2"].reachable = "failed", False
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, client_state(cluster, ["web-1", "web-2"])) is None
    [err] = errors(c)
    assert "not ready" in err.summary and "web-2" in err.detail and cluster.commands == []


def test_a_repair_moves_a_cut_off_straggler_straight_to_its_groups_phase(cluster):
    from tsegossip.keys import fingerprint_of
    from tsegossip.phases import Phase
    for name in ("server-1", "server-2", "web-1", "web-3"):
        cluster.nodes[name].phase = Phase.ENFORCED
        cluster.nodes[name].keys.add(fingerprint_of(TEST_KEY))
    cluster.nodes["web-2"].status = "failed"  # back in plaintext after enforced: cut off, its API answers
    c = ctx(CreateContext)
    state = client_state(cluster, ["web-2"], stack="lab-repair-0a1b2c3d", previous_stack=None,
                         from_phase="plaintext", phase="enforced", allow_jump=True)
    new = ClientConfig(world=cluster.world(ENV)).create(c, state)
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"web-2": "enforced"} and cluster.nodes["web-2"].status == "alive"
    assert [cmd.split()[1] for cmd in cluster.commands] == ["web-2"]  # only the straggler restarted
    # without allow_jump the same move is refused: a step never skips a phase
    c = ctx(CreateContext)
    assert ClientConfig(world=cluster.world(ENV)).create(c, {**state, "allow_jump": None}) is None
    assert "skips a phase" in errors(c)[0].summary
