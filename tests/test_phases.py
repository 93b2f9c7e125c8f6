import itertools

import pytest

from tsegossip.phases import Phase, compatible, why_incompatible
from tests.support import MEASURED_COMPAT

MEASURED = MEASURED_COMPAT


@pytest.mark.parametrize("a,b,ok", MEASURED)
def test_compatibility_matches_measurements(a, b, ok):
    assert compatible(Phase(a), Phase(b)) is ok
    assert compatible(Phase(b), Phase(a)) is ok


def test_compatibility_from_send_and_accept_semantics():
    # Derive the rule again from what each phase sends and accepts: a talks to b when
    # each accepts what the other sends.
    def accepts(receiver: Phase, sent: str) -> bool:
        return receiver.accepts in ("both", sent)

    for a, b in itertools.product(Phase, repeat=2):
        derived = accepts(a, b.sends) and accepts(b, a.sends)
        assert derived == compatible(a, b), (a, b)


@pytest.mark.parametrize(
    "phase,flags",
    [
        ("plaintext", (None, None)),
        ("accept-encrypted", (False, False)),
        ("send-encrypted", (False, True)),
        ("enforced", (True, True)),
    ],
)
def test_flags_table_of_the_issue(phase, flags):
    p = Phase(phase)
    assert (p.verify_incoming, p.verify_outgoing) == flags
    assert Phase.from_flags(p.has_key, *flags) is p


def test_consul_defaults_make_a_bare_key_enforced():
    assert Phase.from_flags(True, None, None) is Phase.ENFORCED


def test_verify_incoming_without_outgoing_is_no_phase():
    assert Phase.from_flags(True, True, False) is None


def test_why_incompatible_quotes_memberlist():
    assert "Remote state is encrypted" in why_incompatible(Phase.PLAINTEXT, Phase.ENFORCED)
    assert "remote state is not encrypted" in why_incompatible(Phase.ENFORCED, Phase.ACCEPT_ENCRYPTED)
