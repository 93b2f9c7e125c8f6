"""A live display of a deploy for a person at a terminal: the step, the batch, nodes done of total, the
nodes restarting now, elapsed and an estimate; the same lines as ever scroll above it.

It reads the very lines a pipeline logs (deploy's `== step` lines and the provider's progress lines,
whose shapes the e2e tests hold to), so a terminal and a CI log tell the same story; nothing else
feeds it. Off a terminal, in CI, with TERM=dumb or `--plain`, deploy prints those lines alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, TextIO

# deploy.deploy_steps: "== step 2/3: cdktf deploy <stack> (web -> send-encrypted, ...)"
_STEP = re.compile(r"^== step (\d+)/(\d+): cdktf deploy (\S+)")
_DEPLOYED = re.compile(r"^\s*deployed (\S+) in ")
# provider/rollout.py, as echoed by deploy: "    progress: <who>: ..." (who is "<role> (<rollout>/<stack>)")
_PROGRESS = re.compile(r"^\s*progress: (?P<who>\S+(?: \S+)? \([^)]*\)): (?P<msg>.*)$")
_PLAN = re.compile(r"^(\d+) node\(s\) to (?:move \S+ -> |rewrite in )(\S+) in (\d+) batch\(es\)(?:.*; (\d+) already there)?")
_BATCH = re.compile(r"^batch (\d+)/(\d+): (.+) -> (\S+)$")
_ALIVE = re.compile(r"^batch (\d+)/(\d+) (?:alive|written) in \S+ after ([0-9.]+)s")
_DONE = re.compile(r"^done, (\d+) node\(s\) in (\S+)")
_TSE_WAIT = re.compile(r"^waiting up to \d+s for (\S+) to roll")
_TSE_STATUS = re.compile(r"^(ins-\S+): (\S+)$")


def wants_live(stream: TextIO, environ: dict[str, str] | None = None, plain: bool = False) -> bool:
    """A live display only for a person: a terminal, not CI, not a dumb terminal, not asked to be plain."""
    env = os.environ if environ is None else environ
    if plain or env.get("CI") or env.get("TERM") == "dumb" or env.get("TSEGOSSIP_PLAIN"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Role:
    """One role moving in the step in flight, as its progress lines tell it."""
    who: str
    total: int = 0
    batches: int = 0
    done: int = 0
    batch: int = 0
    restarting: tuple[str, ...] = ()
    batch_seconds: list[float] = field(default_factory=list)
    finished: bool = False
    waiting_on: str = ""   # TSE: the instance and its status while the console's save rolls it


@dataclass
class DeployState:
    """What the display shows, folded from deploy output lines; no I/O, so tests feed it lines."""
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    step: int = 0
    steps: int = 0
    stack: str = ""
    step_started: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    roles: dict[str, Role] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def feed(self, line: str) -> None:
        m = _STEP.match(line)
        if m:
            self.step, self.steps, self.stack = int(m.group(1)), int(m.group(2)), m.group(3)
            self.step_started, self.roles = self.clock(), {}
            return
        if _DEPLOYED.match(line):
            self.step_seconds.append(self.clock() - self.step_started)
            return
        m = _PROGRESS.match(line)
        if not m:
            return
        who, msg = m.group("who"), m.group("msg")
        role = self.roles.setdefault(who, Role(who.split(" (")[0]))
        if (p := _PLAN.match(msg)):
            role.total = int(p.group(1)) + int(p.group(4) or 0)
            role.done, role.batches = int(p.group(4) or 0), int(p.group(3))
        elif (p := _BATCH.match(msg)):
            role.batch, role.batches = int(p.group(1)), int(p.group(2))
            role.restarting = tuple(n.strip() for n in p.group(3).split(","))
        elif (p := _ALIVE.match(msg)):
            role.done += len(role.restarting)
            role.batch_seconds.append(float(p.group(3)))
            role.restarting = ()
        elif (p := _DONE.match(msg)):
            role.finished, role.restarting = True, ()
            role.done = role.total = max(role.total, int(p.group(1)))
        elif (p := _TSE_WAIT.match(msg)):
            role.waiting_on = f"{p.group(1)}: waiting for the console's save"
        elif (p := _TSE_STATUS.match(msg)):
            role.waiting_on = f"{p.group(1)}: {p.group(2)}"

    def estimate(self) -> tuple[float, str] | None:
        """Seconds left and what they cover: this step's remaining batches at its roles' mean batch time
        (or, before any batch, what is left of the mean step time so far), plus the steps still to come at
        the mean step time. None until there is anything to go by."""
        mean_step = sum(self.step_seconds) / len(self.step_seconds) if self.step_seconds else None
        timed = [r for r in self.roles.values() if r.batch_seconds or r.finished]
        if timed:
            now_left = sum(sum(r.batch_seconds) / len(r.batch_seconds) * max(0, r.batches - len(r.batch_seconds))
                           for r in timed if r.batch_seconds and not r.finished)
        elif mean_step is not None:
            now_left = max(0.0, mean_step - (self.clock() - self.step_started))
        else:
            return None
        later = max(0, self.steps - self.step)
        if not later:
            return now_left, "left"
        if mean_step is None:
            return now_left, "left in this step"
        return now_left + later * mean_step, "left"

    def lines(self) -> list[str]:
        now = self.clock()
        if not self.step:
            return [f"starting ... elapsed {_clock(now - self.started)}"]
        out = [f"step {self.step}/{self.steps}: {self.stack}"]
        for r in self.roles.values():
            if r.finished:
                out.append(f"  {r.who}: done, {r.done}/{r.total} nodes")
            elif r.waiting_on:
                out.append(f"  {r.who}: {r.waiting_on}")
            elif r.total:
                now_text = f", restarting {', '.join(r.restarting)}" if r.restarting else ""
                out.append(f"  {r.who}: batch {r.batch}/{r.batches}, nodes {r.done}/{r.total}{now_text}")
        est = self.estimate()
        out.append(f"elapsed {_clock(now - self.started)}, "
                   + (f"about {_clock(est[0])} {est[1]}" if est else "estimate after the first batch"))
        return out


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


class LiveOutput:
    """A file-like `out` for deploy: lines go above a live panel that shows the DeployState."""

    def __init__(self, console=None, clock: Callable[[], float] = time.monotonic, refresh: float = 4.0) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(file=sys.stdout)
        self.state = DeployState(clock=clock)
        self._buf = ""
        self._lock = threading.Lock()
        self._live = Live(self._panel(), console=self.console, refresh_per_second=refresh, transient=False,
                          get_renderable=self._panel)

    def _panel(self):
        from rich.panel import Panel
        from rich.text import Text

        return Panel(Text("\n".join(self.state.lines())), title="tsegossip deploy", expand=False)

    def __enter__(self) -> LiveOutput:
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self._live.stop()

    def write(self, text: str) -> int:
        with self._lock:
            self._buf += text
            *complete, self._buf = self._buf.split("\n")
            for line in complete:
                self.state.feed(line)
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                self.state.feed(self._buf)
                self.console.print(self._buf, markup=False, highlight=False, soft_wrap=True)
                self._buf = ""

    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def output(stream: TextIO, plain: bool = False, environ: dict[str, str] | None = None) -> Iterator[TextIO]:
    """deploy's `out`: a LiveOutput for a person at a terminal, else `stream` itself, line by line."""
    if not wants_live(stream, environ, plain):
        yield stream
        return
    with LiveOutput() as out:
        yield out
