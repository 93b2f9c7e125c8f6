"""The delivery block in the spec: defaults from the schema, each bad field named with its value and
what is allowed, and the canonical attribute the provider receives (and checks again)."""

import pytest

from tsegossip import spec
from tsegossip.delivery import Delivery, DeliveryError, Method
from tests.test_spec import edited, problems

SSH = {"method": "ssh", "known_hosts": "/etc/tsegossip/known_hosts"}


def test_no_block_is_local_on_the_runner():
    r = spec.parse(edited())
    assert r.client_groups[0].delivery == Delivery()
    assert r.client_groups[0].delivery.where() == "local (on the runner)"


def test_ssh_defaults_come_from_the_schema():
    d = spec.parse(edited(client_groups__0__delivery=SSH)).client_groups[0].delivery
    assert (d.method, d.host, d.port, d.user, d.sudo, d.mode, d.timeout_seconds, d.connect_timeout_seconds) == \
        (Method.SSH, "{node}", 22, "root", False, "0600", 60, 10)
    assert d.identity_env is None and d.jump_host is None and d.owner is None


def test_canonical_attribute_round_trips():
    doc = {**SSH, "host": "{http_host}", "jump_host": {"host": "bastion.test"}, "sudo": True, "user": "deploy",
           "identity_env": "SSH_KEY_FILE", "owner": "consul", "group": "consul", "mode": "0640"}
    d = spec.parse(edited(client_groups__0__delivery=doc)).client_groups[0].delivery
    assert Delivery.from_json(d.to_json()) == d
    assert d.host_for("web-1", "http://10.1.2.3:8500") == "10.1.2.3"
    assert d.where() == "ssh deploy@{http_host}:22 via bastion.test (sudo -n)"


@pytest.mark.parametrize("block, expected", [
    ({"method": "scp"}, "client_groups[0].delivery.method: 'scp' is not allowed; allowed: local, ssh, command"),
    ({"method": "ssh"}, "client_groups[0].delivery.known_hosts: is required"),
    ({**SSH, "port": 0}, "client_groups[0].delivery.port: 0 is out of range; allowed: >= 1"),
    ({**SSH, "port": 70000}, "client_groups[0].delivery.port: 70000 is out of range; allowed: <= 65535"),
    ({**SSH, "mode": "0644"}, "client_groups[0].delivery.mode: '0644' is not an octal file mode with no access "
                              "for others, like 0600 or 0640"),
    ({**SSH, "known_hosts": "known_hosts"}, "client_groups[0].delivery.known_hosts: 'known_hosts' is not an "
                                            "absolute file path"),
    ({**SSH, "host": "{nodes}.x"}, "client_groups[0].delivery.host: '{nodes}' is not a placeholder of this field; "
                                   "allowed placeholders: {node}, {http_host}"),
    ({**SSH, "user": "Root!"}, "client_groups[0].delivery.user: 'Root!' is not a login name"),
    ({**SSH, "identity_env": "1X"}, "client_groups[0].delivery.identity_env: '1X' does not match"),
    ({**SSH, "sudo": "yes"}, "client_groups[0].delivery.sudo: 'yes' has the wrong type (str); expected boolean"),
    ({**SSH, "jump_host": {"host": "b", "via": "c"}}, "client_groups[0].delivery.jump_host.via: unknown field"),
    ({**SSH, "command": ["x"]}, "client_groups[0].delivery.command: unknown field 'command'"),
    ({"method": "command"}, "client_groups[0].delivery.command: is required"),
    ({"method": "command", "command": []}, "client_groups[0].delivery.command: must list at least 1 item(s)"),
    ({"method": "command", "command": ["a\nb"]}, "client_groups[0].delivery.command[0]: 'a\\nb' is not an "
                                                 "argument without control characters"),
    ({"method": "local", "host": "x"}, "client_groups[0].delivery.host: unknown field 'host'; allowed: method"),
])
def test_bad_delivery_fields_are_named(block, expected):
    found = problems(edited(client_groups__0__delivery=block))
    assert any(p.startswith(expected) for p in found), found


def test_the_provider_checks_the_attribute_against_the_same_schema():
    with pytest.raises(DeliveryError) as err:
        Delivery.from_json('{"method":"ssh","known_hosts":"/k","port":"22"}')
    assert "delivery.port: '22' has the wrong type (str); expected integer" in str(err.value)
    with pytest.raises(DeliveryError) as err:
        Delivery.from_json("[1]")
    assert "expected an object with `method`" in str(err.value)
    with pytest.raises(DeliveryError) as err:
        Delivery.from_json("{not json")
    assert "delivery: not JSON" in str(err.value)


def test_down_nodes_defaults_to_refuse_and_takes_skip():
    assert spec.parse(edited()).client_groups[0].down_nodes == "refuse"
    assert spec.parse(edited(client_groups__0__down_nodes="skip")).client_groups[0].down_nodes == "skip"
    found = problems(edited(client_groups__0__down_nodes="ignore"))
    assert found == ["client_groups[0].down_nodes: 'ignore' is not allowed; allowed: refuse, skip"]
