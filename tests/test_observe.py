"""tsegossip.observe over real HTTP with python-consul2: recorded Consul JSON from a stdlib
server always, and the lab's real Consul agents."""

from __future__ import annotations

import socket

import pytest

from tests.provider.fakeconsul import KEYRING_EMPTY_500, agent_self, fake_consul, keyring_entry, member
from tests.support import TEST_KEY, OTHER_KEY
from tsegossip import observe
from tsegossip.keys import GossipKey, fingerprint_of
from tsegossip.phases import Phase



def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("shape", ["1.15", "1.11"])
@pytest.mark.parametrize("encrypted,vin,vout,phase", [
    (False, True, True, Phase.PLAINTEXT),  # Consul's defaults with no key
    (True, False, False, Phase.ACCEPT_ENCRYPTED),
    (True, False, True, Phase.SEND_ENCRYPTED),
    (True, True, True, Phase.ENFORCED),
])
def test_node_settings_reads_both_flag_shapes(shape, encrypted, vin, vout, phase):
    with fake_consul() as fc:
        fc.routes["/v1/agent/self"] = (200, agent_self("web-1", encrypted, vin, vout, shape))
        view = observe.node_settings(fc.addr)
    assert view.reachable and view.name == "web-1"
    assert (view.encrypted, view.verify_incoming, view.verify_outgoing) == (encrypted, vin, vout)
    assert view.phase is phase


def test_node_settings_verify_in_without_out_is_unknown():
    with fake_consul() as fc:
        fc.routes["/v1/agent/self"] = (200, agent_self("web-1", True, True, False))
        view = observe.node_settings(fc.addr, "web-1")
    assert view.phase is None and view.label == "unknown"


def test_node_settings_unreachable_is_a_value():
    view = observe.node_settings(f"http://127.0.0.1:{_closed_port()}", "gone")
    assert not view.reachable and view.label == "unreachable"
    assert "no answer" in view.error


def test_members_maps_status_codes():
    with fake_consul() as fc:
        fc.routes["/v1/agent/members"] = (200, [member("a", 1), member("b", 2), member("c", 3), member("d", 4)])
        assert observe.members(fc.addr) == {"a": "alive", "b": "leaving", "c": "left", "d": "failed"}


def test_fails_members_unreachable():
    with pytest.raises(observe.ObserveError, match="no answer"):
        observe.members(f"http://127.0.0.1:{_closed_port()}")


def test_keyring_reduced_to_fingerprints():
    fp, other = fingerprint_of(TEST_KEY), fingerprint_of(OTHER_KEY)
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (200, [
            keyring_entry({TEST_KEY: 3, OTHER_KEY: 3}, {TEST_KEY: 3}, 3, wan=True),
            keyring_entry({TEST_KEY: 5, OTHER_KEY: 2}, {TEST_KEY: 5}, 5),
        ])
        view = observe.keyring(fc.addr)
        fps, num, primary = observe.keyring_fingerprints(fc.addr)
    assert fps == {fp: 5, other: 2} and num == 5 and primary == (fp,)
    assert view.holds_everywhere(fp) and not view.holds_everywhere(other)
    assert TEST_KEY not in repr(view) and OTHER_KEY not in view.describe()


def test_keyring_waits_out_serfs_query_timeout_not_just_the_http_default():
    # A member that does not answer the keyring query makes Consul wait serf's query timeout
    # (3.2 s on a 9-agent LAN pool): slower than the 3 s default of every other read.
    import time

    def slow(parts, headers):
        time.sleep(observe.client.DEFAULT_TIMEOUT + 0.5)
        return 200, [keyring_entry({TEST_KEY: 3}, {TEST_KEY: 3}, 3)]

    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (200, slow)
        view = observe.keyring(fc.addr)
    assert view.error is None and view.num_nodes == 3, view.error


def test_keyring_empty_500_is_reported_not_raised():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, KEYRING_EMPTY_500)
        view = observe.keyring(fc.addr)
    assert view.empty and view.error == "keyring empty (encryption not enabled)"
    assert not view.holds_everywhere("anything")


