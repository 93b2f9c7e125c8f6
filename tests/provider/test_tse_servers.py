"""TSE servers: what to save in the console is shown (key redacted), then TSE and the servers are watched."""

from __future__ import annotations

from tf.iface import CreateContext

from tests.provider.tfwire import ENV, KEY, ctx, errors, tse_state
from tests.support import TEST_KEY
from tsegossip.backends.tse import InstanceStatus
from tsegossip.provider.resources import ServerParams


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
