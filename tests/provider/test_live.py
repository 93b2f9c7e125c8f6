"""Read: the live phase, so a plan shows drift; the recorded state when nothing answers."""

from __future__ import annotations

from tf.iface import ReadContext

from tests.provider.tfwire import ENV, ctx, warnings, client_state
from tsegossip.provider.resources import ClientConfig


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


def test_read_of_a_stage_a_later_stage_moved_on_is_clean_and_says_superseded(cluster):
    from tsegossip.phases import Phase

    for name in ("web-1", "web-2"):
        cluster.nodes[name].phase = Phase.ENFORCED   # stage 3 ran after this stage 1
    current = client_state(cluster, ["web-1", "web-2"], id="lab/01-accept/web", phase="accept-encrypted",
                           from_phase="plaintext",
                           observed={"web-1": "accept-encrypted", "web-2": "accept-encrypted"})
    c = ctx(ReadContext)
    assert ClientConfig(world=cluster.world(ENV)).read(c, current) is current
    (w,) = warnings(c)
    assert "superseded by a later stage" in w.summary and "enforced, past this stage's accept-encrypted" in w.detail


def test_read_of_a_stage_whose_nodes_went_back_is_still_drift(cluster):
    # plaintext again (someone rolled back by hand): not this stage's direction, so drift as before
    current = client_state(cluster, ["web-1"], id="lab/01-accept/web", phase="accept-encrypted",
                           from_phase="plaintext", observed={"web-1": "accept-encrypted"})
    c = ctx(ReadContext)
    new = ClientConfig(world=cluster.world(ENV)).read(c, current)
    assert new["phase"] == "plaintext" and not warnings(c)
