"""The fast path must never change an answer.

A valid spec is checked by the compiled validator (jsonschema-rs), defaults come from a compiled
filler, secrets from a superset test; the detailed validator (jsonschema) writes every message. Each
fast part is run here beside its slow counterpart on every example and test fixture and on a few
thousand generated variations of them: any disagreement on validity is a bug.
"""
from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsegossip import schemas, spec
from tsegossip.agentconfig import fragment
from tsegossip.errors import SpecError
from tsegossip.keys import GossipKey
from tsegossip.phases import Phase
from tests.support import json_paths as _paths, EXAMPLES, TEST_KEY

ROOT = Path(__file__).resolve().parents[1]
SPECS = [spec.read_document(p) for p in sorted(EXAMPLES.glob("*.yaml"))] + [
    json.loads(p.read_text()) for p in sorted((ROOT / "tests").rglob("*.json")) if "spec" in p.name]
FRAGMENTS = [fragment(p, GossipKey(TEST_KEY), reveal=True) for p in Phase] + [{}]  # in memory only


def slow_valid(name: str, doc) -> bool:
    return not any(schemas.reference_validator(name).iter_errors(doc))  # jsonschema alone, every item walked


def fast_valid(name: str, doc) -> bool:
    try:
        return schemas.fast_validator(name).is_valid(doc)
    except (ValueError, TypeError, OverflowError):
        return slow_valid(name, doc)  # what schemas.is_valid does with values outside JSON


def reference_defaults(root: dict, schema: dict, value):
    """The straightforward walk that the compiled filler replaced (kept here as the oracle)."""
    schema = schemas._resolve(root, schema)
    if isinstance(value, dict):
        branches = [schema]
        for sub in schema.get("allOf", []):
            cond = sub.get("if", {}).get("properties", {})
            if all(value.get(k) == c.get("const") for k, c in cond.items()):
                branches.append(schemas._resolve(root, sub.get("then", {})))
        out = dict(value)
        for branch in branches:
            for prop, sub in branch.get("properties", {}).items():
                sub_r = schemas._resolve(root, sub)
                if prop not in out and "default" in sub_r:
                    out[prop] = sub_r["default"]
                elif prop not in out and "default" in sub:
                    out[prop] = sub["default"]
                elif prop in out:
                    out[prop] = reference_defaults(root, sub, out[prop])
        return out
    if isinstance(value, list) and "items" in schema:
        return [reference_defaults(root, schema["items"], v) for v in value]
    return value


def _key_like() -> str:
    return base64.b64encode(bytes(range(7, 39))).decode()  # made at run time: no key sits in the repo


ODD_STRINGS = ["", " ", "web-1\n", "web-1 ", "\nweb-1", "WEB", "a" * 64, "a" * 63, "ins-ab", "ins-abcd",
               "http://x:8500", "http://x:8500/", "https://[::1]:8500", "ftp://x", "http://x:123456",
               "enforced", "plaintext", "accept-encrypted", "send-encrypted", "tse", "self-managed",
               "smooth", "direct", "ap-guangzhou", "é", "web_1", "1web", "-web",
               # issue 18's rules: ports, hosts, paths, templates
               "http://x:0", "http://x:1", "http://x:65535", "http://x:65536", "http://x:08500", "http://:8500",
               "http://a..b:8500", "http://-a:8500", "http://a-:8500", "http://10.0.0.1", "http://x:8500\n",
               "/etc/c.json", "/etc/{node}.json", "/etc/{node}/../c.json", "/etc/./c.json", "/etc//c.json",
               "/etc/", "/", "etc/c.json", "/etc/{http_addr}.json", "/etc/{config_path}", "/etc/{{node}}.json",
               "/etc/...", "/etc/.hidden", "/etc/c.json\n", "/etc/{node", "/etc/node}",
               "ssh {node} restart", "ssh {nope}", "ssh {0}", "ssh {}", "ssh {node.__init__}", "ssh {node[0]}",
               "ssh {node!r}", "ssh {node:>9}", "r {config_path} {http_addr}", "a\tb", "a\nb", "{{}}", "{{node}}"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 5000), st.floats(allow_nan=False, width=32),
                    st.sampled_from([999, 1000, 1001, 10 ** 30]),
                    st.sampled_from(ODD_STRINGS), st.text(max_size=12),
                    st.sampled_from(["KEY", "UUID"]).map(lambda w: _key_like() if w == "KEY" else str(uuid.UUID(int=7))))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(["name", "x", "nodes", "phase"]), inner, max_size=3)),
                      max_leaves=6)


