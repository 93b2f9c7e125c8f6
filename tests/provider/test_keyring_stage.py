"""tsegossip_keyring: one keyring change of a rotation, refused before the call or proven after it."""

from __future__ import annotations

from dataclasses import replace

from tf.iface import CreateContext
from tf.types import Unknown

from tests.provider.tfwire import ctx, errors
from tests.support import OTHER_KEY, TEST_KEY
from tsegossip.backends import keyring as kr
from tsegossip.keys import GossipKey
from tsegossip.observe import KeyringView, Ring
from tsegossip.provider.resources import Keyring
from tsegossip.provider.world import World

OLD, NEW = GossipKey(TEST_KEY), GossipKey(OTHER_KEY)
NODES = {"server-1": "http://s1:8500", "web-1": "http://w1:8500", "web-2": "http://w2:8500"}


class Cluster:
    """Three members and their keyring; a change applies to `hearing` of them (all by default)."""

    def __init__(self) -> None:
        self.held = {n: [OLD.fingerprint] for n in NODES}
        self.primary = {n: OLD.fingerprint for n in NODES}
        self.status = {n: "alive" for n in NODES}
        self.calls: list[tuple[str, str]] = []
        self.hearing = set(NODES)
        self.now = 0.0

    def view(self, *a, **k) -> KeyringView:
        keys: dict[str, int] = {}
        prim: dict[str, int] = {}
        counted = [n for n in NODES if self.status[n] == "alive"]  # NumNodes leaves out failed and left members
        for n in counted:
            for f in self.held[n]:
                keys[f] = keys.get(f, 0) + 1
            prim[self.primary[n]] = prim.get(self.primary[n], 0) + 1
        return KeyringView((Ring(False, "dc1", "", keys, prim, len(counted)),))

    def change(self, op: str, addr: str, access, key: GossipKey) -> kr.KeyringChange:
        self.calls.append((op, key.fingerprint))
        fp = key.fingerprint
        for n in sorted(n for n in self.hearing if self.status[n] == "alive"):
            if op == "install" and fp not in self.held[n]:
                self.held[n].append(fp)
            elif op == "use":
                if fp not in self.held[n]:
                    raise kr.KeyringCallFailed(op, fp, addr, "refused", kr.KeyringReply(
                        500, failed=3, node_messages={n: "Requested key is not in the keyring"}))
                self.primary[n] = fp
            elif op == "remove":
                self.held[n] = [f for f in self.held[n] if f != fp]
        self.hearing = set(NODES)
        return kr.KeyringChange(op, fp, addr, 200, 0.01)

    def world(self, env: dict[str, str]) -> World:
        def sleep(s: float) -> None:
            self.now += s
        return World(environ=env, members=lambda *a, **k: dict(self.status), keyring=self.view,
                     change_keyring=self.change, progress=lambda line: None, sleep=sleep, clock=lambda: self.now)


def state(op: str, key: GossipKey, **kw) -> dict:
    base = {"id": Unknown, "rollout": "lab", "stack": f"lab-rotate-1-{op}", "previous_stack": None,
            "operation": op, "key_env": "NEW", "key_fingerprint": key.fingerprint,
            "held_before": OLD.fingerprint, "primary_before": OLD.fingerprint,
            "held_after": f"{OLD.fingerprint},{NEW.fingerprint}", "primary_after": OLD.fingerprint,
            "absent_after": None, "http_addr": "http://s1:8500", "members": dict(NODES),
            "token_env": None, "cacert_env": None, "client_cert_env": None, "client_key_env": None,
            "timeout_seconds": 6, "poll_seconds": 1, "verdict": Unknown}
    base.update(kw)
    return base


ENV = {"NEW": NEW.reveal(), "OLD": OLD.reveal()}


def test_install_is_proven_on_every_member():
    cluster = Cluster()
    c = ctx(CreateContext)
    out = Keyring(world=cluster.world(ENV)).create(c, state("install", NEW))
    assert not errors(c), c.diagnostics
    assert cluster.calls == [("install", NEW.fingerprint)]
    assert out["id"] == "lab/lab-rotate-1-install/keyring" and out["verdict"].startswith(f"install {NEW.fingerprint}: done")
    assert NEW.reveal() not in str(out)


def test_a_member_that_missed_the_change_is_asked_again():
    cluster = Cluster()
    cluster.hearing = {"server-1", "web-1"}  # web-2 misses the first query, answers the second
    c = ctx(CreateContext)
    assert Keyring(world=cluster.world(ENV)).create(c, state("install", NEW)) is not None, c.diagnostics
    assert cluster.calls == [("install", NEW.fingerprint)] * 2


