"""The safety model against real gossip: what the planner refuses really partitions, and
phases.compatible(p, q) is exactly live connectivity, pair by pair (and the lab agrees with the
measured table of facts/gossip-compat.md that tests/test_phases.py holds the model to)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from typing import Callable

import pytest

from tsegossip import agentconfig, lab
from tsegossip.phases import Phase, compatible
from tsegossip.waiting import wait_until
from tests.e2e.helpers import lab_up, make_spec, members_of, tsegossip_cmd
from tests.support import MEASURED_COMPAT

View = dict[str, set[str]]


def alive_view(c: lab.LabCluster) -> View:
    """observer -> members it sees alive (running observers only)."""
    out = {}
    for n in c.nodes:
        m = members_of(n)
        if m is not None:
            out[n.name] = {k for k, v in m.items() if v == 1}
    return out


def shown(v: View) -> dict[str, list[str]]:
    return {o: sorted(a) for o, a in sorted(v.items())}


def view_probe(c: lab.LabCluster, done: Callable[[View], bool]):
    """A wait_until probe over the live view: (done(view), view)."""
    def probe():
        v = alive_view(c)
        return done(v), v
    return probe


@pytest.mark.timeout(150)
def test_direct_with_joined_plaintext_clients_is_refused_and_really_partitions(tmp_path, lab_binary, key):
    # Servers that leave on terminate: the clients drop each one at its restart, so the partition shows
    # at once; with Consul's server default (no leave) it shows only after memberlist's suspicion
    # timeout, 10-20 s here with so few members to confirm it.
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2, leave_on_terminate=True) as c:
        direct = tmp_path / "direct.json"
        make_spec(c, direct, "e2e-direct-refused", strategy="direct")
        r = subprocess.run([tsegossip_cmd(), "plan", str(direct)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        msg = r.stdout + r.stderr
        assert "smooth" in msg
        refused_groups = set(re.findall(r"client group '([a-z0-9-]+)'", msg))
        assert refused_groups == {"web", "api"}, msg

        # Do it anyway, by hand: the servers' fragment of the enforced step, straight from plaintext.
        smooth = tmp_path / "smooth.json"
        make_spec(c, smooth, "e2e-by-hand")
        r = subprocess.run([tsegossip_cmd(), "render", str(smooth), "--stack", "e2e-by-hand-3-enforced",
                            "--group", "servers", "--reveal"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        frag = json.loads(r.stdout)
        assert frag["encrypt"] == key.reveal() and frag["encrypt_verify_incoming"] is True
        for n in c.servers:
            with open(n.config_path, "w") as f:
                f.write(r.stdout)
            rs = subprocess.run([tsegossip_cmd(), "lab", "restart", "--dir", c.workdir, "--no-wait-join", n.name],
                                capture_output=True, text=True, timeout=60)
            assert rs.returncode == 0, rs.stderr

        # The model's view, from the phases set by hand (not from anything observed).
        phase = {n.name: Phase.ENFORCED if n.role == "server" else Phase.PLAINTEXT for n in c.nodes}
        predicted = {o: {m for m in phase if compatible(phase[o], phase[m])} for o in phase}
        seen = wait_until(view_probe(c, lambda v: v == predicted),
                          timeout=20, interval=0.25, first=0.05, backoff=2)
        assert seen.ok, f"live view {shown(seen.value)} never became the model's {shown(predicted)}"
        # A partition lasts: watch for 3 s (suspicion ~4 s, probes every 1 s) that nothing heals or drifts.
        drift = wait_until(view_probe(c, lambda v: v != predicted), timeout=3, interval=0.25)
        assert not drift.ok, f"live view drifted from the model's {shown(predicted)} to {shown(drift.value)}"
        # What the planner refused is what is cut off live: clients that see no server alive.
        cut_off = {c.node(name).group for name, alive in drift.value.items()
                   if c.node(name).role == "client" and not any(c.node(s).role == "server" for s in alive)}
        assert cut_off == refused_groups, (cut_off, shown(drift.value))


PAIRS = list(itertools.product(Phase, Phase))
# Long enough for a pair that (wrongly) connects to be seen connected, and for a cut-off agent to show
# (memberlist LAN defaults: probe every 1 s, suspicion ~4 s); connected pairs converge in about 1 s.
WINDOW = 8.0


def live_connectivity(c: lab.LabCluster) -> tuple[str, View]:
    """Measured the same way whatever the model expects: 'connected' (every agent sees every agent alive
    within WINDOW), 'split' (no server and client see each other alive), 'partial' or 'unanswered'."""
    names = {n.name for n in c.nodes}
    w = wait_until(view_probe(c, lambda v: set(v) == names and all(a == names for a in v.values())),
                   timeout=WINDOW, interval=0.25, first=0.05, backoff=2)
    view = w.value
    if w.ok:
        return "connected", view
    if set(view) != names:
        return "unanswered", view
    # one-sided sightings are allowed (accept-encrypted servers read an enforced client's encrypted
    # join and list it alive until it is suspected), two-way ones are not
    two_way = [(s.name, x.name) for s in c.servers for x in c.clients
               if x.name in view[s.name] and s.name in view[x.name]]
    return ("partial" if two_way else "split"), view


@pytest.mark.timeout(240)
def test_phase_pairs_connectivity_equals_compatible(tmp_path, lab_binary, key):
    """Servers (2) in p, client web-1 in q, restarted fresh for each of the 16 ordered pairs."""
    live: dict[tuple[str, str], tuple[str, View]] = {}
    with lab_up(tmp_path, lab_binary, servers=2, clients=1, groups=1) as c:
        for p, q in PAIRS:
            lab.down(c, quiet=True)
            for n in c.nodes:
                doc = agentconfig.fragment(p if n.role == "server" else q, key, reveal=True)
                lab.write_fragment(c, n.name, doc)
            for n in c.nodes:
                lab.start(c, n.name, timeout=20, wait_join=False)
            live[(p.value, q.value)] = live_connectivity(c)

    def expect(ok: bool) -> str:
        return "connected" if ok else "split"

    vs_model = {k: (got, expect(compatible(Phase(k[0]), Phase(k[1]))), shown(view))
                for k, (got, view) in live.items() if got != expect(compatible(Phase(k[0]), Phase(k[1])))}
    # The servers are the table's peers, web-1 its X.
    vs_measured = {(peers, x): (live[(peers, x)][0], expect(ok), shown(live[(peers, x)][1]))
                   for peers, x, ok in MEASURED_COMPAT if live[(peers, x)][0] != expect(ok)}
    assert not vs_model, f"(servers, client): (live, phases.compatible, live view) disagree: {vs_model}"
    assert not vs_measured, f"(servers, client): (live, measured, live view) disagree: {vs_measured}"
