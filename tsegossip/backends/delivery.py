"""Delivery sessions: getting a node's fragment onto the host its agent runs on, and restarting it there.

One session per resource apply (one step of one role). The rollout asks it to `preflight` every
node it is about to move (ssh: connect to each host and verify its key, before anything is written
anywhere), then per node to `write` the fragment and `restart` the agent, and finally `close`s it.

Where the side effects happen (named in every failure, see `host_of`):
  LocalSession    the runner writes config_path and runs the restart command;
  CommandSession  the runner starts the operator's program (fragment on stdin, node, config_path and
                  http_addr as arguments; exit 0 = delivered), then runs the restart command;
  ssh.SshSession  the node's host writes config_path and runs the restart command (backends/ssh.py).
The key is only ever in the fragment text: never in an argv, an environment or a log line.
"""

from __future__ import annotations

from ..delivery import Delivery, Method
from .operator_command import CommandSession
from .session import Context, DeliveryFailed, Outcome, Session, Target

__all__ = ["Context", "DeliveryFailed", "Outcome", "Session", "Target", "open_session"]


def open_session(delivery: Delivery, ctx: Context) -> Session:
    """The session for `delivery`'s method."""
    if delivery.method is Method.SSH:
        from .ssh import SshSession  # asyncssh is imported only where ssh delivery is used

        return SshSession(delivery, ctx)
    if delivery.method is Method.COMMAND:
        return CommandSession(delivery, ctx)
    return Session(delivery, ctx)
