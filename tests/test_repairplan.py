"""The repair of stragglers as a plan: which nodes move, straight to their role's phase, and the proof."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsegossip import planner, repairplan, spec
from tsegossip.errors import PlanError
from tsegossip.phases import Phase

ROOT = Path(__file__).resolve().parents[1]
P, A, S, E = Phase.PLAINTEXT, Phase.ACCEPT_ENCRYPTED, Phase.SEND_ENCRYPTED, Phase.ENFORCED


@pytest.fixture(scope="module")
def plan():
    return planner.plan(spec.load(ROOT / "examples" / "self-managed.yaml"))


def test_stragglers_go_straight_to_their_roles_phase_grouped_by_role_and_starting_phase(plan):
    last = plan.steps[-1].stack
    r = repairplan.repair_for(plan, last, {"edge-2": P, "edge-1": A, "consul-3": S})
    assert [(m.role, m.before, m.after, m.nodes) for m in r.moves] == [
        ("servers", S, E, ("consul-3",)), ("edge", P, E, ("edge-2",)), ("edge", A, E, ("edge-1",))]
    assert [m.resource for m in r.moves] == ["servers-from-send-encrypted", "client-edge-from-plaintext",
                                            "client-edge-from-accept-encrypted"]
    assert r.proof.safe and r.proof.coexisting == (E,)
    assert r.stragglers == {"edge-2": P, "edge-1": A, "consul-3": S}
    notes = " ".join(r.notes)
    assert "edge-2 (edge) runs plaintext: apart from the cluster now" in notes
    assert "consul-3 (servers) runs send-encrypted: still gossips with every role" in notes


def test_the_stack_id_is_stable_for_the_same_repair_and_differs_for_another(plan):
    last = plan.steps[-1].stack
    a = repairplan.repair_for(plan, last, {"edge-2": P})
    assert a.stack == repairplan.repair_for(plan, last, {"edge-2": P}).stack
    assert a.stack.startswith(f"{plan.rollout.name}-repair-")
    assert a.stack != repairplan.repair_for(plan, last, {"edge-2": A}).stack
    assert a.stack not in {s.stack for s in plan.steps}


def test_a_request_round_trips_and_bad_ones_name_the_field(plan):
    last = plan.steps[-1].stack
    doc = repairplan.request_doc(last, {"edge-2": P})
    assert repairplan.from_request(plan, doc) == repairplan.repair_for(plan, last, {"edge-2": P})
    with pytest.raises(PlanError, match=r"stragglers.edge-2: 'hot' is not a phase; allowed: plaintext"):
        repairplan.from_request(plan, {"at": last, "stragglers": {"edge-2": "hot"}})
    with pytest.raises(PlanError, match="expected"):
        repairplan.from_request(plan, ["edge-2"])
    with pytest.raises(PlanError, match="no step with stack id 'nope'"):
        repairplan.from_request(plan, {"at": "nope", "stragglers": {"edge-2": "plaintext"}})


def test_what_cannot_be_repaired_is_refused_by_name(plan):
    last = plan.steps[-1].stack
    with pytest.raises(PlanError, match="no stragglers"):
        repairplan.repair_for(plan, last, {})
    with pytest.raises(PlanError, match="'laptop' is not a node of the spec"):
        repairplan.repair_for(plan, last, {"laptop": P})
    with pytest.raises(PlanError, match="edge-1 already runs enforced"):
        repairplan.repair_for(plan, last, {"edge-1": E})
    tse = planner.plan(spec.load(ROOT / "examples" / "tse-smooth.yaml"))
    group = tse.rollout.client_groups[0]
    r = repairplan.repair_for(tse, repairplan.TODAY, {group.nodes[0].name: A})
    assert r.moves[0].after is group.phase and r.at == "today"
