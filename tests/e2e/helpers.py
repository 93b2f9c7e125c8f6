"""Helpers for the end-to-end tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from pathlib import Path

from tsegossip import lab
from tests.fleet.helpers import MARGIN
from tests.fleet.helpers import Out as _BatchOut
from tests.support import console_script

KEY_ENV = "TSEGOSSIP_KEY"
STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


def tsegossip_cmd() -> str:
    return console_script()


def make_spec(cluster: lab.LabCluster, path: Path, name: str, batch_size: int = 1, poll: float = 0.3,
              batch_seconds: int = 60, **kw) -> dict:
    """lab.write_spec with the console script as restart command, a batch size and short polls."""
    doc = lab.write_spec(cluster, path, name=name, key_env=KEY_ENV, tsegossip_cmd=tsegossip_cmd(),
                         batch_size=batch_size, **kw)
    doc["timeouts"] = {"batch_seconds": batch_seconds, "poll_seconds": poll}
    Path(path).write_text(json.dumps(doc, indent=2))
    return doc


def save_spec(path: Path, doc: dict) -> None:
    Path(path).write_text(json.dumps(doc, indent=2))


@contextlib.contextmanager
def lab_up(tmp_path: Path, binary: str, **kw):
    workdir = tmp_path / "lab"
    try:
        yield lab.up(workdir, binary=binary, **kw)
    finally:
        lab.down(workdir, quiet=True)


def members_of(node: lab.LabNode, timeout: float = 1.0) -> dict[str, int] | None:
    """What `node` lists (secure labs included: the lab's CA and management token)."""
    return lab.agentapi.members(node, timeout=timeout)


def agent_self(node: lab.LabNode, timeout: float = 2.0) -> dict:
    return lab.agentapi.agent_self(node, timeout)


class Probe(threading.Thread):
    """Sample every node's /v1/agent/members every `interval` s; remember every `failed` seen."""

    def __init__(self, cluster: lab.LabCluster, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.cluster, self.interval = cluster, interval
        self.samples = 0          # answered /v1/agent/members calls
        self.rounds = 0
        self.failed: list[tuple[float, str, str]] = []   # (t, observer, member)
        self.statuses: set[str] = set()
        self._stop_evt = threading.Event()
        self.t0 = time.monotonic()
        self._open: dict[tuple[str, str], tuple[float, float]] = {}   # (observer, member) -> (first, last)
        self.episodes: list[tuple[str, str, float, float]] = []       # observer, member, start, seconds

    def _close(self, k: tuple[str, str]) -> None:
        first, last = self._open.pop(k)
        self.episodes.append((k[0], k[1], round(first, 1), round(last - first, 2)))

    def longest_failed(self) -> float:
        """Longest run of consecutive samples in which one observer saw one member failed (s)."""
        return max((e[3] for e in self.episodes), default=0.0)

    def run(self) -> None:
        while not self._stop_evt.is_set():
            for n in self.cluster.nodes:
                m = members_of(n, timeout=0.5)
                if m is None:
                    continue  # restarting
                self.samples += 1
                now = time.monotonic() - self.t0
                for member, st in m.items():
                    self.statuses.add(STATUS.get(st, str(st)))
                    k = (n.name, member)
                    if st == 4:
                        self.failed.append((round(now, 1), n.name, member))
                        self._open[k] = (self._open.get(k, (now, now))[0], now)
                    elif k in self._open:
                        self._close(k)
            self.rounds += 1
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=10)
        for k in list(self._open):
            self._close(k)

    def __enter__(self) -> "Probe":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def config_snapshot(cluster: lab.LabCluster) -> dict[str, str]:
    return {n.name: Path(n.config_path).read_text() for n in cluster.nodes}


def pids(cluster: lab.LabCluster) -> dict[str, int | None]:
    return {n.name: lab.node_pid(cluster, n.name) for n in cluster.nodes}


def observed_phases(cluster: lab.LabCluster) -> dict[str, str]:
    """node -> phase from its own /v1/agent/self (encrypted + verify flags)."""
    from tsegossip import observe
    out = {}
    for n in cluster.nodes:
        v = observe.node_settings(n.http_addr, n.name, None, 2.0)
        out[n.name] = v.label
    return out


_CONSOLE = re.compile(r"^console: \S+: restarting (\S+) \(")


class Out(_BatchOut):
    """Deploy output (printed, so pytest shows it when a test fails) that knows the batch in flight:
    the provider's batches from its progress lines, and the server a TSE console is restarting (from
    its `restarting server-N` line to its next line)."""

    def write(self, s: str) -> int:
        now = time.monotonic()
        for line in s.splitlines():
            if line.startswith("console: "):
                for key in [k for k in self.open if k[0] == "console"]:
                    start, nodes = self.open.pop(key)
                    self.windows.append((start - MARGIN, now + MARGIN, nodes))
                m = _CONSOLE.match(line)
                if m:
                    self.open[("console", m.group(1), "")] = (now, frozenset([m.group(1)]))
        return super().write(s)


def failed_outside_batches(probe: "Probe", out: Out) -> list[tuple[float, str, str]]:
    """The rollout's criterion: `failed` samples of members that were not in the batch in flight
    (the node being restarted may show failed for a moment: serf's leave race)."""
    return [(t, o, m) for t, o, m in probe.failed if not out.in_flight(probe.t0 + t, m)]
