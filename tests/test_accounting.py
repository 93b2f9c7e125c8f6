"""Members the spec does not list: which phases they may run, and which steps would cut them off."""

from tsegossip import accounting
from tsegossip.observe import Member, parse_members
from tsegossip.phases import Phase

P, A, S, E = Phase.PLAINTEXT, Phase.ACCEPT_ENCRYPTED, Phase.SEND_ENCRYPTED, Phase.ENFORCED


def rows(*names, status=1, role="node"):
    return [{"Name": n, "Addr": f"10.0.0.{i}", "Port": 8301, "Status": status, "Tags": {"role": role}}
            for i, n in enumerate(names, 1)]


def test_members_parse_with_address_and_role():
    [m, s] = parse_members(rows("web-9") + rows("tse-1", role="consul") + ["junk", {"Addr": "x"}])
    assert (m.name, m.where, m.status, m.server) == ("web-9", "10.0.0.1:8301", "alive", False)
    assert s.server


def test_an_unlisted_member_runs_a_phase_compatible_with_today():
    [u] = accounting.unlisted(parse_members(rows("web-1", "web-9")), {"web-1"}, False, {P})
    assert u.member.name == "web-9" and u.possible == (P, A)
    [u] = accounting.unlisted(parse_members(rows("web-1", "web-9")), {"web-1"}, False, {A, S})
    assert u.possible == (A, S)


def test_only_alive_members_and_not_tse_servers():
    roster = parse_members(rows("gone", status=3) + rows("dead", status=4) + rows("tse-a", role="consul"))
    assert accounting.unlisted(roster, set(), True, {P}) == []
    assert [u.member.name for u in accounting.unlisted(roster, set(), False, {P})] == ["tse-a"]


def test_the_smooth_steps_against_an_unlisted_plaintext_member():
    [u] = accounting.unlisted(parse_members(rows("web-9")), set(), False, {P})
    assert accounting.refusals([u], (P, A)) == []            # step 1: accept-encrypted is safe for it
    [line] = accounting.refusals([u], (A, S))                # step 2: send-encrypted cuts a plaintext agent off
    assert line.startswith("web-9 (10.0.0.1:8301): an alive member the spec does not list; it runs plaintext or "
                           "accept-encrypted, and this step would cut it off")
    assert "as plaintext it cannot gossip with agents in send-encrypted" in line
    assert "accept-encrypted it cannot" not in line


def test_unmanaged_members_are_judged_at_their_phase():
    assert accounting.refusals([], (P, A), {"laptop": P}) == []
    [line] = accounting.refusals([], (S, E), {"laptop": A})
    assert line == ("laptop: unmanaged in accept-encrypted, and this step would cut it off (it cannot gossip with "
                    "agents in enforced)")


# ---- unmanaged members in the spec and the plan ------------------------------------------------

import pytest  # noqa: E402

from tsegossip import planner, report, spec  # noqa: E402
from tsegossip.errors import PlanError  # noqa: E402
from tsegossip.keys import GossipKey  # noqa: E402
from tests.support import TEST_KEY  # noqa: E402
from tests.test_spec import edited, problems  # noqa: E402


def test_unmanaged_members_load_with_their_phase():
    r = spec.parse(edited(unmanaged=[{"name": "laptop", "phase": "accept-encrypted"},
                                     {"name": "batch-7", "phase": "observe", "http_addr": "http://10.0.0.7:8500"}]))
    assert [(u.name, u.label, u.http_addr) for u in r.unmanaged] == [
        ("laptop", "accept-encrypted", None), ("batch-7", "observe", "http://10.0.0.7:8500")]


@pytest.mark.parametrize("entry, expected", [
    ({"name": "web-1", "phase": "plaintext"}, "unmanaged[0].name: 'web-1' is also listed at client_groups[0].nodes[0]; "
                                              "a member is either in a group"),
    ({"name": "bad name!", "phase": "plaintext"}, "unmanaged[0].name: 'bad name!' does not match"),
    ({"name": "x", "phase": "encrypted"}, "unmanaged[0].phase: 'encrypted' is not allowed; allowed: plaintext, "
                                          "accept-encrypted, send-encrypted, enforced, observe"),
    ({"name": "x", "phase": "observe"}, "unmanaged[0].http_addr: is required"),
    ({"name": "x"}, "unmanaged[0].phase: is required"),
])
def test_bad_unmanaged_entries_are_named(entry, expected):
    found = problems(edited(unmanaged=[entry]))
    assert any(p.startswith(expected) for p in found), found


def test_the_plan_refuses_a_step_that_would_cut_an_unmanaged_member_off():
    ok = planner.plan(spec.parse(edited(unmanaged=[{"name": "laptop", "phase": "observe",
                                                    "http_addr": "http://10.0.0.7:8500"}])))
    assert len(ok.steps) == 3  # observe: judged live by each step's gate
    with pytest.raises(PlanError) as err:
        planner.plan(spec.parse(edited(unmanaged=[{"name": "laptop", "phase": "plaintext"}])))
    assert "unmanaged member laptop runs plaintext: step shop-2-send-encrypted brings agents in send-encrypted" \
        in str(err.value)
    with pytest.raises(PlanError) as err:
        planner.plan(spec.parse(edited(unmanaged=[{"name": "laptop", "phase": "enforced"}])))
    assert "unmanaged member laptop runs enforced, but the spec says servers are in plaintext" in str(err.value)


def test_plan_text_and_markdown_show_unmanaged_members(monkeypatch):
    doc = edited(unmanaged=[{"name": "laptop", "phase": "observe", "http_addr": "http://10.0.0.7:8500"}])
    plan = planner.plan(spec.parse(doc))
    key = GossipKey(TEST_KEY)
    assert "unmanaged (never restarted, proven against): laptop observe" in report.as_text(plan, key)
    assert "Unmanaged members (never restarted" in report.as_markdown(plan, key)
