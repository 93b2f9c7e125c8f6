"""The delivery session's interface and the local one: the runner writes and restarts.

See backends/delivery.py for the three methods and where each one's side effects happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from ..delivery import Delivery, Method
from . import commands, files

RUNNER = "the runner"


@dataclass(frozen=True)
class Target:
    """One node of a step, with its templates already rendered."""

    node: str
    http_addr: str
    config_path: str
    restart_command: str


class DeliveryFailed(Exception):
    """Delivering to (or restarting) one node failed; `field` is the attribute to blame."""

    def __init__(self, message: str, field: str = "delivery") -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Context:
    """What every session needs from its caller: the secrets to keep out of output, the variable
    holding the key (hidden from every child process), the environment, and the effects a test
    world may replace."""

    secrets: list[str]
    hide_env: list[str]
    environ: Mapping[str, str]
    write_fragment: Callable[[str, Mapping], str] = files.write_fragment
    run_command: Callable[..., commands.CommandResult] = commands.run
    progress: Callable[[str], None] = lambda line: None


class Session:
    """The local session (the base of the others): the runner writes and restarts."""

    method = Method.LOCAL

    def __init__(self, delivery: Delivery, ctx: Context) -> None:
        self.delivery = delivery
        self.ctx = ctx
        self.connections: dict[str, int] = {}  # host -> connections opened in this session

    def host_of(self, target: Target) -> str:
        return RUNNER

    def preflight(self, targets: Iterable[Target]) -> None:
        """Refuse before anything is written anywhere (nothing to check for local)."""

    def write(self, target: Target, fragment: Mapping, timeout: float) -> None:
        try:
            self.ctx.write_fragment(target.config_path, fragment)
        except (files.FragmentError, OSError) as err:
            raise DeliveryFailed(f"writing its config on {RUNNER} failed: {err}", "config_path") from None

    def restart(self, target: Target, timeout: float) -> commands.CommandResult:
        try:
            result = self.ctx.run_command(target.restart_command, timeout, secrets=self.ctx.secrets,
                                          hide_env=self.ctx.hide_env)
        except (commands.CommandError, OSError) as err:
            raise DeliveryFailed(f"its restart command could not run on {RUNNER}: {err}", "restart_command") from None
        if not result.ok:
            raise DeliveryFailed(f"its restart command failed on {RUNNER}: {result.describe()}", "restart_command")
        return result

    def keyring_fingerprints(self, target: Target, path: str, timeout: float) -> tuple[str, ...] | None:
        """The fingerprints in the agent's serf/local.keyring at `path`, primary first, read where the agent
        runs; None when it cannot be read there (a missing file, no such way). Local: the runner reads the
        file; the keys in it go no further than observe.keyrings.keyring_file."""
        from ..keys import keyring_file

        try:
            with open(path, encoding="utf-8") as fh:
                return keyring_file(fh.read(4 * 1024 * 1024))
        except (OSError, UnicodeDecodeError):
            return None

    def close(self) -> None:
        pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Outcome:
    """One node of a batch: its failure (None when delivered and restarted), where, and how long."""

    node: str
    host: str
    failure: str | None = None
    field: str = ""
    restart_seconds: float = 0.0
