"""The lab's re-announcement of an agent a peer keeps listing `leaving` after the agent rejoined.

The serf race itself cannot be provoked on demand (it needs a leave intent relayed late by a third
member), so the decision is tested on given member views with a recording join; the join call is
tested against a real lab agent in test_join_call_answers_on_a_real_agent.
"""
from __future__ import annotations

from tsegossip import lab
from tsegossip.lab import agentapi
from tsegossip.lab.cluster import StaleLeaves
from tsegossip.lab.model import layout

import pytest

ALIVE, LEAVING, LEFT, FAILED = 1, 2, 3, 4


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def cluster():
    return layout("/nonexistent", "consul", servers=2, clients=1, groups=1, ports=list(range(20000, 20009)))


def views(server2_sees_web1=LEAVING, web1_sees_itself=ALIVE):
    return {"server-1": {"server-1": ALIVE, "server-2": ALIVE, "web-1": ALIVE},
            "server-2": {"server-1": ALIVE, "server-2": ALIVE, "web-1": server2_sees_web1},
            "web-1": None if web1_sees_itself is None else
            {"server-1": ALIVE, "server-2": ALIVE, "web-1": web1_sees_itself}}


def recording(monkeypatch):
    calls = []
    monkeypatch.setattr(agentapi, "join", lambda node, addr, timeout=5.0: calls.append((node.name, addr)) or True)
    return calls


@pytest.mark.parametrize("status,name", [(LEAVING, "leaving"), (LEFT, "left")])
def test_a_running_agent_listed_with_a_stale_leave_past_the_threshold_joins_that_peer(monkeypatch, capsys,
                                                                                       status, name):
    calls = recording(monkeypatch)
    c, clock = cluster(), Clock()
    stale = StaleLeaves(c, clock=clock)
    stale.mend(views(status))
    clock.t += agentapi.STALE_LEAVING_AFTER - 0.1
    stale.mend(views(status))
    assert calls == []  # a real leave passes through `leaving` for a moment: not yet
    clock.t += 0.2
    stale.mend(views(status))
    assert calls == [("web-1", c.node("server-2").serf_addr)]  # the agent joins the stale peer, not anyone
    err = capsys.readouterr().err
    assert f"server-2 has listed web-1 as {name}" in err and "web-1 joins server-2" in err
    clock.t += 1
    stale.mend(views(status))
    assert len(calls) == 1  # not again before REANNOUNCE_EVERY
    clock.t += agentapi.REANNOUNCE_EVERY
    stale.mend(views(status))
    assert len(calls) == 2


def test_a_failed_member_is_left_to_memberlist(monkeypatch):
    calls = recording(monkeypatch)  # `failed` is what a phase that cannot gossip shows: no join for it
    clock = Clock()
    stale = StaleLeaves(cluster(), clock=clock)
    for _ in range(3):
        stale.mend(views(FAILED))
        clock.t += agentapi.REANNOUNCE_EVERY
    assert calls == []


def test_no_join_for_an_agent_that_is_gone_or_not_alive_in_its_own_view(monkeypatch):
    calls = recording(monkeypatch)
    for own in (None, LEAVING):  # stopped (no answer), or really leaving
        clock = Clock()
        stale = StaleLeaves(cluster(), clock=clock)
        for _ in range(3):
            stale.mend(views(web1_sees_itself=own))
            clock.t += agentapi.STALE_LEAVING_AFTER
    assert calls == []


def test_the_leaving_clock_restarts_when_the_peer_sees_the_agent_otherwise(monkeypatch):
    calls = recording(monkeypatch)
    clock = Clock()
    stale = StaleLeaves(cluster(), clock=clock)
    for status in (LEAVING, ALIVE, LEAVING, FAILED, LEAVING):
        stale.mend(views(server2_sees_web1=status))
        clock.t += agentapi.STALE_LEAVING_AFTER * 0.6
    assert calls == []  # never leaving for the whole threshold in a row


def test_join_call_answers_on_a_real_agent(plain_lab):
    web1, s2 = plain_lab.node("web-1"), plain_lab.node("server-2")
    assert agentapi.join(web1, s2.serf_addr) is True
    assert agentapi.join(web1, "127.0.0.1:1") is False  # nothing listens there: the call says so
    lab.wait_converged(plain_lab, timeout=10)
