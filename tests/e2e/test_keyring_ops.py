"""Key rotation through the keyring API on real Consul 1.14.11 agents: backends.keyring acts, observe.keyrings reads.

Each test starts its own lab (3 servers, 2-3 clients, enforced with the old key) and downs it. What
Consul answers here is what backends/keyring.py and observe/keyrings.py document as measured.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Probe, lab_up
from tsegossip import lab
from tsegossip.backends import keyring as kr
from tsegossip.keys import GossipKey
from tsegossip.observe import keyring, members
from tsegossip.observe.client import client_for, describe_failure
from tsegossip.observe.keyrings import keyring_file, shortfall

KEYRING_WINS = "keyring doesn't include key provided with -encrypt, using keyring"


def agent(node: lab.LabNode) -> kr.KeyringAgent:
    return kr.KeyringAgent(node.http_addr, client_for(node.http_addr, None, kr.KEYRING_CALL_TIMEOUT),
                           functools.partial(describe_failure, node.http_addr))


def settled(change, node: lab.LabNode, key: GossipKey) -> kr.KeyringChange:
    """kr.install/use/remove, asked again after a partial answer, as the provider does (CALL_ATTEMPTS).

    On a lab just started a member now and then misses the serf query (CI: "4/5 nodes reported
    success"); waiting does not make it catch up, a second call does. Tests of the call itself use kr.*.
    """
    for attempt in range(1, 4):
        try:
            return change(agent(node), key)
        except kr.KeyringCallFailed as err:
            if not err.partial or attempt == 3:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def files(c: lab.LabCluster) -> dict[str, str | None]:
    """Every agent's serf/local.keyring as text (the lab runs them on this host)."""
    out = {}
    for n in c.nodes:
        p = Path(n.keyring_path)
        out[n.name] = p.read_text() if p.exists() else None
    return out


def held(node: lab.LabNode) -> tuple[str, ...] | None:
    return keyring_file(Path(node.keyring_path).read_text())


def enforced(key: GossipKey) -> dict:
    return lab.phase_fragment("enforced", key.reveal())


def assert_no_key(keys, *texts) -> None:
    for t in texts:
        for k in keys:
            assert k.reveal() not in str(t) and k.reveal()[:16] not in str(t)


@pytest.mark.timeout(60)
def test_rotation_install_use_remove_with_no_member_failed(tmp_path, lab_binary):
    old, new, stray = GossipKey.generate(), GossipKey.generate(), GossipKey.generate()
    with lab_up(tmp_path, lab_binary, servers=3, clients=3, groups=2,
                initial_fragments={"servers": enforced(old), "clients": enforced(old)}) as c:
        s1, s2, web1 = c.node("server-1"), c.node("server-2"), c.node("web-1")
        names = tuple(sorted(n.name for n in c.nodes))
        assert shortfall(keyring(s1.http_addr, local_only=True), old.fingerprint, "primary").ok
        with Probe(c) as probe:
            # install, through a client's own API (it forwards the RPC; the server fans it out)
            done = settled(kr.install, web1, new)
            assert (done.operation, done.fingerprint, done.status) == ("install", new.fingerprint, 200)
            v = keyring(s1.http_addr, local_only=True)
            assert v.holds_everywhere(new.fingerprint) and v.primary_everywhere(old.fingerprint), v.describe()
            assert v.lan.installed == {old.fingerprint: 6, new.fingerprint: 6} and v.num_nodes == 6

            # the refusals name every member and why (Consul's own words), never a key
            with pytest.raises(kr.KeyringCallFailed) as ei:
                kr.use(agent(s1), stray)
            assert ei.value.members_saying("Requested key is not in the keyring") == names
            with pytest.raises(kr.KeyringCallFailed) as ei:
                kr.remove(agent(s1), old)
            err = ei.value
            assert err.status == 500 and not err.partial
            assert err.members_saying("Removing the primary key is not allowed") == names
            assert str(err).startswith(f"{s1.http_addr}: removing key sha256:{old.fingerprint} failed after ")
            assert ("HTTP 500: dc1 (LAN): 6/6 nodes reported failure; Removing the primary key is not allowed: "
                    + ", ".join(names)) in str(err)
            assert_no_key((old, new, stray), err, err.reply)

            # use, then remove the old key
            settled(kr.use, s2, new)
            v = keyring(web1.http_addr, local_only=True)
            assert v.primary_everywhere(new.fingerprint) and shortfall(v, new.fingerprint, "primary").ok
            gone = settled(kr.remove, s1, old)
            v = keyring(s1.http_addr, local_only=True)
            assert v.held_nowhere(old.fingerprint) and shortfall(v, old.fingerprint, "removed").ok
            assert v.holds_everywhere(new.fingerprint) and v.primary_everywhere(new.fingerprint)
            with pytest.raises(kr.KeyringCallFailed, match="Removing the primary key is not allowed"):
                kr.remove(agent(s1), new)
        assert probe.failed == [] and probe.rounds > 0
        assert set(members(s1.http_addr).values()) == {"alive"}
        assert {held(n) for n in c.nodes} == {(new.fingerprint,)}  # serf rewrote every keyring file
        assert_no_key((old, new), done, gone, done.describe(), gone.describe())


@pytest.mark.timeout(60)
def test_member_that_missed_the_install_is_counted_but_named_only_by_its_keyring_file(tmp_path, lab_binary):
    old, new = GossipKey.generate(), GossipKey.generate()
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2,
                initial_fragments={"servers": enforced(old), "clients": enforced(old)}) as c:
        s1, web1, api1 = c.node("server-1"), c.node("web-1"), c.node("api-1")
        assert lab.stop(c, "web-1") == "stopped"  # a client leaves: the pool counts 4
        settled(kr.install, s1, new)
        time.sleep(5)  # until the query is no longer gossiped (a member back within ~1 s still got it)
        lab.start(c, "web-1")
        lab.wait_converged(c, timeout=20)
        assert held(web1) == (old.fingerprint,)

        # every agent's own local-only listing is the same pool-wide count: none says who
        listings = {n.name: keyring(n.http_addr, local_only=True) for n in (s1, web1, api1)}
        for name, v in listings.items():
            assert v.ok and v.lan.installed == {old.fingerprint: 5, new.fingerprint: 4}, (name, v.describe())
            assert v.num_nodes == 5 and not v.holds_everywhere(new.fingerprint)
        v = listings["server-1"]
        blind = shortfall(v, new.fingerprint, "installed", members=members(s1.http_addr))
        assert (blind.short, blind.named, blind.unnamed, blind.uncounted) == (1, (), 1, ())
        assert "1 lacks it; which ones Consul 1.14 does not say" in blind.describe()
        named = shortfall(v, new.fingerprint, "installed", keyring_files=files(c))
        assert named.named == ("web-1",) and named.unnamed == 0
        assert f"is installed on 4 of 5 members of the dc1 LAN pool; 1 lacks it: web-1" in named.describe()

        # installing again reaches it: the others already hold the key
        settled(kr.install, s1, new)
        assert keyring(s1.http_addr, local_only=True).holds_everywhere(new.fingerprint)
        assert new.fingerprint in held(web1)