@st.composite
def variations(draw, bases):
    doc = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["same-kind", "same-kind", "same-kind", "replace", "delete", "add"]))
        last = path[-1]
        old = parent[last]
        if op == "same-kind" and isinstance(old, str):  # mostly still valid: probes the patterns
            parent[last] = draw(st.one_of(st.sampled_from(ODD_STRINGS), st.from_regex(r"[a-z][a-z0-9-]{0,8}\n?", fullmatch=True)))
        elif op == "same-kind" and isinstance(old, bool):
            parent[last] = not old
        elif op == "same-kind" and isinstance(old, (int, float)):
            parent[last] = draw(st.one_of(st.integers(-1, 100000), st.floats(-1, 5, allow_nan=False)))
        elif op == "same-kind" and isinstance(old, list):
            parent[last] = old + copy.deepcopy(old[:1])
        elif op in ("replace", "same-kind"):
            parent[last] = draw(values)
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "batch_size", "joined", "nodes", "encrypt", "token", "target"]))] = draw(values)
        else:
            parent.append(draw(values))
    return doc


def test_every_example_and_fixture_agrees():
    assert len(SPECS) >= 3
    for doc in SPECS:
        assert fast_valid("rollout", doc) == slow_valid("rollout", doc) is True
        root = schemas.load("rollout")
        assert schemas.apply_defaults("rollout", doc) == reference_defaults(root, root, doc)
    for doc in FRAGMENTS:
        assert fast_valid("agent-gossip-config", doc) == slow_valid("agent-gossip-config", doc)


@settings(max_examples=3000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(variations(SPECS))
def test_generated_specs_agree_on_validity_defaults_secrets_and_messages(doc):
    valid = slow_valid("rollout", doc)
    assert fast_valid("rollout", doc) == valid, json.dumps(doc, default=str)[:400]
    root = schemas.load("rollout")
    assert schemas.apply_defaults("rollout", doc) == reference_defaults(root, root, doc)
    if spec._secret_problems(doc, []):
        assert spec._may_hold_secrets(doc)
    # the detailed validator's shortcut (valid items are not walked again) changes no message
    assert schemas.problems("rollout", doc) == schemas.problems("rollout", doc, using=schemas.reference_validator("rollout"))
    # the whole parse: same model or same messages, whichever validator ran
    fast = _outcome(doc)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schemas, "is_valid", lambda name, d: False)  # force the detailed path
        mp.setattr(spec, "_may_hold_secrets", lambda d, *gathered: True)
        slow = _outcome(doc)
    assert fast == slow


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(variations(FRAGMENTS[:-1]))
def test_generated_fragments_agree(doc):
    assert fast_valid("agent-gossip-config", doc) == slow_valid("agent-gossip-config", doc)


def _outcome(doc):
    try:
        return spec.parse(copy.deepcopy(doc), "s.yaml")
    except SpecError as err:
        return [str(p) for p in err.problems]


def test_fails_a_name_with_a_trailing_newline_on_both_paths():
    # Python's `$` matches before a final newline; JSON Schema's (ECMA-262) does not.
    doc = copy.deepcopy(SPECS[0])
    doc["client_groups"][0]["nodes"][0]["name"] = "web-1\n"
    assert not fast_valid("rollout", doc) and not slow_valid("rollout", doc)
    assert any("nodes[0].name" in p and "does not match" in p for p in _outcome(doc))


def test_a_key_hidden_in_a_node_list_is_still_found():
    doc = copy.deepcopy(SPECS[0])
    doc["client_groups"][0]["nodes"].append({"name": _key_like(), "http_addr": "http://x:8500"})
    assert spec._may_hold_secrets(doc)
    assert any("looks like a literal gossip key" in p for p in _outcome(doc))


@pytest.mark.parametrize("field", ["servers.http_addr", "client_groups.0.nodes.0.http_addr", "client_groups.0.config_path",
                                   "client_groups.0.restart_command", "client_groups.0.batch_size"])
def test_every_odd_value_in_every_rule_bearing_field_agrees(field):
    # issue 18 tightened these fields (ports, normalised paths, template placeholders, batch bound)
    for value in [*ODD_STRINGS, 0, 1, 999, 1000, 1001, 10 ** 30]:
        doc = copy.deepcopy(SPECS[0])
        node = doc
        *parents, last = field.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
        assert fast_valid("rollout", doc) == slow_valid("rollout", doc), (field, value)
        assert _outcome(doc) == _outcome_slow(doc), (field, value)


def _outcome_slow(doc):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schemas, "is_valid", lambda name, d: False)
        mp.setattr(spec, "_may_hold_secrets", lambda d, *gathered: True)
        return _outcome(doc)
