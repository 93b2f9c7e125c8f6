"""The keyring's side effects: install, use and remove a gossip key through one agent's HTTP API.

Each call is one python-consul2 request (`c.operator.keyring.create/update/delete`: POST, PUT,
DELETE /v1/operator/keyring) from the runner to the agent at `KeyringAgent.http_addr`. That agent
(a client forwards the RPC to a server) runs it as a serf query over the LAN gossip pool, so every
member that hears the query changes its keyring; the answer says how many did, never which.

Measured on the lab's Consul 1.14.11 (3 servers, 3 clients):
- a change that every member made answers 200 with an empty body, in 0.03-0.4 s;
- a member that does not answer (killed, still suspected) makes Consul wait serf's query timeout
  (3.2 s on a pool under 10) and answer 500 `dc1 (LAN) error: 4/6 nodes reported success`, naming
  nobody; the change was made on the members that heard it (a live member can miss it too), so a
  caller lists the keyring and asks again: install, use and remove are idempotent on a member that
  already holds, uses or lacks the key;
- a member that refuses says why by name: 500 `dc1 (LAN) error: 6/6 nodes reported failure`, then
  one `<node>: Removing the primary key is not allowed` (or `Requested key is not in the keyring`)
  per member.

The key is revealed only in the request body; results and errors carry `key.fingerprint`, and any
text Consul sends back is passed through the one redaction rule before it is kept.

The client is built by the caller with `observe.client.client_for` (token and TLS from the
environment variables an `Access` names) and its failures told with `observe.client.describe_failure`:
backends may not import observation (tests/test_layers.py), so `KeyringAgent` carries both in.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..keys import GossipKey, redact_text

OPERATIONS = ("install", "use", "remove")

# A keyring change is a serf query: Consul answers only once every member answered or serf's query
# timeout passed (GossipInterval x 16 x ceil(log10(N+1)): 3.2 s up to 9 agents, 6.4 s up to 99; the
# WAN pool's makes it 8 s). The same floor as observe.keyrings.KEYRING_MIN_TIMEOUT, for the client.
KEYRING_CALL_TIMEOUT = 20.0

_POOL_ITEM = re.compile(r"^(?P<pool>WAN|\S+ \(LAN\))(?: \[(?:segment|partition): [^\]]*\])* error: (?P<error>.*)$")
_COUNT = re.compile(r"^(?P<n>\d+)/(?P<of>\d+) nodes reported (?P<what>success|failure)$")


@dataclass(frozen=True)
class KeyringAgent:
    """The agent a keyring change is sent to: its address, a python-consul2 client for it, and how
    a transport or ACL failure of it is told to a person (`describe_failure` bound to the address)."""

    http_addr: str
    client: Any  # consul.Consul, from observe.client.client_for(http_addr, access, KEYRING_CALL_TIMEOUT)
    describe: Callable[[Exception], str] | None = None


@dataclass(frozen=True)
class KeyringChange:
    """One keyring change Consul accepted (HTTP 200: every member it counted made it)."""

    operation: str  # install | use | remove
    fingerprint: str
    http_addr: str
    status: int
    seconds: float
    # node -> message; Consul 1.14 sends none with a 200 (its body is empty), kept for an answer that does
    node_messages: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        done = {"install": "installed", "use": "made primary", "remove": "removed"}[self.operation]
        return f"key sha256:{self.fingerprint} {done} through {self.http_addr} in {self.seconds:.2f}s"


@dataclass(frozen=True)
class KeyringReply:
    """Consul's failure text, read: the pools' errors and each named member's message."""

    status: int | None
    pool_errors: tuple[str, ...] = ()  # "dc1 (LAN): 6/6 nodes reported failure"
    node_messages: Mapping[str, str] = field(default_factory=dict)
    answered: int | None = None  # from "k/N nodes reported success": k members answered
    failed: int | None = None  # from "k/N nodes reported failure": k members refused
    num_nodes: int | None = None
    text: str = ""  # the whole body on one line, redacted


