"""The safety model against real gossip: what the planner refuses really partitions, and
phases.compatible(p, q) is exactly live connectivity, pair by pair."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time

import pytest

from tsegossip import agentconfig, lab
from tsegossip.phases import Phase, compatible
from tests.e2e.helpers import lab_up, make_spec, members_of, tsegossip_cmd


def alive_view(c: lab.LabCluster) -> dict[str, set[str]]:
    """observer -> members it sees alive (running observers only)."""
    out = {}
    for n in c.nodes:
        m = members_of(n)
        if m is not None:
            out[n.name] = {k for k, v in m.items() if v == 1}
    return out


def wait_for_view(c, predicted: dict[str, set[str]], timeout: float) -> dict[str, set[str]]:
    deadline = time.monotonic() + timeout
    while True:
        view = alive_view(c)
        if view == predicted or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


@pytest.mark.timeout(150)
def test_direct_with_joined_plaintext_clients_is_refused_and_really_partitions(tmp_path, lab_binary, key):
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2) as c:
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

        phase = {n.name: Phase.ENFORCED if n.role == "server" else Phase.PLAINTEXT for n in c.nodes}
        predicted = {o: {m for m in phase if compatible(phase[o], phase[m])} for o in phase}
        view = wait_for_view(c, predicted, timeout=20)
        assert view == predicted
        time.sleep(3)  # and it stays that way
        assert alive_view(c) == predicted
        cut_off = {c.node(name).group for name, seen in alive_view(c).items()
                   if not any(s.startswith("server-") for s in seen)}
        assert cut_off == refused_groups


PAIRS = list(itertools.product(Phase, Phase))


@pytest.mark.timeout(200)
def test_phase_pairs_connectivity_equals_compatible(tmp_path, lab_binary, key):
    """Servers (2) in p, client web-1 in q, restarted fresh for each of the 16 ordered pairs."""
    results = {}
    with lab_up(tmp_path, lab_binary, servers=2, clients=1, groups=1) as c:
        names = [n.name for n in c.nodes]
        for p, q in PAIRS:
            lab.down(c, quiet=True)
            for n in c.nodes:
                doc = agentconfig.fragment(p if n.role == "server" else q, key, reveal=True)
                lab.write_fragment(c, n.name, doc)
            for n in c.nodes:
                lab.start(c, n.name, timeout=20, wait_join=False)
            want = compatible(p, q)
            if want:
                try:
                    lab.wait_converged(c, timeout=10)
                    got = True
                except lab.LabError:
                    got = False
            else:
                # split: give gossip a window to (wrongly) connect, then look
                try:
                    lab.wait_converged(c, timeout=4)
                    got = True
                except lab.LabError:
                    got = False
                view = alive_view(c)
                # at least one side does not see the other alive (accept-encrypted servers read an
                # enforced client's encrypted join and list it alive until it is suspected: one-sided)
                assert not ("web-1" in view["server-1"] and "server-1" in view["web-1"]), (p, q, view)
            results[(p.value, q.value)] = (got, want)
        assert set(names) == {"server-1", "server-2", "web-1"}
    wrong = {k: v for k, v in results.items() if v[0] != v[1]}
    assert not wrong, f"(servers, client): (live, model) disagree: {wrong}"
    assert len(results) == 16