def test_a_stage_done_on_the_live_keyring_makes_no_call():
    cluster = Cluster()
    for n in NODES:
        cluster.held[n].append(NEW.fingerprint)
    c = ctx(CreateContext)
    out = Keyring(world=cluster.world(ENV)).create(c, state("install", NEW))
    assert out["verdict"].startswith("already done") and cluster.calls == []


def test_fails_member_down_before_any_call():
    cluster = Cluster()
    cluster.status["web-2"] = "failed"
    c = ctx(CreateContext)
    assert Keyring(world=cluster.world(ENV)).create(c, state("install", NEW)) is None
    (err,) = errors(c)
    assert "web-2: member failed" in err.detail and "consul#719" in err.detail and err.path == ["members"]
    assert cluster.calls == []


def test_fails_keyring_not_where_the_stage_starts_naming_the_previous_stack():
    cluster = Cluster()
    c = ctx(CreateContext)
    s = state("remove", OLD, key_env="OLD", stack="lab-rotate-4-remove", previous_stack="lab-rotate-3-configs",
              held_before=NEW.fingerprint, primary_before=NEW.fingerprint, held_after=NEW.fingerprint,
              primary_after=NEW.fingerprint, absent_after=OLD.fingerprint)
    assert Keyring(world=cluster.world(ENV)).create(c, s) is None
    (err,) = errors(c)
    assert err.summary == "keyring (lab/lab-rotate-4-remove): the keyring is not where stack lab-rotate-4-remove starts"
    assert f"key sha256:{NEW.fingerprint} is installed on 0 of 3 members" in err.detail
    assert "Deploy lab-rotate-3-configs first; nothing was changed." in err.detail
    assert cluster.calls == [] and OLD.reveal() not in err.detail


def test_fails_another_key_than_planned_and_unknown_fingerprints():
    cluster = Cluster()
    for fp, summary in ((GossipKey.generate().fingerprint, "The gossip key does not match the plan"),
                        ("unknown", "This configuration was synthesized without the gossip key")):
        c = ctx(CreateContext)
        assert Keyring(world=cluster.world(ENV)).create(c, state("install", NEW, key_fingerprint=fp)) is None
        assert errors(c)[0].summary == summary
    assert cluster.calls == []


def test_fails_use_while_a_member_lacks_the_new_key():
    cluster = Cluster()
    c = ctx(CreateContext)
    s = state("use", NEW, held_before=f"{OLD.fingerprint},{NEW.fingerprint}", held_after=None,
              primary_after=NEW.fingerprint)
    for n in NODES:  # install reached every member but web-1
        cluster.held[n].append(NEW.fingerprint)
    cluster.held["web-1"].remove(NEW.fingerprint)
    assert Keyring(world=cluster.world(ENV)).create(c, s) is None
    (err,) = errors(c)
    assert "is installed on 2 of 3 members" in err.detail  # refused before the call: PUT would split web-1 off
    assert cluster.calls == []


def test_fails_after_the_attempts_with_the_shortfall():
    cluster = Cluster()
    cluster.change = lambda op, addr, access, key: kr.KeyringChange(op, key.fingerprint, addr, 200, 0.01)  # nobody hears
    c = ctx(CreateContext)
    assert Keyring(world=cluster.world(ENV)).create(c, state("install", NEW)) is None
    (err,) = errors(c)
    assert err.summary == f"keyring (lab/lab-rotate-1-install): install of key {NEW.fingerprint} did not reach every member"
    assert "After 3 calls" in err.detail and f"key sha256:{NEW.fingerprint} is installed on 0 of 3" in err.detail


def test_a_partial_answer_is_asked_again_after_a_short_grace():
    cluster = Cluster()
    calls = []

    def change(op, addr, access, key):
        calls.append(cluster.now)
        if len(calls) == 1:  # web-2 did not answer: Consul says 2/3, nobody named
            cluster.held["server-1"].append(key.fingerprint)
            cluster.held["web-1"].append(key.fingerprint)
            raise kr.KeyringCallFailed(op, key.fingerprint, addr, "partly", kr.KeyringReply(500, answered=2, num_nodes=3))
        for n in NODES:
            if key.fingerprint not in cluster.held[n]:
                cluster.held[n].append(key.fingerprint)
        return kr.KeyringChange(op, key.fingerprint, addr, 200, 0.01)

    cluster.change = change
    c = ctx(CreateContext)
    s = state("install", NEW, timeout_seconds=60)
    assert Keyring(world=cluster.world(ENV)).create(c, s) is not None, c.diagnostics
    assert len(calls) == 2 and calls[1] - calls[0] <= 3.0  # not a third of the timeout


