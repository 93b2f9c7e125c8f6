"""Run a node's restart_command.

The command is a template ({node}, {config_path}, {http_addr}); substituted values are
shell-quoted, then the whole line runs under /bin/sh -c with a timeout. The gossip key
is never part of the command: it travels only in the config file. The child does not
inherit the environment variable holding the key either, and any output that happens
to contain the key is redacted before it is returned or logged.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

OUTPUT_LIMIT = 4000


class CommandError(ValueError):
    """The restart_command template cannot be rendered."""


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int | None  # None when it timed out
    output: str  # stdout and stderr interleaved, trimmed to the last OUTPUT_LIMIT characters
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            how = f"timed out after {self.seconds:.0f}s"
        else:
            how = f"exited {self.returncode} after {self.seconds:.1f}s"
        tail = self.output.strip().splitlines()[-5:]
        return f"`{self.command}` {how}" + (": " + " | ".join(tail) if tail else "")


def render(template: str, node: str, config_path: str, http_addr: str) -> str:
    try:
        return template.format(
            node=shlex.quote(node), config_path=shlex.quote(config_path), http_addr=shlex.quote(http_addr)
        )
    except (KeyError, IndexError, ValueError) as err:
        raise CommandError(
            f"restart_command {template!r} is not a valid template ({err}); "
            "allowed placeholders: {node}, {config_path}, {http_addr}"
        ) from None


def run(command: str, timeout: float, secrets: Iterable[str] = (), hide_env: Iterable[str] = (),
        environ: Mapping[str, str] | None = None) -> CommandResult:
    """Run `command` under /bin/sh -c; kill its whole process group when it overruns `timeout`."""
    secrets = [s for s in secrets if s]
    for secret in secrets:
        if secret in command:
            raise CommandError("the restart command would contain the gossip key; refusing to run it")
    env = dict(os.environ if environ is None else environ)
    for name in hide_env:
        env.pop(name, None)
    t0 = time.monotonic()
    proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's group (start_new_session)
        except ProcessLookupError:
            pass
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild outside the group holds the pipe
            out = b""
    text = (out or b"").decode("utf-8", errors="replace")
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return CommandResult(command=command, returncode=None if timed_out else proc.returncode,
                         output=text[-OUTPUT_LIMIT:], seconds=time.monotonic() - t0, timed_out=timed_out)
