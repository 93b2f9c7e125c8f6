"""Which raft leader a server knows: the one question asked between server batches.

A server that is an alive gossip member may still be outside raft (it has not heard from the
leader since it started); restarting the next server then can cost the quorum. /v1/status/leader
needs no ACL rule, so the documented token keeps working; it answers "" while there is no leader.
"""

from __future__ import annotations

from .client import DEFAULT_TIMEOUT, Access, ObserveError, client_for, describe_failure


def raft_leader(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The raft leader's address as the agent at http_addr knows it, "" when it knows none.

    Raises ObserveError (with a readable message) when the agent does not answer.
    """
    import consul  # on first use: the provider must start without them (see tsegossip.observe)
    import requests

    try:
        return str(client_for(http_addr, access, timeout).status.leader() or "")
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError) as err:
        raise ObserveError(describe_failure(http_addr, err, access)) from None