def test_a_down_member_of_a_skip_role_is_left_behind_as_a_straggler():
    cluster = Cluster()
    cluster.status["web-2"] = "failed"
    c = ctx(CreateContext)
    out = Keyring(world=cluster.world(ENV)).create(c, state("install", NEW, may_be_down={"web-2": "web"}))
    assert not errors(c), c.diagnostics
    assert cluster.calls == [("install", NEW.fingerprint)]
    assert NEW.fingerprint not in cluster.held["web-2"]  # it missed the change
    assert out["stragglers"] == {"web-2": "down when lab-rotate-1-install ran (member failed, role web); missed the install"}
    assert out["verdict"].endswith("stragglers (down, skipped): web-2")
    # a down member of another role is still refused
    cluster.status["web-1"] = "left"
    c = ctx(CreateContext)
    assert Keyring(world=cluster.world(ENV)).create(c, state("install", NEW, may_be_down={"web-2": "web"})) is None
    (err,) = errors(c)
    assert "web-1: member left" in err.detail and "web-2" not in err.detail.split(".")[0]


def _rejoin_use(**kw) -> dict:
    return state("use", OLD, key_env="OLD", stack="lab-keyring-rejoin", held_before=f"{OLD.fingerprint},{NEW.fingerprint}",
                 held_after=f"{OLD.fingerprint},{NEW.fingerprint}", primary_before=None, primary_after=OLD.fingerprint,
                 may_be_down={"web-2": "web"}, await_members="web-2", **{"timeout_seconds": 30, **kw})


def test_a_rejoin_waits_for_the_straggler_to_be_an_alive_member():
    cluster = Cluster()
    for n in NODES:
        cluster.held[n], cluster.primary[n] = [OLD.fingerprint, NEW.fingerprint], NEW.fingerprint
    cluster.held["web-2"], cluster.primary["web-2"] = [OLD.fingerprint], OLD.fingerprint  # missed the install
    cluster.status["web-2"] = "failed"
    seen = []

    def members(*a, **k):
        seen.append(cluster.now)
        if cluster.primary["server-1"] == OLD.fingerprint and len(seen) > 3:  # it reads the others: serf brings it back
            cluster.status["web-2"] = "alive"
        return dict(cluster.status)

    w = cluster.world(ENV)
    w = replace(w, members=members)
    c = ctx(CreateContext)
    out = Keyring(world=w).create(c, _rejoin_use())
    assert not errors(c), c.diagnostics
    assert cluster.calls == [("use", OLD.fingerprint)] and cluster.status["web-2"] == "alive"
    assert out["stragglers"] == {"web-2": "down when lab-keyring-rejoin ran (member failed, role web); missed the use"}


def test_a_rejoin_that_does_not_come_back_is_refused_naming_it():
    cluster = Cluster()
    for n in NODES:
        cluster.held[n], cluster.primary[n] = [OLD.fingerprint, NEW.fingerprint], NEW.fingerprint
    cluster.status["web-2"] = "failed"
    c = ctx(CreateContext)
    assert Keyring(world=cluster.world(ENV)).create(c, _rejoin_use(timeout_seconds=10)) is None
    (err,) = errors(c)
    assert err.summary == "keyring (lab/lab-keyring-rejoin): web-2 did not rejoin" and err.path == ["await_members"]
    assert "web-2: member failed after" in err.detail and "repair SPEC --keyring" in err.detail


def test_a_refusal_names_the_members_short_from_their_keyring_files_where_they_run():
    """keyring_files (the spec's data_dir): read through the role's delivery only when something falls short."""
    import json as _json

    cluster = Cluster()
    for n in NODES:
        cluster.held[n].append(NEW.fingerprint)
    cluster.held["web-1"].remove(NEW.fingerprint)  # it missed the install
    opened, read = [], []

    class Session:
        def __init__(self, how, ctx):
            opened.append(how.method.value)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def keyring_fingerprints(self, target, path, timeout):
            read.append((target.node, target.http_addr, path))
            return tuple(cluster.held[target.node])

    files = {"web": _json.dumps({"delivery": {"method": "local"},
                                 "files": {"web-1": "/d/web-1/serf/local.keyring", "web-2": "/d/web-2/serf/local.keyring"}})}
    w = replace(cluster.world(ENV), open_delivery=Session)
    s = state("use", NEW, held_before=f"{OLD.fingerprint},{NEW.fingerprint}", held_after=None,
              primary_after=NEW.fingerprint, keyring_files=files)
    c = ctx(CreateContext)
    assert Keyring(world=w).create(c, s) is None
    (err,) = errors(c)
    assert "is installed on 2 of 3 members of the dc1 LAN pool; 1 lacks it: web-1 (from their serf/local.keyring)" \
        in err.detail, err.detail
    assert opened == ["local"] and read[0] == ("web-1", "http://w1:8500", "/d/web-1/serf/local.keyring")
    assert cluster.calls == []
    # nothing short: nothing read
    cluster.held["web-1"].append(NEW.fingerprint)
    opened.clear()
    c = ctx(CreateContext)
    assert Keyring(world=w).create(c, s) is not None and opened == []
