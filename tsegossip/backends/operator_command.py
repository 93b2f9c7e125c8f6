"""Command delivery: the operator's own program (Ansible, Salt, a Secret update, a cloud
run-command) gets the fragment on stdin and node, config_path, http_addr as arguments.

Runs on the runner, without a shell, without the variable that holds the key in its environment;
exit 0 means delivered. The restart command then runs on the runner (session.Session.restart).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Iterable, Mapping

from ..delivery import Method
from . import commands, files
from .session import RUNNER, DeliveryFailed, Session, Target


class CommandSession(Session):
    """The operator's own program delivers; the restart command runs on the runner afterwards."""

    method = Method.COMMAND

    def write(self, target: Target, fragment: Mapping, timeout: float) -> None:
        try:
            text = files.fragment_text(target.config_path, fragment)
        except files.FragmentError as err:
            raise DeliveryFailed(str(err), "config_path") from None
        argv = [*self.delivery.command, target.node, target.config_path, target.http_addr]
        result = run_with_input(argv, text.encode(), min(timeout, self.delivery.timeout_seconds),
                                self.ctx.secrets, self.ctx.hide_env, self.ctx.environ)
        if not result.ok:
            raise DeliveryFailed(f"the delivery command on {RUNNER} failed: {result.describe()}; nothing was "
                                 f"restarted", "delivery")


def run_with_input(argv: list[str], data: bytes, timeout: float, secrets: Iterable[str], hide_env: Iterable[str],
                   environ: Mapping[str, str]) -> commands.CommandResult:
    """Run argv (no shell) with `data` on stdin; kill its process group when it overruns."""
    env = dict(environ)
    for name in hide_env:
        env.pop(name, None)
    shown = " ".join(argv)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    except OSError as err:
        return commands.CommandResult(shown, 127, f"could not start: {err}", time.monotonic() - t0)
    timed_out = False
    try:
        out, _ = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out = b""
    text = (out or b"").decode("utf-8", errors="replace")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return commands.CommandResult(shown, None if timed_out else proc.returncode, text[-commands.OUTPUT_LIMIT:],
                                  time.monotonic() - t0, timed_out)
