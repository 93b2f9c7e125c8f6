"""Keyring changes (backends.keyring) and the keyring read by fingerprint (observe.keyrings), without a cluster.

python-consul2 talks over real HTTP to tests/provider/fakeconsul.py; the failure bodies are the ones
the lab's Consul 1.14.11 sent (tests/e2e/test_keyring_ops.py measures them on real agents).
"""

from __future__ import annotations

import functools
import json
import socket

import pytest

from tests.provider.fakeconsul import fake_consul, keyring_entry
from tests.support import OTHER_KEY, TEST_KEY, derived_key
from tsegossip.backends import keyring as kr
from tsegossip.keys import GossipKey
from tsegossip.observe import Access
from tsegossip.observe.client import client_for, describe_failure
from tsegossip.observe.keyrings import (KeyringView, Ring, keyring, keyring_file, short_by_keyring_files,
                                        shortfall)

KEY, OLD = GossipKey(TEST_KEY), GossipKey(OTHER_KEY)
NODES = ("server-1", "server-2", "server-3", "web-1", "web-2", "api-1")

REMOVE_PRIMARY_500 = ("7 errors occurred:\n\t* dc1 (LAN) error: 6/6 nodes reported failure\n"
                      + "".join(f"\t* {n}: Removing the primary key is not allowed\n" for n in NODES) + "\n")
NOT_INSTALLED_500 = ("7 errors occurred:\n\t* dc1 (LAN) error: 6/6 nodes reported failure\n"
                     + "".join(f"\t* {n}: Requested key is not in the keyring\n" for n in NODES) + "\n")
UNANSWERED_500 = "1 error occurred:\n\t* dc1 (LAN) error: 4/6 nodes reported success\n\n"


def agent(addr: str, access: Access | None = None) -> kr.KeyringAgent:
    """What the provider builds: observe's client and its words for a failure, bound to the address."""
    return kr.KeyringAgent(addr, client_for(addr, access, kr.KEYRING_CALL_TIMEOUT),
                           functools.partial(describe_failure, addr, access=access))


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_no_key(*texts: str) -> None:
    for t in texts:
        for k in (TEST_KEY, OTHER_KEY):
            assert k not in t and k[:16] not in t, t


# ---- the three changes -----------------------------------------------------------------------

@pytest.mark.parametrize("operation,method", [("install", "POST"), ("use", "PUT"), ("remove", "DELETE")])
def test_each_change_is_one_request_to_the_agent_given(operation, method, monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "tok-123")
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (200, "")
        done = getattr(kr, operation)(agent(fc.addr), KEY)
    (req,) = fc.requests
    assert req["method"] == method and req["path"] == "/v1/operator/keyring"
    assert json.loads(req["body"]) == {"Key": TEST_KEY}  # revealed in the body, nowhere else
    assert req["headers"]["X-Consul-Token"] == "tok-123"
    assert (done.operation, done.fingerprint, done.http_addr, done.status) == (operation, KEY.fingerprint, fc.addr, 200)
    assert done.node_messages == {} and 0 <= done.seconds < 5
    assert KEY.fingerprint in done.describe() and fc.addr in done.describe()
    assert_no_key(repr(done), done.describe())


def test_fails_remove_of_the_primary_names_every_member_and_the_reason():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, REMOVE_PRIMARY_500)
        with pytest.raises(kr.KeyringCallFailed) as ei:
            kr.remove(agent(fc.addr), KEY)
    err = ei.value
    text = str(err)
    assert text.startswith(f"{fc.addr}: removing key sha256:{KEY.fingerprint} failed after ")
    assert ("HTTP 500: dc1 (LAN): 6/6 nodes reported failure; Removing the primary key is not allowed: "
            "api-1, server-1, server-2, server-3, web-1, web-2") in text
    assert err.status == 500 and not err.partial
    assert err.members_saying("Removing the primary key") == tuple(sorted(NODES))
    assert (err.operation, err.fingerprint, err.http_addr) == ("remove", KEY.fingerprint, fc.addr)
    assert err.reply.failed == 6 and err.reply.num_nodes == 6
    assert_no_key(text, repr(err.args), repr(err.reply))


def test_fails_use_of_a_key_not_installed_names_the_members():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, NOT_INSTALLED_500)
        with pytest.raises(kr.KeyringCallFailed) as ei:
            kr.use(agent(fc.addr), KEY)
    assert ei.value.members_saying("not in the keyring") == tuple(sorted(NODES))
    assert f"making primary key sha256:{KEY.fingerprint} failed" in str(ei.value)