@pytest.mark.timeout(60)
def test_stale_local_keyring_is_found_from_the_listing_and_repaired_through_the_api(tmp_path, lab_binary):
    """web-1's config names the new key but its data dir holds only the old set: Consul loads the file."""
    old, new = GossipKey.generate(), GossipKey.generate()
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2,
                initial_fragments={"servers": enforced(old), "clients": enforced(old)}) as c:
        s1, web1 = c.node("server-1"), c.node("web-1")
        settled(kr.install, s1, new)
        assert keyring(s1.http_addr).holds_everywhere(new.fingerprint)
        # the configs stage reached web-1 while its data dir came back from a backup taken before the install
        assert lab.stop(c, "web-1") == "stopped"
        Path(web1.keyring_path).write_text(json.dumps([old.reveal()]))
        lab.write_fragment(c, "web-1", enforced(new))
        lab.start(c, "web-1")
        lab.wait_converged(c, timeout=20)
        assert KEYRING_WINS in Path(web1.log_path).read_text()

        with Probe(c) as probe:
            v = keyring(s1.http_addr, local_only=True)
            stale = shortfall(v, new.fingerprint, "installed", keyring_files=files(c))
            assert (stale.short, stale.named) == (1, ("web-1",)), stale.describe()
            # fixed with the keyring API, through the stale agent's own address; no file deleted
            settled(kr.install, web1, new)
            settled(kr.use, s1, new)
            v = keyring(s1.http_addr, local_only=True)
            assert v.holds_everywhere(new.fingerprint) and v.primary_everywhere(new.fingerprint), v.describe()
            settled(kr.remove, s1, old)
            assert keyring(s1.http_addr, local_only=True).held_nowhere(old.fingerprint)
        assert probe.failed == []
        assert held(web1) == (new.fingerprint,)
        marker = Path(web1.log_path).read_text().count(KEYRING_WINS)
        lab.restart(c, "web-1", timeout=30)  # its config and its keyring now agree
        assert Path(web1.log_path).read_text().count(KEYRING_WINS) == marker
        lab.wait_converged(c, timeout=20)
        assert shortfall(keyring(s1.http_addr), new.fingerprint, "primary",
                         members=members(s1.http_addr)).ok


@pytest.mark.timeout(75)
def test_member_cut_off_by_a_stale_keyring_is_not_counted_and_rejoins_through_the_api(tmp_path, lab_binary):
    """The rotation is over (old key removed); api-1 restarts with a keyring holding only the old key."""
    old, new = GossipKey.generate(), GossipKey.generate()
    with lab_up(tmp_path, lab_binary, servers=3, clients=2, groups=2,
                initial_fragments={"servers": enforced(new), "clients": enforced(new)}) as c:
        s1, api1 = c.node("server-1"), c.node("api-1")
        assert lab.stop(c, "api-1") == "stopped"
        Path(api1.keyring_path).write_text(json.dumps([old.reveal()]))
        lab.start(c, "api-1", wait_join=False)
        time.sleep(3)
        seen = members(s1.http_addr)
        assert seen["api-1"] == "left", seen  # its gossip cannot be read: it stays as it left

        # the listing of the others looks complete: only membership shows the member it leaves out
        v = keyring(s1.http_addr, local_only=True)
        assert v.num_nodes == 4 and v.holds_everywhere(new.fingerprint)
        s = shortfall(v, new.fingerprint, "installed", members=seen)
        assert not s.ok and s.short == 0 and s.uncounted == ("api-1 (left)",)
        assert "does not count api-1 (left) at all" in s.describe()

        # through the API only: the old key back as everyone's primary, so api-1 can join; then forward again
        settled(kr.install, s1, old)
        settled(kr.use, s1, old)
        lab.wait_converged(c, timeout=30)
        settled(kr.install, s1, new)
        settled(kr.use, s1, new)
        settled(kr.remove, s1, old)
        v = keyring(s1.http_addr, local_only=True)
        assert v.num_nodes == 5 and shortfall(v, new.fingerprint, "primary", members=members(s1.http_addr)).ok
        assert v.held_nowhere(old.fingerprint)
        assert held(api1) == (new.fingerprint,)
