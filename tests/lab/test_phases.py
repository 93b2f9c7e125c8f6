"""The phase compatibility table of facts/gossip-compat.md, with real agents.

Two servers ("peers") run in phase Y; the client X is restarted into phase X.
Connected cases must converge (everyone sees everyone alive); split cases must
not converge within SPLIT_WINDOW seconds (memberlist LAN defaults: probe every
1 s, suspicion ~4 s, so a node that is cut off is visibly not-alive well within it).
"""
import pytest

from tsegossip import lab
from tsegossip.waiting import wait_until
from tests.support import MEASURED_COMPAT

SPLIT_WINDOW = 7.0

# The measured pairs of different phases: a node restarted into X among peers in another phase.
CASES = [(p, x, ok) for p, x, ok in MEASURED_COMPAT if p != x]


def split_now(c):
    """(someone does not see everyone alive right now, the lab's account of who)."""
    try:
        lab.wait_converged(c, timeout=0)
        return False, None
    except lab.LabError as e:
        return True, str(e)


def views(c):
    """node -> {member: status} as each running agent sees it."""
    out = {}
    for row in lab.status(c):
        out[row.name] = row.members
    return out


@pytest.mark.parametrize("peers,x,connected", CASES, ids=[f"{p}+{x}" for p, x, _ in CASES])
def test_phase_pair(tmp_path, lab_binary, peers, x, connected):
    key = lab.generate_key()
    with lab.running_lab(tmp_path, servers=2, clients=1, groups=1, binary=lab_binary,
                         initial_fragments={"servers": lab.phase_fragment(peers, key),
                                            "clients": lab.phase_fragment(peers, key)}) as c:
        lab.write_fragment(c, "web-1", lab.phase_fragment(x, key))
        lab.restart(c, "web-1", timeout=45, wait_join=False)
        if connected:
            lab.wait_converged(c, timeout=10)
            rows = {r.name: r for r in lab.status(c)}
            assert rows["web-1"].encrypted is True
            assert (rows["web-1"].verify_incoming, rows["web-1"].verify_outgoing) == (
                x == "enforced", x in ("send-encrypted", "enforced"))
            # and it stays connected (not only at the first look): watch 3 s for anyone dropping out
            lost = wait_until(lambda: split_now(c), timeout=3, interval=0.25)
            assert not lost.ok, lost.value
        else:
            with pytest.raises(lab.LabError, match="did not converge"):
                lab.wait_converged(c, timeout=SPLIT_WINDOW)
            v = views(c)
            assert v["server-1"]["web-1"] != "alive" or v["server-2"]["web-1"] != "alive" \
                or set(v["web-1"]) == {"web-1"} or any(s != "alive" for s in v["web-1"].values())
            log = open(c.node("web-1").log_path).read() + open(c.node("server-1").log_path).read()
            assert any(s in log for s in (
                "Remote state is encrypted and encryption is not configured",
                "Encryption is configured but remote state is not encrypted",
                "Decrypt packet failed",
            ))


def test_restart_into_plaintext_keeps_keyring(tmp_path, lab_binary):
    """Removing `encrypt` does not turn encryption off once a keyring file exists (Consul behaviour)."""
    key = lab.generate_key()
    frag = lab.phase_fragment("accept-encrypted", key)
    with lab.running_lab(tmp_path, servers=1, clients=1, groups=1, binary=lab_binary,
                         initial_fragments={"servers": frag, "clients": frag}) as c:
        lab.write_fragment(c, "web-1", {"encrypt_verify_incoming": False, "encrypt_verify_outgoing": False})
        lab.restart(c, "web-1", timeout=45)
        row = {r.name: r for r in lab.status(c)}["web-1"]
        assert row.encrypted is True
        lab.wait_converged(c, timeout=5)


def test_disable_keyring_file(tmp_path, lab_binary):
    key = lab.generate_key()
    frag = dict(lab.phase_fragment("enforced", key), disable_keyring_file=True)
    with lab.running_lab(tmp_path, servers=1, clients=1, groups=1, binary=lab_binary,
                         initial_fragments={"servers": frag, "clients": frag}) as c:
        import os
        assert not os.path.exists(c.node("web-1").keyring_path)
        assert all(r.encrypted for r in lab.status(c))
        # without `encrypt` and without a keyring file the node is plaintext again -> cut off
        lab.write_fragment(c, "web-1", {"disable_keyring_file": True})
        lab.restart(c, "web-1", timeout=45, wait_join=False)
        assert {r.name: r for r in lab.status(c)}["web-1"].encrypted is False
        with pytest.raises(lab.LabError):
            lab.wait_converged(c, timeout=4)
