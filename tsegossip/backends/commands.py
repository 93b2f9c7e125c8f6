"""Run a node's restart_command (and the operator's delivery command, an argv with the fragment on stdin).

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
from typing import Iterable, Mapping, Sequence

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


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by <redacted> (the one redaction of command output)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


TERM_GRACE_SECONDS = 5.0


def _stop_group(proc: subprocess.Popen) -> bytes:
    """Stop an overrunning command's whole process group (our own child's: start_new_session):
    SIGTERM first, so a restart script or `systemctl` can finish or clean up, SIGKILL only after
    TERM_GRACE_SECONDS. Returns what it printed."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            out, _ = proc.communicate(timeout=wait)
            return out or b""
        except subprocess.TimeoutExpired:  # still running, or a grandchild outside the group holds the pipe
            continue
    return b""


def run(command: str | Sequence[str], timeout: float, secrets: Iterable[str] = (), hide_env: Iterable[str] = (),
        environ: Mapping[str, str] | None = None, input: bytes | None = None) -> CommandResult:
    """Run `command` (a string under /bin/sh -c, or an argv without a shell), `input` on its stdin;
    kill its whole process group when it overruns `timeout`."""
    secrets = [s for s in secrets if s]
    shown = command if isinstance(command, str) else " ".join(command)
    for secret in secrets:
        if secret in shown:
            raise CommandError("the restart command would contain the gossip key; refusing to run it")
    env = dict(os.environ if environ is None else environ)
    for name in hide_env:
        env.pop(name, None)
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    except OSError as err:
        if isinstance(command, str):
            raise
        return CommandResult(shown, 127, f"could not start: {err}", time.monotonic() - t0)
    timed_out = False
    try:
        out, _ = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        out = _stop_group(proc)
    text = redact((out or b"").decode("utf-8", errors="replace"), secrets)
    return CommandResult(command=shown, returncode=None if timed_out else proc.returncode,
                         output=text[-OUTPUT_LIMIT:], seconds=time.monotonic() - t0, timed_out=timed_out)
