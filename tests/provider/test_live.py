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