def test_keyring_listing_one_member_short_is_asked_again_and_then_answers(monkeypatch):
    # CI saw a 500 "1 error occurred:" right after a fleet's last batch, from a cluster that was fine.
    monkeypatch.setattr(observe.keyrings, "KEYRING_RETRY_PAUSE", 0.0)
    short = "1 error occurred:\n\t* dc1 (LAN) error: 8/9 nodes reported success\n\n"
    answers = iter([(500, short), (200, [keyring_entry({TEST_KEY: 9}, {TEST_KEY: 9}, 9)])])
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (200, lambda parts, headers: next(answers))
        view = observe.keyring(fc.addr)
        assert len([r for r in fc.requests if r["path"] == "/v1/operator/keyring"]) == 2
    assert view.ok and view.num_nodes == 9, view.error


def test_keyring_failure_that_persists_names_every_item_and_stops_after_the_attempts(monkeypatch):
    monkeypatch.setattr(observe.keyrings, "KEYRING_RETRY_PAUSE", 0.0)
    body = "2 errors occurred:\n\t* dc1 (LAN) error: 1/9 nodes reported failure\n\t* web-2: No installed keys\n"
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, body)
        view = observe.keyring(fc.addr)
        asked = len([r for r in fc.requests if r["path"] == "/v1/operator/keyring"])
    assert asked == observe.keyrings.KEYRING_ATTEMPTS == 3
    assert view.error == (f"{fc.addr}: keyring listing failed: 500 2 errors occurred: "
                          "dc1 (LAN) error: 1/9 nodes reported failure; web-2: No installed keys")


def test_keyring_keyless_500_is_not_asked_again():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, KEYRING_EMPTY_500)
        observe.keyring(fc.addr)
        assert len([r for r in fc.requests if r["path"] == "/v1/operator/keyring"]) == 1


def test_keyring_local_only_sends_the_query_parameter():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (200, [keyring_entry({TEST_KEY: 1}, {TEST_KEY: 1}, 1)])
        observe.keyring(fc.addr, local_only=True)
        assert fc.requests[-1]["query"]["local-only"] == ["True"]


def test_client_for_takes_token_and_tls_from_named_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_TOKEN", "s3cr3t")
    with fake_consul() as fc:
        fc.routes["/v1/agent/members"] = (200, [member("a")])
        observe.members(fc.addr, observe.Access(token_env="MY_TOKEN"))
        assert fc.requests[-1]["headers"]["X-Consul-Token"] == "s3cr3t"
    ca = tmp_path / "ca.pem"
    monkeypatch.setenv("CONSUL_CACERT", str(ca))
    monkeypatch.setenv("CONSUL_CLIENT_CERT", "/c.pem")
    monkeypatch.setenv("CONSUL_CLIENT_KEY", "/k.pem")
    c = observe.client_for("https://consul.example:8501")
    assert (c.http.scheme, c.http.port, c.http.verify, c.http.cert) == ("https", 8501, str(ca), ("/c.pem", "/k.pem"))


def test_observe_collects_errors_as_values():
    with fake_consul() as fc:
        fc.routes["/v1/agent/members"] = (200, [member("web-1"), member("web-2", 4)])
        fc.routes["/v1/agent/self"] = (200, agent_self("web-1", False, True, True))
        fc.routes["/v1/operator/keyring"] = (500, KEYRING_EMPTY_500)
        view = observe.observe(fc.addr, {"web-1": fc.addr, "web-2": f"http://127.0.0.1:{_closed_port()}"})
    assert view.phases() == {"web-1": "plaintext", "web-2": "unreachable"}
    assert view.member_status("web-2") == "failed" and view.member_status("nope") == "absent"
    assert view.common_phase() == "mixed" and view.keyring.empty


def test_observe_lab_agents(tmp_path):
    """The same calls against real Consul agents."""
    from tsegossip import lab

    from tests.support import consul_binary

    binary = consul_binary()
    key = GossipKey(TEST_KEY)
    frag = {"encrypt": key.reveal(), "encrypt_verify_incoming": False, "encrypt_verify_outgoing": False}
    with lab.running_lab(tmp_path, servers=1, clients=1, groups=1, binary=binary,
                         initial_fragments={"servers": frag}) as c:
        server, client = c.servers[0], c.clients[0]
        view = observe.observe(server.http_addr, {n.name: n.http_addr for n in c.nodes})
        assert view.phases() == {server.name: "accept-encrypted", client.name: "plaintext"}
        assert view.members == {server.name: "alive", client.name: "alive"}
        # local-only is still the LAN pool's listing: the plaintext client fails it for everyone
        own = observe.keyring(server.http_addr, local_only=True)
        assert own.empty and not own.ok, own
