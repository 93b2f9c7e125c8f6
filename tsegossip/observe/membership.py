"""Who is a member of the LAN pool, and in which state, as one agent sees it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from .client import DEFAULT_TIMEOUT, Access, ObserveError, client_for, describe_failure

STATUS_NAMES = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


@dataclass(frozen=True)
class Member:
    """One row of /v1/agent/members: who, where it gossips from, its state, and whether it is a server."""

    name: str
    addr: str
    port: int
    status: str     # alive / leaving / left / failed
    server: bool    # serf tag role=consul (servers); clients carry role=node

    @property
    def where(self) -> str:
        return f"{self.addr}:{self.port}" if self.addr else "address unknown"


def parse_members(rows: Iterable[Any]) -> tuple[Member, ...]:
    """/v1/agent/members rows as values (a row that is not an object is skipped, not trusted)."""
    out = []
    for r in rows:
        if not isinstance(r, dict) or not isinstance(r.get("Name"), str):
            continue
        tags = r.get("Tags") if isinstance(r.get("Tags"), dict) else {}
        port = r.get("Port")
        out.append(Member(r["Name"], str(r.get("Addr") or ""), port if isinstance(port, int) else 0,
                          STATUS_NAMES.get(r.get("Status"), str(r.get("Status"))), tags.get("role") == "consul"))
    return tuple(out)


def members(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
    """Member name -> alive/leaving/left/failed, as the agent at http_addr sees the LAN pool.

    Raises ObserveError (with a readable message) when the agent does not answer.
    """
    return {m.name: m.status for m in roster(http_addr, access, timeout)}


def roster(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT) -> tuple[Member, ...]:
    """Every member of the LAN pool as the agent at http_addr sees it, with its address and role.

    Raises ObserveError (with a readable message) when the agent does not answer.
    """
    import consul  # on first use: the provider must start without them (see tsegossip.observe)
    import requests

    def with_headers(response):
        consul.base.CB._status(response)  # raises python-consul2's exceptions, as agent.members() would
        return response.headers, json.loads(response.body)

    try:
        c = client_for(http_addr, access, timeout)
        auth = {"X-Consul-Token": c.token} if c.token else {}  # what agent.members() sends
        headers, listed = c.http.get(with_headers, "/v1/agent/members", headers=auth)
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError) as err:
        raise ObserveError(describe_failure(http_addr, err, access)) from None
    # Consul drops, without an error, every member the token may not read: a partial list would
    # make alive members look absent, so it is no answer at all. It says so in a header, except to
    # the anonymous token; an empty list gives that one away (an agent always lists itself).
    filtered = str(headers.get("X-Consul-Results-Filtered-By-ACLs", "")).lower() == "true"
    if filtered or listed == []:
        token_env = (access or Access()).token_env
        who = f"the token in ${token_env}" if c.token else f"the anonymous token (${token_env} is unset)"
        raise ObserveError(f"{http_addr}: Consul left members out of /v1/agent/members because {who} "
                           f'may not read them; the token needs the rule node_prefix "" {{ policy = "read" }}')
    if not isinstance(listed, list):
        raise ObserveError(f"{http_addr}: /v1/agent/members returned {type(listed).__name__}, expected a list")
    return parse_members(listed)
