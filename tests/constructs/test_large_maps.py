"""A large fleet's per-node maps go to files beside the stack (named by their content's
hash) and the attributes read them with `jsondecode(file(...))`; small maps stay inline."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tsegossip import planner, spec
from tsegossip.constructs import jsondecode_expression
from tsegossip.constructs.encoding import MAPS_DIR, SPILL_MIN_CHARS, encode_map, file_expression, map_json

from .conftest import TEST_KEY, build_app, decode_map, stack_json

FILE_REF = re.compile(r'^\$\{jsondecode\(file\("\$\{path\.module\}/(assets/tsegossip-maps/by-content/[0-9a-f]{16}\.json)"\)\)\}$')


def fleet(per_group: int, groups: int = 2) -> spec.Rollout:
    doc = {
        "name": "big", "strategy": "smooth", "target": "enforced", "key_env": "TSEGOSSIP_KEY",
        "servers": {"type": "self-managed", "phase": "plaintext", "http_addr": "http://consul.internal:8500",
                    "config_path": "/etc/consul.d/50-gossip.json", "restart_command": "ssh {node} true",
                    "nodes": [{"name": f"consul-{i}", "http_addr": f"http://consul-{i}.internal:8500"} for i in range(3)]},
        "client_groups": [
            {"name": f"g{g}", "phase": "plaintext", "config_path": "/etc/consul.d/50-gossip.json",
             "restart_command": "ssh {node} true", "batch_size": 10,
             "nodes": [{"name": f"g{g}-n{i:04d}", "http_addr": f"http://g{g}-n{i:04d}.internal:8500"}
                       for i in range(per_group)]}
            for g in range(groups)],
    }
    return spec.parse(doc, "test fleet")


def resolve(value: str, stack_dir: Path) -> dict:
    """Read an attribute back the way Terraform does: inline jsondecode, or the file it names."""
    m = FILE_REF.match(value)
    if m:
        return json.loads((stack_dir / m.group(1)).read_text())
    return decode_map(value)


def test_encode_map_inline_below_threshold_and_file_above():
    small = {"a": "b"}
    seen: dict[str, str] = {}
    assert encode_map(small, seen.__setitem__) == jsondecode_expression(small)
    assert not seen
    big = {f"node-{i:05d}": f"http://node-{i:05d}.internal:8500" for i in range(200)}
    text = map_json(big)
    assert len(text) >= SPILL_MIN_CHARS
    ref = encode_map(big, seen.__setitem__)
    name = hashlib.sha256(text.encode()).hexdigest()[:16] + ".json"
    assert ref == file_expression(name) and FILE_REF.match(ref)
    assert seen == {name: text}
    # without a place to put files, a large map stays inline (the json baseline and old callers)
    assert encode_map(big) == jsondecode_expression(big)


def test_large_fleet_stacks_read_their_maps_from_files(tmp_path):
    rollout = fleet(150)
    plan = planner.plan(rollout)
    app, stacks = build_app(plan, TEST_KEY, str(tmp_path))
    app.synth()
    for step in plan.steps:
        stack_dir = tmp_path / "stacks" / step.stack
        doc = stack_json(tmp_path, step.stack)
        files = {p.name for p in (stack_dir / MAPS_DIR).iterdir()}
        referenced = set()
        for group in rollout.client_groups:
            nodes = doc["resource"]["tsegossip_client_config"][f"client-{group.name}"]["nodes"]
            assert FILE_REF.match(nodes), nodes[:80]
            referenced.add(Path(FILE_REF.match(nodes).group(1)).name)
            assert resolve(nodes, stack_dir) == {n.name: n.http_addr for n in group.nodes}
        gate = doc["resource"]["tsegossip_phase_gate"]["gate-after"]
        expected = resolve(gate["expected"], stack_dir)
        assert len(expected) == 3 + 2 * 150 and set(expected.values()) == {step.after.phase_of("g0").value}
        referenced |= {Path(FILE_REF.match(v).group(1)).name
                       for r in doc["resource"]["tsegossip_phase_gate"].values()
                       for v in (r["expected"], r["addresses"]) if FILE_REF.match(v)}
        # the servers' three nodes stay inline; every file is referenced, and nothing else is there
        assert not FILE_REF.match(doc["resource"].get("tsegossip_server_params", {}).get("servers", {}).get("nodes", ""))
        assert files == referenced
        for name in files:  # named by content
            assert hashlib.sha256((stack_dir / MAPS_DIR / name).read_bytes()).hexdigest()[:16] + ".json" == name


def test_synth_again_replaces_the_map_folder(tmp_path):
    first = planner.plan(fleet(150))
    app, _ = build_app(first, TEST_KEY, str(tmp_path))
    app.synth()
    stack = first.steps[0].stack
    folder = tmp_path / "stacks" / stack / MAPS_DIR
    before = {p.name for p in folder.iterdir()}
    second = planner.plan(fleet(160))  # other nodes: other contents, other names
    assert second.steps[0].stack == stack
    app2, _ = build_app(second, TEST_KEY, str(tmp_path))
    app2.synth()
    after = {p.name for p in folder.iterdir()}
    assert after and not (before & after), "files of the earlier synth must not linger"


def test_small_cluster_has_no_map_files(synthesized):
    for outdir in synthesized.values():
        assert not list(outdir.rglob("tsegossip-maps")), "the bundled examples' maps are small: inline"


@pytest.mark.parametrize("per_group", [150])
def test_testing_synth_of_a_large_stack_names_files(per_group):
    """cdktf's Testing.synth (no outdir of its own) gives the same references."""
    from tsegossip.constructs import _cdk
    plan = planner.plan(fleet(per_group))
    _, stacks = build_app(plan)
    doc = json.loads(_cdk.Testing.synth(stacks[0]))
    assert FILE_REF.match(doc["resource"]["tsegossip_client_config"]["client-g0"]["nodes"])
