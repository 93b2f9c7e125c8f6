"""Judge a live cluster against the phases it should be in.

Shared by `tsegossip check` and the provider's phase gate, so both say the same thing
about the same cluster. Sits just above observe: it imports observe and the vocabulary only (tests/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from . import observe
from .agentconfig import KEYRING_WINS_LOG, stale_keyring_remedy
from .expectations import NOT_JOINED, must_be_member  # noqa: F401 (NOT_JOINED: re-exported)
from .phases import Phase


@dataclass(frozen=True)
class NodeVerdict:
    name: str
    role: str
    expected: str              # a phase name, or not-joined
    member: str                # alive / failed / left / absent / unknown
    observed: str              # a phase name, unreachable or unknown
    problems: tuple[str, ...]
    seen_from: str = "member"  # where `observed` comes from: the member's own API, or only the servers' member list


    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ClusterVerdict:
    nodes: tuple[NodeVerdict, ...]
    keyring: str
    problems: tuple[str, ...]   # cluster-wide ones (members unreadable, keyring short)

    def audit(self) -> str:
        """The line an auditor pastes: alive members seen enforced (from their own API) of all alive
        members, and the keyring. A member whose phase is unknown is not counted as enforced."""
        alive = [n for n in self.nodes if n.member == "alive"]
        enforced = sum(n.observed == Phase.ENFORCED.value for n in alive)
        blind = sum(n.seen_from != MEMBER_API for n in alive)
        note = f" ({blind} seen only in the servers' member list, not counted as enforced)" if blind else ""
        ring = self.keyring if self.keyring.startswith("keyring") else f"keyring {self.keyring}"
        return f"{enforced}/{len(alive)} members enforced{note}, {ring}"

    @property
    def ok(self) -> bool:
        return not self.problems and all(n.ok for n in self.nodes)

    def all_problems(self) -> list[str]:
        return list(self.problems) + [f"{n.name}: {p}" for n in self.nodes for p in n.problems]


# NodeVerdict.seen_from: the phase read from the member's own /v1/agent/self, or (its API not reachable,
# as for clients serving HTTP on 127.0.0.1) only its status in the servers' member list.
MEMBER_API = "member"
SERVERS_VIEW = "servers"


def stale_keyring_fix(key_env: str) -> str:
    """Why some member may lack the key, and the fix. Consul 1.14 lists keyrings only cluster-wide
    (`local-only` leaves out the WAN pool, not the other agents), so the member cannot be named."""
    return (
        f"a member whose keyring lacks the key in ${key_env} has a stale <data_dir>/serf/local.keyring: Consul keeps "
        f"using it once it exists and ignores a changed `encrypt` (log: \"{KEYRING_WINS_LOG}\"). Fix: "
        f"{stale_keyring_remedy('that agent')}"
    )


def judge(
    view: observe.ClusterView,
    expected: Mapping[str, str],
    roles: Mapping[str, str],
    fingerprint: str | None,
    key_env: str = "the key variable",
) -> ClusterVerdict:
    """Compare `view` with `expected` (node → phase name or not-joined).

    fingerprint is the expected key's; None skips key checks.
    """
    cluster_problems: list[str] = []
    if view.members is None:
        cluster_problems.append(f"cannot list members: {view.members_error}")
    rows: list[NodeVerdict] = []
    any_encrypted = False
    for name in sorted(expected, key=lambda n: (roles.get(n) != "servers", roles.get(n, ""), n)):
        want = expected[name]
        member = view.member_status(name)
        node = view.nodes.get(name)
        observed = node.label if node else "unknown"
        problems: list[str] = []
        if not must_be_member(want):
            if member == "alive":
                problems.append("is an alive member although the spec says it has not joined")
        else:
            if member != "alive" and view.members is not None:
                problems.append(f"member status {member}, expected alive")
            if node is not None and not node.reachable:
                problems.append(node.describe())
            elif observed != want:
                problems.append(f"runs {node.describe() if node else observed}, expected {want}")
            if want != Phase.PLAINTEXT.value:
                any_encrypted = True
        rows.append(NodeVerdict(name, roles.get(name, ""), want, member, observed, tuple(problems),
                                MEMBER_API if node is not None and node.reachable else SERVERS_VIEW))
    ring_text = "not read"
    if view.keyring is not None:
        ring_text = view.keyring.describe()
        if any_encrypted and fingerprint:
            if view.keyring.ok and not view.keyring.holds_everywhere(fingerprint):
                cluster_problems.append(
                    f"the keyring does not hold key sha256:{fingerprint} on every node ({ring_text}); "
                    + stale_keyring_fix(key_env))
            elif not view.keyring.ok and not view.keyring.empty:
                cluster_problems.append(f"cannot list the keyring: {view.keyring.error}")
    return ClusterVerdict(tuple(rows), ring_text, tuple(cluster_problems))
