"""Real Consul (the lab's v1.14.11 agents) answers in the shapes our code and shared/facts assume.

These are the re-verification of facts/consul-api.md against a real agent: if a Consul upgrade
changes a shape, the test that names it fails, not a rollout.
"""
import json
import urllib.error
import urllib.request

import consul
import pytest

from tsegossip import lab


def api(node):
    return consul.Consul(host="127.0.0.1", port=node.http_port, timeout=5)


def raw(node, method, path, body=None):
    req = urllib.request.Request(node.http_addr + path, method=method,
                                 data=None if body is None else body.encode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


MEMBER_KEYS = {"Name", "Addr", "Port", "Tags", "Status", "ProtocolMin", "ProtocolMax", "ProtocolCur",
               "DelegateMin", "DelegateMax", "DelegateCur"}


def test_cluster_forms(plain_lab):
    names = {n.name for n in plain_lab.nodes}
    assert names == {"server-1", "server-2", "server-3", "web-1", "api-1"}
    for n in plain_lab.nodes:
        members = api(n).agent.members()
        assert {m["Name"] for m in members} == names
        assert all(m["Status"] == 1 for m in members)


def test_members_shape(plain_lab):
    members = api(plain_lab.clients[0]).agent.members()
    by = {m["Name"]: m for m in members}
    for m in members:
        assert set(m) == MEMBER_KEYS
        assert m["Addr"] == "127.0.0.1"
        assert isinstance(m["Port"], int) and isinstance(m["Status"], int)
        assert all(isinstance(v, str) for v in m["Tags"].values())
    s = by["server-1"]["Tags"]
    assert s["role"] == "consul" and s["dc"] == "dc1" and s["segment"] == ""
    assert s["port"] == str(plain_lab.node("server-1").server_port)
    # go install leaves the git revision empty: "1.14.11:" (a release build says "1.14.11:<sha>")
    assert s["build"].startswith("1.14.11:") and s["acls"] == "0" and s["vsn"] == "2"
    assert s["expect"] == "3" and s["raft_vsn"] == "3"
    c = by["web-1"]["Tags"]
    assert c["role"] == "node" and "port" not in c and "acls" not in c and c["id"]
    assert by["web-1"]["Port"] == plain_lab.node("web-1").serf_port
    # WAN pool: a client has none (null); the lab's servers have it switched off (ports.serf_wan = -1)
    assert api(plain_lab.clients[0]).agent.members(wan=True) is None
    assert api(plain_lab.servers[0]).agent.members(wan=True) is None


def test_agent_self_shape(plain_lab):
    me = api(plain_lab.servers[0]).agent.self()
    assert set(me) == {"Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"}
    cfg = me["Config"]
    assert {"Datacenter", "PrimaryDatacenter", "NodeName", "NodeID", "Revision", "Server", "Version",
            "BuildDate"} <= set(cfg)
    assert cfg["NodeName"] == "server-1" and cfg["Server"] is True and cfg["Version"] == "1.14.11"
    dc = me["DebugConfig"]
    assert dc["EncryptKey"] == "hidden"
    assert dc["StaticRuntimeConfig"] == {"EncryptVerifyIncoming": True, "EncryptVerifyOutgoing": True}
    assert "EncryptVerifyIncoming" not in dc
    assert set(me["Coord"]) >= {"Vec", "Error", "Adjustment", "Height"}  # network coordinates are on
    assert me["Member"]["Name"] == "server-1"
    assert me["Meta"] == {"consul-network-segment": ""}
    st = me["Stats"]
    assert st["serf_lan"]["encrypted"] == "false"
    assert {"members", "failed", "left", "health_score", "encrypted"} <= set(st["serf_lan"])
    assert st["consul"]["server"] == "true" and st["consul"]["acl"] == "disabled"
    assert lab.verify_flags(me) == (True, True)
    client = api(plain_lab.clients[0]).agent.self()
    assert client["Config"]["Server"] is False
    assert client["Stats"]["consul"]["server"] == "false"
    assert client["Stats"]["consul"]["known_servers"] == "3"


def test_status_leader_and_peers(plain_lab):
    peers = sorted(f"127.0.0.1:{s.server_port}" for s in plain_lab.servers)
    leaders = set()
    for n in plain_lab.nodes:
        c = api(n)
        leaders.add(c.status.leader())
        assert sorted(c.status.peers()) == peers
    assert len(leaders) == 1 and leaders <= set(peers)  # every agent names the same elected leader
    (leader,) = leaders
    by_addr = {f"127.0.0.1:{s.server_port}": s for s in plain_lab.servers}
    stats = api(by_addr[leader]).agent.self()["Stats"]["consul"]
    assert stats["leader"] == "true" and stats["leader_addr"] == leader


def test_keyring_on_unencrypted_cluster_is_500(plain_lab):
    c = api(plain_lab.servers[0])
    with pytest.raises(consul.ConsulException) as ei:
        c.operator.keyring.list()
    msg = str(ei.value)
    assert msg.startswith("500 6 errors occurred:\n\t* dc1 (LAN) error: 5/5 nodes reported failure\n")
    assert "\t* web-1: Keyring is empty (encryption not enabled)\n" in msg
    with pytest.raises(consul.ConsulException) as ei:
        c.operator.keyring.create(lab.generate_key())
    assert "No keyring to modify (encryption not enabled)" in str(ei.value)
    code, body = raw(plain_lab.servers[0], "GET", "/v1/operator/keyring")
    assert code == 500 and body.endswith("\n\n") and body.startswith("6 errors occurred:\n")


def test_keyring_request_errors(plain_lab):
    n = plain_lab.servers[0]
    assert raw(n, "POST", "/v1/operator/keyring?local-only=true", '{"Key": "x"}') == (
        400, "Invalid use of local-only: local-only can only be set for list requests")
    code, body = raw(n, "PUT", "/v1/operator/keyring", "{not json")
    assert code == 400 and body.startswith("Request decode failed: ")
    code, body = raw(n, "GET", "/v1/operator/keyring?relay-factor=9")
    assert (code, body) == (400, "Invalid relay-factor: Relay factor must be in range: [0, 5]")
    # local-only in 1.14 means "this datacenter's LAN pool, no WAN": still a serf query answered by
    # every member, so on an unencrypted cluster it fails the same way as the full listing; it is
    # *not* one agent's own keyring (facts/consul-api.md reads it as one; Consul's
    # Internal.KeyringOperation sends it to executeKeyringOpLAN all the same).
    for agent in (n, plain_lab.clients[0]):
        code, body = raw(agent, "GET", "/v1/operator/keyring?local-only=true")
        assert code == 500 and "dc1 (LAN) error: 5/5 nodes reported failure" in body
    with pytest.raises(consul.ConsulException) as ei:
        consul.Consul(port=n.http_port).operator.keyring.update("not base64!")
    assert str(ei.value).startswith("500 ") and "illegal base64 data" in str(ei.value)


def test_keyring_rotation(tmp_path, lab_binary):
    k1, k2 = lab.generate_key(), lab.generate_key()
    enforced = lab.phase_fragment("enforced", k1)
    with lab.running_lab(tmp_path, servers=2, clients=1, groups=1, binary=lab_binary,
                         initial_fragments={"servers": enforced, "clients": enforced}) as c:
        s1 = c.node("server-1")
        k = api(s1).operator.keyring
        assert k.list() == [{"WAN": False, "Datacenter": "dc1", "Segment": "", "Keys": {k1: 3},
                             "PrimaryKeys": {k1: 3}, "NumNodes": 3}]
        assert api(s1).agent.self()["Stats"]["serf_lan"]["encrypted"] == "true"
        assert k.create(k2) is True
        ring = k.list()[0]
        assert ring["Keys"] == {k1: 3, k2: 3} and ring["PrimaryKeys"] == {k1: 3}
        with pytest.raises(consul.ConsulException) as ei:  # primary key cannot be removed
            k.delete(k1)
        assert "Removing the primary key is not allowed" in str(ei.value)
        assert k.update(k2) is True
        assert k.list()[0]["PrimaryKeys"] == {k2: 3}
        assert k.delete(k1) is True
        assert k.list()[0]["Keys"] == {k2: 3}
        with pytest.raises(consul.ConsulException) as ei:
            k.update(k1)
        assert "Requested key is not in the keyring" in str(ei.value)
        # persisted like serf does: primary first
        with open(c.node("web-1").keyring_path) as f:
            assert json.load(f) == [k2]
        # a restart keeps the rotated keyring (the stale `encrypt` k1 is ignored, with a warning)
        lab.restart(c, "web-1", timeout=45)
        assert "keyring doesn't include key provided with -encrypt, using keyring" in open(
            c.node("web-1").log_path).read()
        lab.wait_converged(c, timeout=10)