def test_fails_unanswered_query_is_partial_and_says_to_ask_again():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, UNANSWERED_500)
        with pytest.raises(kr.KeyringCallFailed) as ei:
            kr.install(agent(fc.addr), KEY)
    err = ei.value
    assert err.partial and err.node_messages == {}
    assert (err.reply.answered, err.reply.num_nodes) == (4, 6)
    assert "2 member(s) did not answer, which ones Consul does not say" in str(err)
    assert "list the keyring and ask again" in str(err)


def test_fails_acl_denial_says_which_rule_the_token_needs():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (
            403, "Permission denied: token with AccessorID 'a1b2' lacks permission 'keyring:write'")
        with pytest.raises(kr.KeyringCallFailed) as ei:
            kr.install(agent(fc.addr), KEY)
    text = str(ei.value)
    assert ei.value.status == 403
    assert f"{fc.addr}: installing key sha256:{KEY.fingerprint} failed" in text
    assert 'needs the rule keyring = "write"' in text


def test_fails_unreachable_agent_is_named():
    addr = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(kr.KeyringCallFailed) as ei:
        kr.install(agent(addr), KEY)
    assert str(ei.value).startswith(f"{addr}: installing key sha256:{KEY.fingerprint} failed after ")
    assert f"no answer from {addr}" in str(ei.value)
    assert ei.value.status is None


def test_fails_without_a_describer_still_names_address_change_and_fingerprint():
    addr = f"http://127.0.0.1:{closed_port()}"
    a = kr.KeyringAgent(addr, client_for(addr, None, 2.0))
    with pytest.raises(kr.KeyringCallFailed) as ei:
        kr.use(a, KEY)
    assert f"{addr}: making primary key sha256:{KEY.fingerprint} failed" in str(ei.value)
    assert "ConnectionError" in str(ei.value)


def test_fails_bad_request_is_read_as_one_line():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (
            400, "Invalid use of local-only: local-only can only be set for list requests")
        with pytest.raises(kr.KeyringCallFailed) as ei:
            kr.install(agent(fc.addr), KEY)
    assert ei.value.status == 400
    assert "HTTP 400: Invalid use of local-only" in str(ei.value)


def test_fails_a_key_echoed_by_the_server_is_redacted():
    body = f"1 error occurred:\n\t* dc1 (LAN) error: key {TEST_KEY} rejected\n\n"
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (500, body)
        with pytest.raises(kr.KeyringCallFailed) as ei:
            kr.install(agent(fc.addr), KEY)
    assert_no_key(str(ei.value), repr(ei.value.reply))


# ---- reading Consul's failure text -----------------------------------------------------------

def test_read_reply_pools_members_and_counts():
    body = ("3 errors occurred:\n\t* WAN error: 1/3 nodes reported failure\n\t* s1.dc1: boom\n"
            "\t* dc1 (LAN) [segment: alpha] error: 2/5 nodes reported success\n\n")
    r = kr.read_reply(body, 500)
    assert r.pool_errors == ("WAN: 1/3 nodes reported failure", "dc1 (LAN): 2/5 nodes reported success")
    assert r.node_messages == {"s1.dc1": "boom"}
    assert (r.answered, r.failed, r.num_nodes) == (2, 1, 5)
    assert r.text.startswith("3 errors occurred: WAN error")


def test_read_reply_plain_line():
    r = kr.read_reply("No known Consul servers", 500)
    assert r.pool_errors == ("No known Consul servers",) and r.node_messages == {}
    assert r.answered is None and r.failed is None


# ---- the keyring by fingerprint --------------------------------------------------------------

def view(keys, primary, num, wan=None) -> KeyringView:
    lan = Ring(False, "dc1", "", {GossipKey(k).fingerprint: n for k, n in keys.items()},
               {GossipKey(k).fingerprint: n for k, n in primary.items()}, num)
    return KeyringView(rings=(lan,) + ((wan,) if wan else ()))


def test_ring_counts_by_fingerprint_and_the_three_helpers():
    with fake_consul() as fc:
        fc.routes["/v1/operator/keyring"] = (200, [keyring_entry({TEST_KEY: 6, OTHER_KEY: 5}, {OTHER_KEY: 5}, 6)])
        v = keyring(fc.addr, local_only=True)
    (ring,) = v.rings
    assert ring.installed == {KEY.fingerprint: 6, OLD.fingerprint: 5} and ring.primary == {OLD.fingerprint: 5}
    assert ring.num_nodes == 6 and ring.pool == "dc1 LAN"
    assert v.holds_everywhere(KEY.fingerprint) and not v.holds_everywhere(OLD.fingerprint)
    assert not v.primary_everywhere(OLD.fingerprint) and not v.primary_everywhere(KEY.fingerprint)
    assert not v.held_nowhere(OLD.fingerprint) and v.held_nowhere(GossipKey(derived_key("absent")).fingerprint)
    assert_no_key(repr(v))


