"""Each plan step synthesizes to one stack with the expected resources, order and dependencies."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tsegossip import planner, spec
from tsegossip.constructs import NOT_JOINED, GossipClientConfig, GossipClientConfigProps, PhaseStack, PhaseStackProps
from tsegossip.constructs import _cdk
from tsegossip.phases import Phase
from tsegossip.planner import Move, State, Step, StepKind, prove

from .conftest import EXAMPLES, ROOT, TEST_KEY, build_app, decode_map, load_plan, stack_json

Synth = _cdk.Testing


def _resources(doc: dict, type_name: str) -> dict:
    return doc.get("resource", {}).get(type_name, {})


def test_tse_smooth_step_one_resources():
    plan = load_plan(ROOT / "examples" / "tse-smooth.yaml")
    _, stacks = build_app(plan)
    out = Synth.synth(stacks[0], run_validations=True)
    step = plan.steps[0]
    assert Synth.to_have_provider_with_properties(out, "tsegossip", {})
    assert Synth.to_have_resource_with_properties(out, "tsegossip_server_params", {
        "role": "servers", "server_type": "tse", "phase": "accept-encrypted", "from_phase": "plaintext",
        "instance_id": "ins-7f3a9c2e", "region": "ap-guangzhou", "key_env": "TSEGOSSIP_KEY",
        "key_fingerprint": TEST_KEY.fingerprint, "stack": step.stack, "rollout": "shop",
        "timeout_seconds": 900,
    })
    assert Synth.to_have_resource_with_properties(out, "tsegossip_client_config", {
        "role": "web", "phase": "accept-encrypted", "from_phase": "plaintext", "batch_size": 2,
        "config_path": "/etc/consul.d/50-gossip.json",
    })
    assert Synth.to_have_resource_with_properties(out, "tsegossip_phase_gate", {"when": "before"})
    assert Synth.to_have_resource_with_properties(out, "tsegossip_phase_gate", {"when": "after"})
    assert not Synth.to_have_resource_with_properties(out, "tsegossip_client_config", {"role": "db"})
    doc = json.loads(out)
    web = _resources(doc, "tsegossip_client_config")["client-web"]
    assert decode_map(web["nodes"]) == {f"web-{i}": f"http://web-{i}.consul.internal:8500" for i in range(1, 5)}
    gates = _resources(doc, "tsegossip_phase_gate")
    assert set(decode_map(gates["gate-before"]["expected"]).values()) == {"plaintext"}
    assert set(decode_map(gates["gate-after"]["expected"]).values()) == {"accept-encrypted"}
    assert "previous_stack" not in gates["gate-before"]  # first step


def test_layout_gate_before_servers_clients_gate_after():
    plan = load_plan(ROOT / "examples" / "tse-smooth.yaml")
    _, stacks = build_app(plan)
    for stack in stacks:
        doc = json.loads(Synth.synth(stack))
        servers = _resources(doc, "tsegossip_server_params")
        clients = _resources(doc, "tsegossip_client_config")
        gates = _resources(doc, "tsegossip_phase_gate")
        assert "depends_on" not in gates["gate-before"]
        assert servers["servers"]["depends_on"] == ["tsegossip_phase_gate.gate-before"]
        for c in clients.values():
            assert c["depends_on"] == ["tsegossip_server_params.servers"]
        assert sorted(gates["gate-after"]["depends_on"]) == sorted(["tsegossip_server_params.servers"] + [
            f"tsegossip_client_config.{name}" for name in clients])


def test_sequential_client_groups_restart_one_group_after_the_other(tmp_path):
    import yaml

    doc = yaml.safe_load((ROOT / "examples" / "tse-smooth.yaml").read_text())
    doc["client_groups_restart"] = "sequential"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    plan = load_plan(path)
    assert plan.rollout.client_groups_restart == "sequential"
    _, stacks = build_app(plan)
    for stack in stacks:
        clients = _resources(json.loads(Synth.synth(stack)), "tsegossip_client_config")
        assert clients["client-web"]["depends_on"] == ["tsegossip_server_params.servers"]
        assert clients["client-api"]["depends_on"] == ["tsegossip_client_config.client-web"]
    assert load_plan(ROOT / "examples" / "tse-smooth.yaml").rollout.client_groups_restart == "parallel"


def test_self_managed_servers_listed_in_gates():
    plan = load_plan(ROOT / "examples" / "self-managed.yaml")
    _, stacks = build_app(plan)
    doc = json.loads(Synth.synth(stacks[0]))
    servers = _resources(doc, "tsegossip_server_params")["servers"]
    assert servers["server_type"] == "self-managed" and "instance_id" not in servers
    assert set(decode_map(servers["nodes"])) == {"consul-1", "consul-2", "consul-3"}
    expected = decode_map(_resources(doc, "tsegossip_phase_gate")["gate-before"]["expected"])
    assert set(expected) == {"consul-1", "consul-2", "consul-3", "edge-1", "edge-2"}


def test_direct_join_step_and_allowed_server_jump():
    plan = load_plan(ROOT / "examples" / "tse-direct.yaml")
    _, stacks = build_app(plan)
    first = json.loads(Synth.synth(stacks[0], run_validations=True))
    servers = _resources(first, "tsegossip_server_params")["servers"]
    assert (servers["from_phase"], servers["phase"], servers["allow_jump"]) == ("accept-encrypted", "enforced", True)
    assert set(decode_map(_resources(first, "tsegossip_phase_gate")["gate-before"]["expected"]).values()) == {NOT_JOINED}
    join = json.loads(Synth.synth(stacks[1], run_validations=True))
    workers = _resources(join, "tsegossip_client_config")["client-workers"]
    assert workers["joining"] is True and workers["phase"] == "enforced" and workers["batch_size"] == 3
    assert workers["depends_on"] == ["tsegossip_phase_gate.gate-before"]  # servers do not move here
    assert set(decode_map(_resources(join, "tsegossip_phase_gate")["gate-after"]["expected"]).values()) == {"enforced"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_stack_order_and_dependencies_in_manifest(example, synthesized):
    plan = load_plan(example)
    manifest = json.loads((synthesized[example.stem] / "manifest.json").read_text())
    ids = [s.stack for s in plan.steps]
    assert sorted(manifest["stacks"]) == sorted(ids)  # the manifest sorts its keys: order is in dependencies
    order, deps = [], {sid: set(m["dependencies"]) for sid, m in manifest["stacks"].items()}
    while deps:
        ready = sorted(sid for sid, d in deps.items() if d <= set(order))
        assert len(ready) == 1, f"stack order is not a chain: {ready}"
        order.append(ready[0])
        del deps[ready[0]]
    assert order == ids
    for i, sid in enumerate(ids):
        assert manifest["stacks"][sid]["dependencies"] == ([ids[i - 1]] if i else [])
        doc = stack_json(synthesized[example.stem], sid)
        for type_name in ("tsegossip_server_params", "tsegossip_client_config", "tsegossip_phase_gate"):
            for res in _resources(doc, type_name).values():
                assert res["stack"] == sid
                assert res.get("previous_stack") == (ids[i - 1] if i else None)


def _split_step():
    """tse-direct, but with the workers already joined in accept-encrypted: moving the servers
    straight to enforced would cut them off. The planner refuses it; the constructs must too."""
    rollout = spec.load(ROOT / "examples" / "tse-direct.yaml")
    workers = replace(rollout.group("workers"), joined=True, phase=Phase.ACCEPT_ENCRYPTED)
    rollout = replace(rollout, client_groups=(workers,))
    before = State(servers=Phase.ACCEPT_ENCRYPTED, clients=(("workers", Phase.ACCEPT_ENCRYPTED),))
    moves = (Move("servers", Phase.ACCEPT_ENCRYPTED, Phase.ENFORCED, 0),)
    after = before.with_phase("servers", Phase.ENFORCED)
    step = Step(1, "billing-servers-enforced", StepKind.SERVERS, before, after, moves, prove(before, moves))
    return planner.Plan(rollout, before, (step,), ()), step


def test_node_validation_fails_synth_when_phases_cannot_gossip():
    plan, step = _split_step()
    app = _cdk.App()
    stack = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, TEST_KEY))
    problems = stack.problems()
    assert problems == [
        "stack billing-servers-enforced puts servers@enforced beside workers@accept-encrypted, which cannot gossip: "
        "enforced agents verify incoming gossip and drop the plaintext that accept-encrypted agents send: "
        "'Encryption is configured but remote state is not encrypted'; allowed: equal or adjacent phases "
        "(only the direct strategy's servers-only step may split the servers transiently)"
    ]
    with pytest.raises(Exception, match=r"puts servers@enforced beside workers@accept-encrypted"):
        app.synth()


def test_node_validation_catches_a_hand_added_mover_from_the_wrong_phase():
    plan = load_plan(ROOT / "examples" / "tse-smooth.yaml")
    step = plan.steps[0]
    app = _cdk.App()
    stack = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, TEST_KEY))
    GossipClientConfig(stack, "client-rogue", GossipClientConfigProps(
        rollout="shop", stack=step.stack, key_env="TSEGOSSIP_KEY", key_fingerprint=TEST_KEY.fingerprint,
        http_addr="http://x:8500", group="api", phase="send-encrypted", from_phase="accept-encrypted",
        nodes={"api-1": "http://api-1:8500"}, config_path="/c.json", restart_command="true"))
    problems = stack.problems()
    assert "client-rogue: moves api from accept-encrypted, but before this step api are plaintext" in problems
    assert any("puts servers@plaintext beside api@send-encrypted" in p for p in problems)
    with pytest.raises(Exception, match=r"client-rogue: moves api from accept-encrypted"):
        Synth.synth(stack, run_validations=True)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_planned_stacks_pass_validation(example):
    _, stacks = build_app(load_plan(example))
    for s in stacks:
        assert s.problems() == []


def test_state_dir_gives_each_stack_its_own_state_file(tmp_path):
    from tsegossip.constructs import PhaseStack, PhaseStackProps
    from tsegossip.constructs._cdk import App

    plan = load_plan(ROOT / "examples" / "tse-smooth.yaml")
    app = App(outdir=str(tmp_path / "out"))
    previous = None
    for step in plan.steps:
        previous = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, TEST_KEY, previous,
                                                                         state_dir="/var/lib/tsegossip/"))
    app.synth()
    for step in plan.steps:
        doc = stack_json(tmp_path / "out", step.stack)
        assert doc["terraform"]["backend"]["local"]["path"] == f"/var/lib/tsegossip/{step.stack}.tfstate"


def test_fails_state_dir_empty():
    plan = load_plan(ROOT / "examples" / "tse-smooth.yaml")
    with pytest.raises(Exception, match=r"state_dir: '  ' given; allowed: a directory path or None"):
        PhaseStackProps.for_step(plan, plan.steps[0], TEST_KEY, None, state_dir="  ")
