import base64
import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsegossip import spec
from tsegossip.spec import reading
from tsegossip.errors import SpecError
from tsegossip.phases import Phase
from tests.support import EXAMPLES, TEST_KEY

BASE = {
    "name": "shop",
    "strategy": "smooth",
    "key_env": "TSEGOSSIP_KEY",
    "servers": {"type": "tse", "phase": "plaintext", "http_addr": "http://tse.test:8500",
                "instance_id": "ins-7f3a9c2e", "region": "ap-guangzhou"},
    "client_groups": [
        {"name": "web", "phase": "plaintext", "config_path": "/etc/consul.d/g.json",
         "restart_command": "systemctl restart consul", "nodes": [{"name": "web-1", "http_addr": "http://web-1.test:8500"}]},
    ],
}


def problems(doc):
    with pytest.raises(SpecError) as err:
        spec.parse(doc)
    return [str(p) for p in err.value.problems]


def edited(**paths):
    doc = copy.deepcopy(BASE)
    for path, value in paths.items():
        node = doc
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is ...:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return doc


def test_examples_load():
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"tse-smooth.yaml", "tse-direct.yaml", "self-managed.yaml"} <= names
    for p in EXAMPLES.glob("*.yaml"):
        spec.load(p)


def test_defaults_come_from_the_schema():
    r = spec.parse(BASE)
    assert r.target is Phase.ENFORCED
    assert r.client_groups[0].joined is True
    assert r.client_groups[0].batch_size == 1
    assert r.consul.token_env == "CONSUL_HTTP_TOKEN"
    assert r.timeouts.tse_seconds == 900


def test_model_is_frozen():
    r = spec.parse(BASE)
    with pytest.raises(Exception):
        r.name = "x"


def test_fails_client_groups_restart_outside_the_allowed_set():
    assert problems(edited(client_groups_restart="serial")) == [
        "client_groups_restart: 'serial' is not allowed; allowed: parallel, sequential"
    ]


def test_fails_unknown_field():
    assert problems(edited(colour="blue")) == [
        "colour: unknown field 'colour'; allowed: client_groups, client_groups_restart, consul, key_env, "
        "key_fingerprint, name, rotate_to_env, rotate_to_fingerprint, servers, strategy, target, timeouts, "
        "unmanaged"
    ]


def test_fails_unknown_field_in_group():
    [p] = problems(edited(client_groups__0__size=3))
    assert p.startswith("client_groups[0].size: unknown field 'size'; allowed: batch_size, config_path, data_dir, delivery, down_nodes, joined, name")


def test_fails_wrong_type():
    assert problems(edited(client_groups__0__joined="yes")) == [
        "client_groups[0].joined: 'yes' has the wrong type (str); expected boolean"
    ]


def test_fails_unknown_phase():
    assert problems(edited(servers__phase="half")) == [
        "servers.phase: 'half' is not allowed; allowed: plaintext, accept-encrypted, send-encrypted, enforced"
    ]


def test_fails_unknown_strategy():
    assert problems(edited(strategy="fast")) == ["strategy: 'fast' is not allowed; allowed: smooth, direct"]


def test_fails_unknown_server_type():
    [p] = problems(edited(servers__type="k8s"))
    assert p == "servers.type: 'k8s' is not allowed; allowed: tse, self-managed"


def test_fails_tse_without_instance_id():
    assert problems(edited(servers__instance_id=...)) == ["servers.instance_id: is required"]


def test_fails_self_managed_fields_on_tse():
    [p] = problems(edited(servers__restart_command="x"))
    assert p.startswith("servers.restart_command: unknown field 'restart_command'; allowed:")


def test_fails_duplicate_group_names():
    doc = copy.deepcopy(BASE)
    second = copy.deepcopy(doc["client_groups"][0])
    second["nodes"] = [{"name": "web-2", "http_addr": "http://web-2.test:8500"}]
    doc["client_groups"].append(second)
    assert problems(doc) == [
        "client_groups[1].name: duplicate group name 'web'; already used by client_groups[0]; group names are unique"
    ]


def test_fails_duplicate_node_names():
    doc = copy.deepcopy(BASE)
    doc["client_groups"][0]["nodes"].append({"name": "web-1", "http_addr": "http://x.test:8500"})
    assert problems(doc) == [
        "client_groups[0].nodes[1].name: duplicate node name 'web-1'; already used at client_groups[0].nodes[0]; "
        "node names are unique across the cluster"
    ]