def test_held_nowhere_is_not_proven_by_a_failed_listing():
    assert not KeyringView(error="no answer").held_nowhere(KEY.fingerprint)
    assert not KeyringView().held_nowhere(KEY.fingerprint)


def test_every_listed_pool_counts():
    wan = Ring(True, "dc1", "", {KEY.fingerprint: 2}, {KEY.fingerprint: 2}, 3)
    v = view({TEST_KEY: 6}, {TEST_KEY: 6}, 6, wan=wan)
    assert not v.holds_everywhere(KEY.fingerprint) and not v.primary_everywhere(KEY.fingerprint)
    s = shortfall(v, KEY.fingerprint, "installed")
    assert (s.short, s.num_nodes, s.pool) == (1, 3, "WAN")


def test_shortfall_install_unnamed_says_consul_does_not_say_which():
    s = shortfall(view({TEST_KEY: 5, OTHER_KEY: 6}, {OTHER_KEY: 6}, 6), KEY.fingerprint, "installed")
    assert not s.ok and (s.short, s.num_nodes, s.named, s.unnamed) == (1, 6, (), 1)
    assert s.describe() == (
        f"key sha256:{KEY.fingerprint} is installed on 5 of 6 members of the dc1 LAN pool; 1 lacks it; which ones "
        "Consul 1.14 does not say (its listing counts keys per pool, and ?local-only=1 leaves out only the WAN pool: "
        "every agent answers with the same counts)")


def test_shortfall_named_from_keyring_files():
    files = {"web-1": json.dumps([OTHER_KEY]), "web-2": json.dumps([OTHER_KEY, TEST_KEY]), "api-1": None,
             "server-1": "not json"}
    s = shortfall(view({TEST_KEY: 4, OTHER_KEY: 6}, {OTHER_KEY: 6}, 6), KEY.fingerprint, "installed",
                  keyring_files=files)
    assert s.named == ("web-1",) and s.unnamed == 1
    assert ("2 lack it: web-1 (from their serf/local.keyring), and 1 more; which ones Consul 1.14 does not say"
            in s.describe())
    assert_no_key(s.describe(), repr(s))


def test_short_by_keyring_files_each_want():
    files = {"a": json.dumps([TEST_KEY, OTHER_KEY]), "b": json.dumps([OTHER_KEY, TEST_KEY]),
             "c": json.dumps([TEST_KEY])}
    fp = KEY.fingerprint
    assert short_by_keyring_files(files, fp, "installed") == ()
    assert short_by_keyring_files(files, fp, "primary") == ("b",)
    assert short_by_keyring_files(files, OLD.fingerprint, "removed") == ("a", "b")
    assert keyring_file(files["b"]) == (OLD.fingerprint, KEY.fingerprint)
    assert keyring_file("{}") is None and keyring_file("[1]") is None


def test_shortfall_primary_and_removed():
    v = view({TEST_KEY: 6, OTHER_KEY: 6}, {TEST_KEY: 5, OTHER_KEY: 1}, 6)
    p = shortfall(v, KEY.fingerprint, "primary")
    assert p.short == 1 and "the primary key of 5 of 6 members" in p.describe()
    assert "1 does not use it as primary" in p.describe()
    r = shortfall(v, OLD.fingerprint, "removed")
    assert r.short == 6 and "removed from 0 of 6 members" in r.describe() and "6 still hold it" in r.describe()
    done = shortfall(view({TEST_KEY: 6}, {TEST_KEY: 6}, 6), OLD.fingerprint, "removed")
    assert done.ok
    assert done.describe() == f"key sha256:{OLD.fingerprint} is removed from every member (6 in the dc1 LAN pool)"


def test_shortfall_names_members_the_pool_does_not_count():
    # a member cut off by a keyring that shares no key with the others: NumNodes leaves it out, and
    # the listing of the rest looks complete
    v = view({TEST_KEY: 5}, {TEST_KEY: 5}, 5)
    assert v.holds_everywhere(KEY.fingerprint)
    s = shortfall(v, KEY.fingerprint, "installed", members={"api-1": "left", "web-1": "alive"})
    assert not s.ok and s.short == 0 and s.uncounted == ("api-1 (left)",)
    assert "the keyring listing does not count api-1 (left) at all" in s.describe()


def test_shortfall_of_a_failed_listing_concludes_nothing():
    s = shortfall(KeyringView(error="http://x: keyring listing failed: 500"), KEY.fingerprint, "removed")
    assert not s.ok and s.describe().startswith(f"cannot tell whether key sha256:{KEY.fingerprint} is removed from")


def test_fails_unknown_want():
    with pytest.raises(ValueError, match="want 'everywhere': expected one of installed, primary, removed"):
        shortfall(view({TEST_KEY: 1}, {TEST_KEY: 1}, 1), KEY.fingerprint, "everywhere")
