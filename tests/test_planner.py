"""The planner, checked exhaustively: every combination of today's phases for the
servers and two client groups, both strategies, every target, joined or not.

The safety check here does not reuse the planner's proof: it simulates a rolling
restart node by node (every subset of restarted nodes) and applies the measured rule.
"""

import itertools

import pytest

from tsegossip.errors import PlanError
from tsegossip.phases import Phase, compatible
from tsegossip.planner import SERVERS, StepKind, plan
from tsegossip.spec import parse

PHASES = list(Phase)
NODES_PER_ROLE = 2


def make_spec(strategy, target, servers, a, b, a_joined=True, b_joined=True, server_type="self-managed"):
    def nodes(prefix):
        return [{"name": f"{prefix}-{i}", "http_addr": f"http://{prefix}-{i}.test:8500"} for i in range(NODES_PER_ROLE)]

    srv = {"type": server_type, "phase": servers.value, "http_addr": "http://s.test:8500"}
    if server_type == "tse":
        srv.update(instance_id="ins-abcd1234", region="ap-guangzhou")
    else:
        srv.update(nodes=nodes("srv"), config_path="/c", restart_command="r {node}")
    return parse({
        "name": "t", "strategy": strategy, "target": target.value, "key_env": "K",
        "servers": srv,
        "client_groups": [
            {"name": "a", "phase": a.value, "joined": a_joined, "config_path": "/c", "restart_command": "r", "nodes": nodes("a")},
            {"name": "b", "phase": b.value, "joined": b_joined, "config_path": "/c", "restart_command": "r", "nodes": nodes("b")},
        ],
    })


def node_level_safe(step) -> bool:
    """Every subset of restarted nodes, every pair of joined nodes: compatible?"""
    roles = step.before.roles()
    slots = []  # (role, before, after) per node
    for role in roles:
        before, after = step.before.phase_of(role), step.after.phase_of(role)
        for _ in range(NODES_PER_ROLE):
            slots.append((before, after))
    for restarted in itertools.product([False, True], repeat=len(slots)):
        present = []
        for (before, after), done in zip(slots, restarted):
            phase = after if done else before
            if phase is not None:
                present.append(phase)
        if not all(compatible(x, y) for x, y in itertools.combinations(present, 2)):
            return False
    return True


def today_connected(servers, groups):
    joined = [servers] + [p for p, j in groups if j]
    return all(compatible(x, y) for x, y in itertools.combinations(joined, 2))


CASES = list(itertools.product(["smooth", "direct"], PHASES, PHASES, PHASES, PHASES, [True, False]))


@pytest.mark.parametrize("strategy,target,servers,a,b,b_joined", CASES)
def test_exhaustive(strategy, target, servers, a, b, b_joined):
    spec = make_spec(strategy, target, servers, a, b, b_joined=b_joined)
    groups = [(a, True), (b, b_joined)]
    if not today_connected(servers, groups):
        with pytest.raises(PlanError, match="cannot gossip today"):
            plan(spec)
        return
    if strategy == "direct" and any(j and p is not target for p, j in groups):
        with pytest.raises(PlanError, match="strategy smooth") as err:
            plan(spec)
        assert "partition" in str(err.value)
        return
    result = plan(spec)
    state = result.initial
    for step in result.steps:
        assert step.before == state
        for m in step.moves:
            if m.before is None:
                assert step.kind is StepKind.JOIN and m.after is target
            elif step.kind is StepKind.SERVERS:
                assert m.role == SERVERS and m.after is target
            else:
                assert abs(m.before.rank - m.after.rank) == 1, "one phase per step"
        if step.kind is StepKind.FORWARD:
            low = min(p.rank for p in state.joined().values())
            assert {m.role for m in step.moves} == {r for r, p in state.joined().items() if p.rank == low}
        if step.kind is StepKind.ROLLBACK:
            high = max(p.rank for p in state.joined().values())
            assert {m.role for m in step.moves} == {r for r, p in state.joined().items() if p.rank == high}
        jump = any(m.is_jump for m in step.moves)
        assert node_level_safe(step) == step.proof.safe
        assert step.proof.safe or (jump and step.kind is StepKind.SERVERS), step.stack
        assert bool(step.warnings) or not jump
        state = step.after
    # Everyone ends at the target, joined.
    assert state.servers is target
    assert all(p is target for _, p in state.clients)
    # Stack ids are unique and depend only on what the step does.
    ids = [s.stack for s in result.steps]
    assert len(ids) == len(set(ids))


