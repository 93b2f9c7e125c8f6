"""Command delivery: the operator's own program (Ansible, Salt, a Secret update, a cloud
run-command) gets the fragment on stdin and node, config_path, http_addr as arguments.

Runs on the runner, without a shell, without the variable that holds the key in its environment;
exit 0 means delivered. The restart command then runs on the runner (session.Session.restart).
"""

from __future__ import annotations

from typing import Mapping

from ..delivery import Method
from . import commands, files
from .session import RUNNER, DeliveryFailed, Session, Target


class CommandSession(Session):
    """The operator's own program delivers; the restart command runs on the runner afterwards."""

    method = Method.COMMAND

    def keyring_fingerprints(self, target: Target, path: str, timeout: float) -> tuple[str, ...] | None:
        """The operator's program only writes: an agent's keyring file is not read through it."""
        return None

    def write(self, target: Target, fragment: Mapping, timeout: float) -> None:
        try:
            text = files.fragment_text(target.config_path, fragment)
        except files.FragmentError as err:
            raise DeliveryFailed(str(err), "config_path") from None
        argv = [*self.delivery.command, target.node, target.config_path, target.http_addr]
        result = commands.run(argv, min(timeout, self.delivery.timeout_seconds), self.ctx.secrets,
                              self.ctx.hide_env, self.ctx.environ, input=text.encode())
        if not result.ok:
            raise DeliveryFailed(f"the delivery command on {RUNNER} failed: {result.describe()}; nothing was "
                                 f"restarted", "delivery")