class KeyringCallFailed(RuntimeError):
    """A keyring change Consul did not accept; the message names the address, the change and the fingerprint.

    `partial` is the unanswered-query kind (some members did not answer, none refused): the change
    was made on the members that heard it, and asking again is the remedy. Otherwise
    `node_messages` names the members that refused, with their reasons.
    """

    def __init__(self, operation: str, fingerprint: str, http_addr: str, message: str,
                 reply: KeyringReply | None = None, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.operation = operation
        self.fingerprint = fingerprint
        self.http_addr = http_addr
        self.reply = reply or KeyringReply(status=None)
        self.seconds = seconds

    @property
    def status(self) -> int | None:
        return self.reply.status

    @property
    def node_messages(self) -> Mapping[str, str]:
        return self.reply.node_messages

    @property
    def partial(self) -> bool:
        return self.reply.answered is not None and self.reply.failed is None and not self.reply.node_messages

    def members_saying(self, text: str) -> tuple[str, ...]:
        """The members whose message contains `text` (e.g. "Requested key is not in the keyring")."""
        return tuple(sorted(n for n, m in self.node_messages.items() if text.lower() in m.lower()))


def install(agent: KeyringAgent, key: GossipKey) -> KeyringChange:
    """POST the key: every member that hears the query adds it to its keyring (the primary stays)."""
    return _change(agent, "install", key)


def use(agent: KeyringAgent, key: GossipKey) -> KeyringChange:
    """PUT the key: every member that hears the query makes it its primary (it must hold it already)."""
    return _change(agent, "use", key)


def remove(agent: KeyringAgent, key: GossipKey) -> KeyringChange:
    """DELETE the key from every member that hears the query; a member using it as primary refuses."""
    return _change(agent, "remove", key)


def read_reply(text: str, status: int | None = None) -> KeyringReply:
    """Consul's failure body (a go-multierror list, or one line) as pools' errors and per-member messages.

    `* dc1 (LAN) error: 6/6 nodes reported failure` is a pool's error (`WAN error: …`, with
    ` [segment: x]` or ` [partition: x]` where set); every other `* <node>: <message>` is a member's.
    Consul sends each pool's error before its members, in random order within it.
    """
    text = redact_text(text)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    items = [line[2:] for line in lines if line.startswith("* ")]
    if not items:
        items = lines  # one plain line: "No known Consul servers", "Invalid use of local-only: ..."
    pools: list[str] = []
    nodes: dict[str, str] = {}
    answered = failed = num = None
    for item in items:
        m = _POOL_ITEM.match(item)
        if m:
            error = m.group("error").strip()
            pools.append(f"{m.group('pool')}: {error}")
            c = _COUNT.match(error)
            if c:
                n, of = int(c.group("n")), int(c.group("of"))
                num = of if num is None else max(num, of)
                if c.group("what") == "success":
                    answered = n if answered is None else min(answered, n)
                else:
                    failed = n if failed is None else max(failed, n)
            continue
        name, sep, message = item.partition(": ")
        if sep and name and " " not in name:
            nodes[name] = message.strip()
        else:
            pools.append(item)
    head = lines[0] if lines and lines[0].endswith("occurred:") else ""
    flat = (head + " " if head else "") + "; ".join(items)
    return KeyringReply(status=status, pool_errors=tuple(pools), node_messages=nodes, answered=answered,
                        failed=failed, num_nodes=num, text=flat.strip())


def _change(agent: KeyringAgent, operation: str, key: GossipKey) -> KeyringChange:
    import consul  # on first use: the provider must start without it (see tsegossip.observe)
    import requests

    if operation not in OPERATIONS:
        raise ValueError(f"keyring operation {operation!r}: expected one of {', '.join(OPERATIONS)}")
    fp = key.fingerprint
    call = {"install": agent.client.operator.keyring.create,
            "use": agent.client.operator.keyring.update,
            "remove": agent.client.operator.keyring.delete}[operation]
    t0 = time.monotonic()
    try:
        accepted = call(key.reveal())
    except consul.ACLPermissionDenied as err:
        raise _failed(agent, operation, fp, _told(agent, err), KeyringReply(status=403), t0) from None
    except consul.ConsulException as err:
        status, body = _status_and_body(str(err))
        reply = read_reply(body, status)
        raise _failed(agent, operation, fp, _refusal(reply), reply, t0) from None
    except (requests.exceptions.RequestException, ValueError) as err:
        raise _failed(agent, operation, fp, _told(agent, err), None, t0) from None
    seconds = time.monotonic() - t0
    if not accepted:  # CB.bool: any status but 200 that python-consul2 does not raise for (a 404)
        reply = KeyringReply(status=None, text="Consul did not answer 200")
        raise KeyringCallFailed(operation, fp, agent.http_addr,
                                f"{_what(agent, operation, fp)} failed: Consul did not answer 200 "
                                "(is it a Consul agent's HTTP API?)", reply, seconds)
    return KeyringChange(operation, fp, agent.http_addr, 200, seconds)


def _what(agent: KeyringAgent, operation: str, fp: str) -> str:
    verb = {"install": "installing", "use": "making primary", "remove": "removing"}[operation]
    return f"{agent.http_addr}: {verb} key sha256:{fp}"


def _failed(agent: KeyringAgent, operation: str, fp: str, why: str, reply: KeyringReply | None,
            t0: float) -> KeyringCallFailed:
    seconds = time.monotonic() - t0
    return KeyringCallFailed(operation, fp, agent.http_addr,
                             f"{_what(agent, operation, fp)} failed after {seconds:.1f}s: {why}", reply, seconds)


def _told(agent: KeyringAgent, err: Exception) -> str:
    """A transport or ACL failure in the words of observe.client.describe_failure, when given."""
    if agent.describe is not None:
        text = agent.describe(err)
        prefix = f"{agent.http_addr}: "
        return redact_text(text[len(prefix):] if text.startswith(prefix) else text)
    first = (str(err).strip().splitlines() or [""])[0]
    return redact_text(f"{type(err).__name__}: {first}"[:300])


def _status_and_body(text: str) -> tuple[int | None, str]:
    """python-consul2 raises ConsulException('500 <body>') and BadRequest('400 <body>')."""
    m = re.match(r"^(\d{3}) (.*)$", text, re.S)
    return (int(m.group(1)), m.group(2)) if m else (None, text)


def _refusal(reply: KeyringReply) -> str:
    """Consul's answer in one line: the pools' errors, then the members grouped by what they said."""
    status = f"HTTP {reply.status}" if reply.status else "Consul refused"
    parts = list(reply.pool_errors)
    by_message: dict[str, list[str]] = {}
    for node, message in reply.node_messages.items():
        by_message.setdefault(message, []).append(node)
    for message, nodes in sorted(by_message.items()):
        parts.append(f"{message}: {', '.join(sorted(nodes))}")
    if reply.answered is not None and reply.num_nodes is not None and reply.failed is None:
        parts.append(f"{reply.num_nodes - reply.answered} member(s) did not answer, which ones Consul does not say; "
                     "the members that answered made the change: list the keyring and ask again")
    return f"{status}: " + ("; ".join(parts) if parts else reply.text or "no reason given")