def test_fails_empty_node_list():
    assert problems(edited(client_groups__0__nodes=[])) == ["client_groups[0].nodes: must list at least 1 item(s); got 0"]


def test_fails_batch_size_below_one():
    assert problems(edited(client_groups__0__batch_size=0)) == ["client_groups[0].batch_size: 0 is out of range; allowed: >= 1"]


def test_fails_literal_key_field():
    [p] = problems(edited(encrypt=TEST_KEY))
    assert p.startswith("encrypt: a literal gossip key does not belong in the spec")
    assert "key_env" in p
    assert TEST_KEY not in p


def test_fails_literal_key_in_key_env():
    [p] = problems(edited(key_env=TEST_KEY))
    assert p.startswith("key_env: this value looks like a literal gossip key")
    assert TEST_KEY not in p


def test_fails_literal_token():
    [p] = problems(edited(consul={"token": "abc"}))
    assert p.startswith("consul.token: a literal ACL token does not belong in the spec")


def test_fails_uuid_token_value():
    [p] = problems(edited(consul={"token_env": "0b1c2d3e-1111-2222-3333-444455556666"}))
    assert "looks like a literal ACL token" in p


def test_fails_bad_yaml(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        spec.load(f)


def test_fails_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        spec.load(tmp_path / "none.yaml")


def test_json_spec(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(BASE))
    assert spec.load(f).name == "shop"


# --- properties -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["name", "strategy", "target", "key_env", "servers", "client_groups", "consul", "timeouts", "extra"]


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_any_mutation_is_accepted_or_explained(field, value):
    """Whatever lands in a field, parse either builds the model or raises SpecError whose
    every problem names a path; nothing else escapes."""
    doc = copy.deepcopy(BASE)
    doc[field] = value
    try:
        r = spec.parse(doc)
    except SpecError as err:
        assert err.problems
        for p in err.problems:
            assert p.message
    else:
        assert isinstance(r, spec.Rollout)


@given(st.binary(min_size=16, max_size=32).filter(lambda b: len(b) in (16, 24, 32)),
       st.sampled_from(["name", "key_env", "client_groups__0__config_path", "servers__http_addr"]))
def test_any_key_pasted_anywhere_is_refused(raw, where):
    key = base64.b64encode(raw).decode()
    found = problems(edited(**{where: key}))
    assert any("literal gossip key" in p for p in found)
    assert all(key not in p for p in found)


def test_fails_a_fifo_at_once_instead_of_blocking(tmp_path):
    import os
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):
        spec.read_document(fifo)  # opening a FIFO for reading would block until a writer came


