"""Who is a member of the LAN pool, and in which state, as one agent sees it."""

from __future__ import annotations

from .client import DEFAULT_TIMEOUT, Access, ObserveError, client_for, describe_failure

STATUS_NAMES = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


def members(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
    """Member name -> alive/leaving/left/failed, as the agent at http_addr sees the LAN pool.

    Raises ObserveError (with a readable message) when the agent does not answer.
    """
    import consul  # on first use: the provider must start without them (see tsegossip.observe)
    import requests

    try:
        listed = client_for(http_addr, access, timeout).agent.members()
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError) as err:
        raise ObserveError(describe_failure(http_addr, err)) from None
    if not isinstance(listed, list):
        raise ObserveError(f"{http_addr}: /v1/agent/members returned {type(listed).__name__}, expected a list")
    return {m["Name"]: STATUS_NAMES.get(m.get("Status"), str(m.get("Status"))) for m in listed}
