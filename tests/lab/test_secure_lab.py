"""A secure lab (ACLs default deny, HTTPS API): tsegossip's least-privilege token reads what it needs,
and a token or CA that falls short is named precisely (rule, address, certificate problem)."""
import os
import stat
import subprocess

import pytest

from tsegossip import lab, observe


@pytest.fixture(scope="module")
def secure_lab(tmp_path_factory, lab_binary):
    with lab.running_lab(tmp_path_factory.mktemp("secure"), servers=1, clients=1, groups=1, binary=lab_binary,
                         secure=True) as c:
        yield c


@pytest.fixture
def access(monkeypatch, secure_lab):
    monkeypatch.setenv("LAB_CA", secure_lab.ca_file)
    return observe.Access(token_env="LAB_TOKEN", cacert_env="LAB_CA")


def test_secure_lab_layout(secure_lab):
    assert all(n.http_addr.startswith("https://127.0.0.1:") for n in secure_lab.nodes)
    token_file = secure_lab.servers[0].token_file
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    for n in secure_lab.nodes:  # the management token sits in the base config: private too
        assert stat.S_IMODE(os.stat(os.path.join(n.config_dir, "00-base.json")).st_mode) == 0o600


def test_default_deny_without_a_token_lists_no_member(secure_lab, access):
    # Consul filters the members out silently (anonymous token, default deny); we refuse the list
    with pytest.raises(observe.ObserveError, match="left members out"):
        observe.members(secure_lab.servers[0].http_addr, access)


def test_least_privilege_token_reads_everything_tsegossip_needs(secure_lab, access, monkeypatch):
    monkeypatch.setenv("LAB_TOKEN", lab.create_token(secure_lab))
    server, client = secure_lab.servers[0], secure_lab.clients[0]
    assert observe.members(server.http_addr, access) == {server.name: "alive", client.name: "alive"}
    view = observe.node_settings(client.http_addr, client.name, access)
    assert view.reachable and view.label == "plaintext", view
    ring = observe.keyring(server.http_addr, access)
    assert ring.empty and set(ring.unkeyed) == {server.name, client.name}  # read allowed, nothing keyed yet


@pytest.mark.parametrize("rules, rule", [
    ('agent_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n', 'keyring = "read"'),
    ('node_prefix "" { policy = "read" }\nkeyring = "read"\n', 'agent "web-1" { policy = "read" }'),
])
def test_a_token_lacking_a_rule_is_told_which(secure_lab, access, monkeypatch, rules, rule):
    monkeypatch.setenv("LAB_TOKEN", lab.create_token(secure_lab, rules))
    server, client = secure_lab.servers[0], secure_lab.clients[0]
    errors = [observe.keyring(server.http_addr, access).error,
              observe.node_settings(client.http_addr, client.name, access).error]
    said = [e for e in errors if e and rule in e]
    assert said, errors
    assert f"{client.http_addr if 'agent' in rule else server.http_addr} refused the request (ACL)" in said[0]
    assert "the token in $LAB_TOKEN needs the rule" in said[0]


def test_members_filtered_by_acls_name_the_node_rule(secure_lab, access, monkeypatch):
    monkeypatch.setenv("LAB_TOKEN", lab.create_token(secure_lab, 'agent_prefix "" { policy = "read" }\n'))
    with pytest.raises(observe.ObserveError) as ei:
        observe.members(secure_lab.servers[0].http_addr, access)
    assert 'node_prefix "" { policy = "read" }' in str(ei.value) and "$LAB_TOKEN" in str(ei.value)


def test_wrong_ca_names_the_address_and_the_certificate_problem(secure_lab, monkeypatch, tmp_path):
    other = tmp_path / "other-ca"
    other.mkdir()
    subprocess.run([secure_lab.binary, "tls", "ca", "create"], cwd=other, check=True, capture_output=True)
    monkeypatch.setenv("LAB_CA", str(other / "consul-agent-ca.pem"))
    monkeypatch.setenv("LAB_TOKEN", lab.create_token(secure_lab))
    client = secure_lab.clients[0]
    view = observe.node_settings(client.http_addr, client.name, observe.Access(token_env="LAB_TOKEN",
                                                                              cacert_env="LAB_CA"))
    assert not view.reachable
    assert view.error.startswith(f"{client.http_addr}: TLS handshake failed, certificate verify failed")
    assert f"checked against the CA in $LAB_CA ({other / 'consul-agent-ca.pem'})" in view.error