def test_fails_a_symlink_loop_naming_it(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    with pytest.raises(SpecError, match="a.yaml: Too many levels of symbolic links"):
        spec.read_document(tmp_path / "a.yaml")


def test_fails_a_spec_over_the_size_limit_before_reading_it(tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    big.write_text("{}" + " " * 200)
    monkeypatch.setattr(reading, "MAX_SPEC_BYTES", 100)  # where read_document looks it up
    monkeypatch.setattr(type(big), "read_text", lambda *a, **k: pytest.fail("read although too large"))
    with pytest.raises(SpecError, match=r"big.json is 202 bytes; a spec may be at most 100 bytes"):
        spec.read_document(big)


def test_yaml_syntax_errors_give_line_and_column(tmp_path):
    # issue 18: libyaml's own error, with where it is (the pure-Python reparse is gone: it took seconds on 1 MB)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError) as err:
        spec.read_document(bad)
    [p] = [str(q) for q in err.value.problems]
    assert p == (f"{bad} is not valid YAML: line 2, column 1 (in name[1]): did not find expected ',' or ']' "
                 "(while parsing a flow sequence at line 1, column 7)")


# --- issue 18: data only, bounded ------------------------------------------------------------

def _yaml(tmp_path, text):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as err:
        spec.load(f)
    return [str(p) for p in err.value.problems]


def test_yaml_is_read_as_yaml_1_2_core_data(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("a: 2024-01-01\nb: 1:30\nc: yes\nd: 0o17\ne: 0x1f\nf: 1e3\ng: ~\nh: True\ni: '5'\nj: !!str 5\nk: -.inf\n")
    assert spec.read_document(f) == {"a": "2024-01-01", "b": "1:30", "c": "yes", "d": 15, "e": 31, "f": 1000.0,
                                     "g": None, "h": True, "i": "5", "j": "5", "k": float("-inf")}


def test_fails_yaml_aliases_at_once(tmp_path):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    [p] = _yaml(tmp_path, bomb)
    assert p.endswith("b[0]: YAML aliases (*name) are not allowed; write the value out (line 2, column 8)")


def test_fails_duplicate_fields_in_yaml_and_json(tmp_path):
    [p] = _yaml(tmp_path, "name: a\nservers: {type: tse}\nname: b\n")
    assert p == "name: duplicate field; each field may appear once in a mapping (line 3, column 1)"
    f = tmp_path / "s.json"
    f.write_text('{"servers": {"type": "tse", "type": "x"}}')
    with pytest.raises(SpecError) as err:
        spec.load(f)
    assert [str(q) for q in err.value.problems] == ["servers.type: duplicate field; each field may appear once in an object"]


def test_fails_tags_non_string_field_names_depth_and_huge_integers(tmp_path):
    assert _yaml(tmp_path, "name: !!binary aGk=\n")[0].endswith(
        "name: YAML tag !!binary is not allowed; a spec holds only strings, numbers, booleans, null, lists and mappings (line 1, column 7)")
    assert _yaml(tmp_path, "servers:\n  1: x\n")[0].endswith("servers: field name 1 is not a string (int); quote it (line 2, column 3)")
    assert "nested deeper than 32 levels" in _yaml(tmp_path, "name: " + "[" * 40 + "]" * 40 + "\n")[0]
    assert _yaml(tmp_path, "name: " + "7" * 5000 + "\n")[0].endswith("name: an integer of 5000 digits; at most 100 (line 1, column 7)")


def test_fails_values_no_json_holds_even_in_memory():
    import datetime
    doc = copy.deepcopy(BASE)
    doc["name"] = datetime.date(2024, 1, 1)
    doc["timeouts"] = {"poll_seconds": float("nan")}
    doc["client_groups"][0][3] = "x"
    assert problems(doc) == [
        "client_groups[0]: field name 3 is not a string (int); quote it",
        "name: a date value has the wrong type; a spec holds only strings, numbers, booleans, null, lists and mappings",
        "timeouts.poll_seconds: nan is not a finite number",
    ]


def test_fails_the_key_from_key_env_in_any_encoding_anywhere(monkeypatch):
    from tests.support import derived_key
    key = derived_key("tsegossip test_spec key_env key")
    raw = base64.b64decode(key)
    monkeypatch.setenv("TSEGOSSIP_KEY", key)
    for form in (key, base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex().upper()):
        [p] = problems(edited(client_groups__0__restart_command=f"ssh {{node}} K={form} restart"))
        assert p.startswith("client_groups[0].restart_command: this value holds the gossip key")
        assert form not in p


def test_fails_templates_paths_ports_and_batch_sizes_at_validate_time():
    assert problems(edited(client_groups__0__restart_command="ssh {node.__class__}")) == [
        "client_groups[0].restart_command: '{node.__class__}' reaches into a value (attribute or index access is not "
        "allowed); allowed placeholders: {node}, {config_path}, {http_addr} (write {{ and }} for literal braces)"]
    [p] = problems(edited(client_groups__0__config_path="/etc/../g.json"))
    assert p.startswith("client_groups[0].config_path: '/etc/../g.json' is not an absolute, normalised file path")
    [p] = problems(edited(servers__http_addr="http://tse.test:65536"))
    assert p.startswith("servers.http_addr: 'http://tse.test:65536' is not an address like http://host:8500")
    assert problems(edited(client_groups__0__batch_size=1001)) == ["client_groups[0].batch_size: 1001 is out of range; allowed: <= 1000"]


def test_many_problems_stop_at_a_screenful():
    doc = copy.deepcopy(BASE)
    doc["client_groups"][0]["nodes"] = [{"name": f"bad name {i}", "http_addr": "x"} for i in range(500)]
    found = problems(doc)
    assert len(found) == spec.MAX_PROBLEMS + 1
    assert found[-1] == f"stopped after {spec.MAX_PROBLEMS} problems; fix these and run again"
