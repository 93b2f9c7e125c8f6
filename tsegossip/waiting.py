"""One way to wait for a condition: every poll in the project goes through `wait_until`.

Polls differ only in what they look at, how often and for how long; the loop itself (deadline,
first look soon then back off, a clock and a sleep that tests can replace) is the same, so it is
written once here instead of once per poll.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Waited(Generic[T]):
    """What a wait ended with: whether the condition held, the last value seen, and how long it took."""

    ok: bool
    value: T
    seconds: float
    polls: int


def wait_until(probe: Callable[[], tuple[bool, T]], *, timeout: float, interval: float,
               first: float | None = None, backoff: float = 1.5,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> Waited[T]:
    """Call `probe` until it reports done or `timeout` seconds have passed; never raises on timeout.

    `probe` returns (done, value). It is always called at least once, and once more at or after the
    deadline, so a condition that becomes true just before the end is not missed. The pause starts at
    `first` (default `interval`) and grows by `backoff` up to `interval`: agents usually settle within
    a fraction of a second, so looking again soon and then backing off saves most of a poll per wait.
    """
    t0 = clock()
    deadline = t0 + timeout
    pause = interval if first is None else min(first, interval)
    polls = 0
    while True:
        done, value = probe()
        polls += 1
        now = clock()
        if done or now >= deadline:
            return Waited(done, value, now - t0, polls)
        sleep(max(0.0, min(pause, deadline - now)))
        pause = min(pause * backoff, interval)