def test_smooth_from_plaintext_is_three_steps():
    result = plan(make_spec("smooth", Phase.ENFORCED, Phase.PLAINTEXT, Phase.PLAINTEXT, Phase.PLAINTEXT))
    assert [s.stack for s in result.steps] == ["t-1-accept-encrypted", "t-2-send-encrypted", "t-3-enforced"]
    for s in result.steps:
        assert set(s.moved_roles) == {"servers", "a", "b"}


def test_fresh_tse_first_brings_clients_to_accept():
    spec = make_spec("smooth", Phase.ENFORCED, Phase.ACCEPT_ENCRYPTED, Phase.PLAINTEXT, Phase.PLAINTEXT, server_type="tse")
    result = plan(spec)
    assert [s.stack for s in result.steps] == ["t-1-accept-encrypted", "t-2-send-encrypted", "t-3-enforced"]
    assert result.steps[0].moved_roles == ("a", "b")
    assert any("TSE" in w for w in result.warnings)


def test_resume_half_way_keeps_stack_ids():
    result = plan(make_spec("smooth", Phase.ENFORCED, Phase.SEND_ENCRYPTED, Phase.SEND_ENCRYPTED, Phase.ACCEPT_ENCRYPTED))
    assert [s.stack for s in result.steps] == ["t-2-send-encrypted", "t-3-enforced"]
    assert result.steps[0].moved_roles == ("b",)


def test_rollback_one_phase_per_step():
    result = plan(make_spec("smooth", Phase.PLAINTEXT, Phase.ENFORCED, Phase.ENFORCED, Phase.ENFORCED))
    assert [s.stack for s in result.steps] == ["t-undo3-send-encrypted", "t-undo2-accept-encrypted", "t-undo1-plaintext"]
    assert all(s.kind is StepKind.ROLLBACK for s in result.steps)
    assert any("disable_keyring_file" in w for w in result.steps[-1].warnings)


def test_direct_jumps_servers_with_warning_then_joins():
    spec = make_spec("direct", Phase.ENFORCED, Phase.ACCEPT_ENCRYPTED, Phase.PLAINTEXT, Phase.PLAINTEXT, a_joined=False, b_joined=False)
    result = plan(spec)
    assert [s.stack for s in result.steps] == ["t-servers-enforced", "t-join-enforced"]
    assert not result.steps[0].proof.safe
    assert "splits" in result.steps[0].warnings[0] or "cannot gossip" in result.steps[0].warnings[0]
    assert result.steps[1].proof.safe
    assert result.steps[1].after.as_dict()["clients"] == {"a": "enforced", "b": "enforced"}


def test_fails_direct_with_joined_plaintext_clients():
    spec = make_spec("direct", Phase.ENFORCED, Phase.PLAINTEXT, Phase.PLAINTEXT, Phase.PLAINTEXT)
    with pytest.raises(PlanError) as err:
        plan(spec)
    msg = str(err.value)
    assert "client group 'a' (2 nodes) has joined and is in plaintext" in msg
    assert "Remote state is encrypted and encryption is not configured" in msg
    assert "Use strategy smooth" in msg


def test_fails_when_spec_says_cluster_is_already_split():
    spec = make_spec("smooth", Phase.ENFORCED, Phase.PLAINTEXT, Phase.SEND_ENCRYPTED, Phase.PLAINTEXT)
    with pytest.raises(PlanError, match="servers are in plaintext and a in send-encrypted"):
        plan(spec)


def test_nothing_to_do():
    result = plan(make_spec("smooth", Phase.ENFORCED, Phase.ENFORCED, Phase.ENFORCED, Phase.ENFORCED))
    assert result.steps == ()
