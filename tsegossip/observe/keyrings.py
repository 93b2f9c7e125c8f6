"""Which keys the keyring holds, per pool and by fingerprint: clear keys are dropped on arrival."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..keys import fingerprint_of, keyring_file  # keyring_file: read here and by the delivery backends
from .client import DEFAULT_TIMEOUT, Access, ObserveError, client_for, describe_failure

KEYRING_EMPTY = "keyring empty (encryption not enabled)"

WANTS = ("installed", "primary", "removed")

# The listing is a serf query: when a member does not answer (one just restarted, a query relayed
# through a stale peer) Consul waits out serf's query timeout, GossipInterval x 16 x ceil(log10(N+1)):
# 3.2 s on a LAN pool of up to 9 agents, 6.4 s up to 99, and the WAN pool's 0.5 s interval makes it
# 8 s for the servers. A 3 s HTTP timeout then reports "no answer" for a cluster that is fine (seen
# in CI on the 9-host fleet). The listing's own floor covers a WAN pool of up to 99 servers.
KEYRING_MIN_TIMEOUT = 20.0

# Right after a rollout's last batch Consul answered a fleet's listing with a 500 "1 error occurred:"
# for a cluster that was fine (CI, 9-host fleet): serf counts in NumNodes a member that has just
# rejoined before it answers queries, so one listing can come up short. Asked again, bounded.
KEYRING_ATTEMPTS = 3
KEYRING_RETRY_PAUSE = 1.0


@dataclass(frozen=True)
class Ring:
    """One keyring pool (WAN, or a datacenter's LAN) with keys reduced to fingerprints."""

    wan: bool
    datacenter: str
    segment: str
    keys: Mapping[str, int]
    primary: Mapping[str, int]
    num_nodes: int

    @property
    def installed(self) -> Mapping[str, int]:
        """fingerprint -> members of this pool holding the key (Consul's `Keys`)."""
        return self.keys

    @property
    def pool(self) -> str:
        if self.wan:
            return "WAN"
        return f"{self.datacenter or '?'} LAN" + (f" [segment {self.segment}]" if self.segment else "")

    def holds_everywhere(self, fingerprint: str) -> bool:
        return self.num_nodes > 0 and self.keys.get(fingerprint, 0) >= self.num_nodes

    def primary_everywhere(self, fingerprint: str) -> bool:
        return self.num_nodes > 0 and self.primary.get(fingerprint, 0) >= self.num_nodes

    def held_nowhere(self, fingerprint: str) -> bool:
        return self.keys.get(fingerprint, 0) == 0

    def short(self, fingerprint: str, want: str) -> int:
        """How many members this pool counts that are not where `want` says: lacking the key
        (installed), not using it as primary (primary), still holding it (removed)."""
        if want == "installed":
            return max(0, self.num_nodes - self.keys.get(fingerprint, 0))
        if want == "primary":
            return max(0, self.num_nodes - self.primary.get(fingerprint, 0))
        if want == "removed":
            return self.keys.get(fingerprint, 0)
        raise ValueError(f"want {want!r}: expected one of {', '.join(WANTS)}")


@dataclass(frozen=True)
class KeyringView:
    """The keyring as /v1/operator/keyring lists it, by fingerprint. `error` set when it could not be listed."""

    rings: tuple[Ring, ...] = ()
    error: str | None = None
    empty: bool = False  # some agent answered that it has no keyring (encryption not enabled)
    unkeyed: tuple[str, ...] = ()  # the members Consul named as having no keyring, when it named them

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def lan(self) -> Ring | None:
        return next((r for r in self.rings if not r.wan), self.rings[0] if self.rings else None)

    @property
    def fingerprints(self) -> dict[str, int]:
        return dict(self.lan.keys) if self.lan else {}

    @property
    def num_nodes(self) -> int:
        return self.lan.num_nodes if self.lan else 0

    @property
    def primary(self) -> tuple[str, ...]:
        return tuple(self.lan.primary) if self.lan else ()

    def holds_everywhere(self, fingerprint: str) -> bool:
        """The key is installed on every node of every listed pool."""
        return bool(self.rings) and all(r.keys.get(fingerprint, 0) >= r.num_nodes for r in self.rings)

    def primary_everywhere(self, fingerprint: str) -> bool:
        """Every node of every listed pool uses the key as its primary (what `remove` of the old one needs)."""
        return bool(self.rings) and all(r.primary_everywhere(fingerprint) for r in self.rings)

    def held_nowhere(self, fingerprint: str) -> bool:
        """No node of any listed pool holds the key. False when nothing was listed: absence is not proven."""
        return self.ok and bool(self.rings) and all(r.held_nowhere(fingerprint) for r in self.rings)

    def describe(self, fingerprint: str | None = None) -> str:
        if self.error:
            return self.error
        parts = []
        for r in self.rings:
            pool = "WAN" if r.wan else f"{r.datacenter} LAN"
            keys = ", ".join(f"{fp}{'*' if fp in r.primary else ''} on {n}/{r.num_nodes}"
                             for fp, n in sorted(r.keys.items())) or "no keys"
            parts.append(f"{pool}: {keys}")
        text = "; ".join(parts) or "no pools listed"
        return text + (" (* = primary)" if any(r.primary for r in self.rings) else "")


def _fp(encoded: str) -> str:
    try:
        return fingerprint_of(encoded)
    except (ValueError, TypeError):
        return "unparseable-key"


def _unkeyed_members(text: str) -> tuple[str, ...]:
    """The members a failed listing names as keyless, when every member it names failed that way.

    Consul's 500 body is a go-multierror list: one `* dc1 (LAN) error: 2/5 nodes reported failure`
    line per pool, then one `* <node>: <message>` line per failing member. Any other failure makes
    the answer () (not just keyless members: nothing can be concluded).
    """
    names: list[str] = []
    for line in text.splitlines():
        item = line.strip()
        if not item.startswith("* "):
            continue
        item = item[2:]
        if " (LAN) error: " in item or " (WAN) error: " in item:
            continue
        name, sep, message = item.partition(": ")
        if not sep or "encryption not enabled" not in message.lower():
            return ()
        names.append(name)
    return tuple(sorted(set(names)))


def _failure_text(text: str) -> str:
    """Consul's go-multierror body on one line: `N errors occurred: item; item` (node names, no keys)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    head, items = lines[0], [line[2:] if line.startswith("* ") else line for line in lines[1:]]
    return head + (" " + "; ".join(items) if items else "")


def _transient(text: str) -> bool:
    """Worth asking again: any 500 but an ACL refusal or a keyless agent (those do not pass by waiting).

    The failure seen in CI was cut to its first line, "1 error occurred:", so which member item it
    carried is not known; the whole body is kept in the message now, and every such failure gets the
    bounded retry (at most KEYRING_ATTEMPTS listings, a second apart).
    """
    return "encryption not enabled" not in text.lower()


def keyring(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT,
            local_only: bool = False, attempts: int = KEYRING_ATTEMPTS) -> KeyringView:
    """List the keyring through the agent at http_addr, keys reduced to fingerprints.

    local_only sends Consul's `local-only`, which in 1.14 leaves out the WAN pool and other
    datacenters: it is still the whole LAN pool's answer, not the keys of the agent asked (measured:
    a client's own API, another client's and a server's give the same counts; see `shortfall`).
    A listing that some member did not answer is asked again, up to `attempts` times in all.
    """
    import time

    view = KeyringView(error=f"{http_addr}: keyring not listed")
    for attempt in range(1, max(1, attempts) + 1):
        view, transient = _list_once(http_addr, access, timeout, local_only)
        if not transient or attempt >= attempts:
            return view
        time.sleep(KEYRING_RETRY_PAUSE)
    return view


def _list_once(http_addr: str, access: Access | None, timeout: float,
               local_only: bool) -> tuple[KeyringView, bool]:
    """One listing, and whether its failure is the transient unanswered-query kind."""
    import consul  # on first use: the provider must start without them (see tsegossip.observe)
    import requests

    timeout = max(timeout, KEYRING_MIN_TIMEOUT)
    try:
        listed = client_for(http_addr, access, timeout).operator.keyring.list(local_only=local_only or None)
    except consul.ACLPermissionDenied as err:
        return KeyringView(error=describe_failure(http_addr, err, access)), False
    except consul.ConsulException as err:
        text = str(err)
        if "encryption not enabled" in text.lower():
            return KeyringView(error=KEYRING_EMPTY, empty=True, unkeyed=_unkeyed_members(text)), False
        detail = _failure_text(text) or type(err).__name__
        return KeyringView(error=f"{http_addr}: keyring listing failed: {detail}"), _transient(text)
    except (requests.exceptions.RequestException, ValueError, ObserveError) as err:
        msg = str(err) if isinstance(err, ObserveError) else describe_failure(http_addr, err, access)
        return KeyringView(error=msg), False
    if not isinstance(listed, list):
        return (KeyringView(error=f"{http_addr}: /v1/operator/keyring returned {type(listed).__name__}, "
                                  "expected a list"), False)
    rings = tuple(
        Ring(
            wan=bool(entry.get("WAN")),
            datacenter=entry.get("Datacenter", ""),
            segment=entry.get("Segment", ""),
            keys={_fp(k): int(v) for k, v in (entry.get("Keys") or {}).items()},
            primary={_fp(k): int(v) for k, v in (entry.get("PrimaryKeys") or {}).items()},
            num_nodes=int(entry.get("NumNodes") or 0),
        )
        for entry in listed
    )
    return KeyringView(rings=rings), False


def keyring_fingerprints(http_addr: str, access: Access | None = None,
                         timeout: float = DEFAULT_TIMEOUT) -> tuple[dict[str, int], int, tuple[str, ...]]:
    """(fingerprint -> node count, NumNodes, primary fingerprints) of the LAN pool; raises ObserveError on failure."""
    view = keyring(http_addr, access, timeout)
    if view.error:
        raise ObserveError(view.error)
    return view.fingerprints, view.num_nodes, view.primary


# ---- who falls short -------------------------------------------------------------------------
#
# Consul 1.14 cannot say which members lack a key. Measured on the lab (3 servers, 3 clients, one
# member that missed an install): GET /v1/operator/keyring answers 200 with `Keys[new]: 5,
# NumNodes: 6` and no Messages, and ?local-only=1 asked on that member's own API, on another
# client's and on a server's gives the same pool-wide counts (local-only leaves out the WAN pool and
# other datacenters, PR #6279: it is not a per-agent listing). A keyring change names members only
# when they answer and refuse (`web-1: Removing the primary key is not allowed`); one that never
# hears the query is only counted (`5/6 nodes reported success`). What does name them:
#   - each agent's <data_dir>/serf/local.keyring, which serf rewrites on every change the agent
#     makes (primary first); read where the agent runs (`keyring_file`, `short_by_keyring_files`);
#   - /v1/agent/members for a member the pool does not count at all: one cut off because it shares
#     no key with the others is `left` or `failed`, and NumNodes leaves it out, so a listing of the
#     rest looks complete (`holds_everywhere` is true) while that member holds nothing we know of.


@dataclass(frozen=True)
class Shortfall:
    """How far the keyring is from `want` for one key, and which members are known to fall short.

    want: installed (on every member) | primary (every member uses it) | removed (no member holds it).
    """

    fingerprint: str
    want: str
    short: int = 0  # members the worst pool counts that fall short
    num_nodes: int = 0  # members that pool counts (Consul's NumNodes)
    pool: str = ""
    named: tuple[str, ...] = ()  # members known by name to fall short (their keyring files)
    unnamed: int = 0  # of `short`, how many no source could name
    uncounted: tuple[str, ...] = ()  # "name (status)" of members the pool does not count: keyring unknown
    error: str | None = None  # the keyring could not be listed: nothing can be concluded

    @property
    def ok(self) -> bool:
        return self.error is None and self.short == 0 and not self.uncounted

    def describe(self) -> str:
        what = {"installed": "installed on", "primary": "the primary key of", "removed": "removed from"}[self.want]
        if self.error:
            return f"cannot tell whether key sha256:{self.fingerprint} is {what} every member: {self.error}"
        parts = []
        if self.short:
            one = self.short == 1
            lack = {"installed": "lacks it" if one else "lack it",
                    "primary": "does not use it as primary" if one else "do not use it as primary",
                    "removed": "still holds it" if one else "still hold it"}[self.want]
            done = self.num_nodes - self.short
            text = (f"key sha256:{self.fingerprint} is {what} {done} of {self.num_nodes} members of the "
                    f"{self.pool} pool; {self.short} {lack}")
            if self.named:
                text += f": {', '.join(self.named)} (from their serf/local.keyring)"
            if self.unnamed:
                text += ((f", and {self.unnamed} more" if self.named else "")
                         + "; which ones Consul 1.14 does not say (its listing counts keys per pool, and "
                           "?local-only=1 leaves out only the WAN pool: every agent answers with the same counts)")
            parts.append(text)
        if self.uncounted:
            parts.append(f"the keyring listing does not count {', '.join(self.uncounted)} at all: a member that "
                         "shares no key with the others is cut off and left out of NumNodes, so its keyring is unknown")
        if not parts:
            return f"key sha256:{self.fingerprint} is {what} every member ({self.num_nodes} in the {self.pool} pool)"
        return "; ".join(parts)


def short_by_keyring_files(files: Mapping[str, str | None], fingerprint: str, want: str) -> tuple[str, ...]:
    """The members (node -> its local.keyring text, None when unread) whose file falls short of `want`.

    A file that is missing or does not parse names nobody: it proves nothing either way.
    """
    return short_by_held({n: keyring_file(t) if t is not None else None for n, t in files.items()},
                         fingerprint, want)


def short_by_held(held_by: Mapping[str, tuple[str, ...] | None], fingerprint: str, want: str) -> tuple[str, ...]:
    """The members (node -> the fingerprints its local.keyring holds, primary first; None when unread) that
    fall short of `want`. An unread or empty keyring names nobody."""
    if want not in WANTS:
        raise ValueError(f"want {want!r}: expected one of {', '.join(WANTS)}")
    out = []
    for node, held in held_by.items():
        if not held:
            continue
        if ((want == "installed" and fingerprint not in held)
                or (want == "primary" and held[0] != fingerprint)
                or (want == "removed" and fingerprint in held)):
            out.append(node)
    return tuple(sorted(out))


def shortfall(view: KeyringView, fingerprint: str, want: str = "installed", *,
              members: Mapping[str, str] | None = None,
              keyring_files: Mapping[str, str | None] | None = None,
              held: Mapping[str, tuple[str, ...] | None] | None = None) -> Shortfall:
    """How far `view` is from `want` for the key, naming members where anything can name them.

    members: name -> alive/leaving/left/failed (observe.members) of the members that should hold
    the key; those not alive are reported as uncounted. keyring_files: node -> the text of its
    serf/local.keyring (None when it could not be read), to name the members that fall short; held: the
    same as fingerprints (read where the agent runs, backends.session.Session.keyring_fingerprints).
    """
    if want not in WANTS:
        raise ValueError(f"want {want!r}: expected one of {', '.join(WANTS)}")
    uncounted = tuple(f"{n} ({s})" for n, s in sorted((members or {}).items()) if s != "alive")
    if not view.ok or not view.rings:
        return Shortfall(fingerprint, want, error=view.error or "no pools listed", uncounted=uncounted)
    worst = max(view.rings, key=lambda r: (r.short(fingerprint, want), not r.wan))
    short = worst.short(fingerprint, want)
    named = tuple(sorted(set(short_by_keyring_files(keyring_files or {}, fingerprint, want))
                         | set(short_by_held(held or {}, fingerprint, want)))) if short else ()
    return Shortfall(fingerprint, want, short=short, num_nodes=worst.num_nodes, pool=worst.pool,
                     named=named, unnamed=max(0, short - len(named)), uncounted=uncounted)
