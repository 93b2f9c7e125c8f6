"""The repair stack: main.py synthesizes it beside the steps from a TSEGOSSIP_REPAIR request."""

from __future__ import annotations

import json

from tsegossip import repairplan
from tsegossip.phases import Phase

from .conftest import ROOT, TEST_KEY, decode_map, load_plan
from .test_main import _main, _one_clear_error

EXAMPLE = ROOT / "examples" / "self-managed.yaml"


def _attrs(doc: dict, rtype: str) -> dict[str, dict]:
    return doc["resource"].get(rtype, {})


def test_main_adds_the_repair_stack_with_only_the_stragglers_and_no_key(tmp_path):
    plan = load_plan(EXAMPLE)
    last = plan.steps[-1].stack
    request = tmp_path / "request.json"
    request.write_text(json.dumps(repairplan.request_doc(last, {"edge-2": Phase.PLAINTEXT,
                                                                "consul-3": Phase.SEND_ENCRYPTED})))
    done = _main(tmp_path, TSEGOSSIP_SPEC=str(EXAMPLE), TSEGOSSIP_KEY=TEST_KEY.reveal(),
                 TSEGOSSIP_REPAIR=str(request))
    assert done.returncode == 0, done.stderr
    repair = repairplan.from_request(plan, json.loads(request.read_text()))
    stacks = sorted(p.name for p in (tmp_path / "cdktf.out" / "stacks").iterdir())
    assert stacks == sorted([*(s.stack for s in plan.steps), repair.stack])
    path = tmp_path / "cdktf.out" / "stacks" / repair.stack / "cdk.tf.json"
    text = path.read_text()
    assert TEST_KEY.reveal() not in text
    doc = json.loads(text)
    [client] = _attrs(doc, "tsegossip_client_config").values()
    assert list(decode_map(client["nodes"])) == ["edge-2"]
    assert (client["from_phase"], client["phase"], client["allow_jump"]) == ("plaintext", "enforced", True)
    [servers] = _attrs(doc, "tsegossip_server_params").values()
    assert list(decode_map(servers["nodes"])) == ["consul-3"] and servers["from_phase"] == "send-encrypted"
    gates = _attrs(doc, "tsegossip_phase_gate")
    before, after = gates["gate-before"], gates["gate-after"]
    assert decode_map(before["repairing"]) == {"consul-3": "send-encrypted", "edge-2": "plaintext"}
    assert "edge-2" not in decode_map(before["expected"]) and decode_map(after["expected"])["edge-2"] == "enforced"
    assert set(client["depends_on"]) == {f"tsegossip_server_params.{n}" for n in _attrs(doc, "tsegossip_server_params")}


def test_a_bad_repair_request_is_one_clear_error(tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"at": "today", "stragglers": {"laptop": "plaintext"}}))
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(EXAMPLE), TSEGOSSIP_KEY=TEST_KEY.reveal(),
                                  TSEGOSSIP_REPAIR=str(request)))
    assert "'laptop' is not a node of the spec" in line
    line = _one_clear_error(_main(tmp_path, TSEGOSSIP_SPEC=str(EXAMPLE), TSEGOSSIP_KEY=TEST_KEY.reveal(),
                                  TSEGOSSIP_REPAIR=str(tmp_path / "missing.json")))
    assert "TSEGOSSIP_REPAIR: cannot read" in line
