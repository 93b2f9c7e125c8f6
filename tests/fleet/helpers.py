"""Helpers for the fleet tests: a membership probe over the hosts' HTTP APIs that knows which batch
was in flight, and looks at the hosts from the runner the way an operator's audit would."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.request

from tsegossip.lab import fleet as F

STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}
_START = re.compile(r"progress: (\S+) \(([^)]*)\): batch (\d+)/\d+: (.+) -> \S+$")
_DONE = re.compile(r"progress: (\S+) \(([^)]*)\): batch (\d+)/\d+ alive in ")
MARGIN = 1.0  # the deploy echoes the provider's progress log a little late


class Out(io.StringIO):
    """Deploy output: shown by pytest when a test fails, and the batch windows the probe needs."""

    def __init__(self, t0: float | None = None) -> None:
        super().__init__()
        self.t0 = time.monotonic() if t0 is None else t0
        self.open: dict[tuple, tuple[float, frozenset[str]]] = {}
        self.windows: list[tuple[float, float, frozenset[str]]] = []

    def write(self, s: str) -> int:
        print(s, end="")
        now = time.monotonic()
        for line in s.splitlines():
            m = _START.search(line.strip())
            if m:
                self.open[m.groups()[:3]] = (now, frozenset(n.strip() for n in m.group(4).split(",")))
                continue
            m = _DONE.search(line.strip())
            if m and m.groups()[:3] in self.open:
                start, nodes = self.open.pop(m.groups()[:3])
                self.windows.append((start - MARGIN, now + MARGIN, nodes))
        return super().write(s)

    def in_flight(self, t: float, member: str) -> bool:
        return any(a <= t <= b and member in nodes for a, b, nodes in self.windows) or \
            any(start - MARGIN <= t and member in nodes for start, nodes in self.open.values())


class Probe(threading.Thread):
    """Every host's /v1/agent/members every `interval` s, from the runner; every `failed` remembered."""

    def __init__(self, fleet: F.Fleet, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.fleet, self.interval = fleet, interval
        self.samples = 0
        self.failed: list[tuple[float, str, str]] = []  # (monotonic t, observer, member)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for h in self.fleet.hosts:
                try:
                    with urllib.request.urlopen(f"{h.http_addr}/v1/agent/members", timeout=0.5) as r:
                        rows = json.load(r)
                except (OSError, ValueError):
                    continue  # restarting, or not started yet
                self.samples += 1
                now = time.monotonic()
                self.failed += [(now, h.name, m["Name"]) for m in rows if m["Status"] == 4]
            self._halt.wait(self.interval)

    def outside_batches(self, out: Out) -> list[tuple[float, str, str]]:
        """Failed samples of members that were not in the batch in flight (the rollout's criterion)."""
        return [(round(t - out.t0, 1), o, m) for t, o, m in self.failed if not out.in_flight(t, m)]

    def __enter__(self) -> "Probe":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join(10)


def host_file(fleet: F.Fleet, host: str, path: str) -> str:
    """`path` as `host` sees it, read inside the host's own namespaces (not through the runner's view)."""
    r = F.host_run(fleet, host, ["cat", path], check=False)
    return r.stdout.decode() if r.returncode == 0 else f"<missing: {r.stderr.decode().strip()}>"


def fragments(fleet: F.Fleet) -> dict[str, str]:
    return {h.name: host_file(fleet, h.name, F.CONFIG_PATH) for h in fleet.hosts}


def agent_pids(fleet: F.Fleet) -> dict[str, str]:
    return {h.name: F.consulctl(fleet, h.name, "status").strip() for h in fleet.hosts}
