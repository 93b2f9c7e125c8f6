#!/usr/bin/env python
"""Memory and start-up time of a real-Consul lab of 3 servers + N clients.

    ./bootstrap -- python bench/lab_memory_bench.py --clients 30 --runs 3

Per run: a fresh lab (`lab.up`, which returns once everyone sees everyone alive and the servers agree
on a leader), 5 s of settling, then the sum over every agent of VmRSS and of VmHWM (/proc/PID/status),
the largest server peak and the median client peak; the lab is downed in `finally`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tsegossip import lab  # noqa: E402


def kb(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    totals = []
    with tempfile.TemporaryDirectory(prefix="lab-memory-") as tmp:
        for run in range(args.runs):
            t0 = time.monotonic()
            c = lab.up(Path(tmp) / f"lab{run}", servers=3, clients=args.clients, groups=1, timeout=90)
            up = time.monotonic() - t0
            try:
                time.sleep(5)
                pids = {n.name: lab.node_pid(c, n.name) for n in c.nodes}
                rss = sum(kb(p, "VmRSS:") for p in pids.values()) / 1024
                hwm = sum(kb(p, "VmHWM:") for p in pids.values()) / 1024
                server = max(kb(pids[n.name], "VmHWM:") for n in c.servers) / 1024
                client = statistics.median(kb(pids[n.name], "VmHWM:") for n in c.clients) / 1024
                totals.append(rss)
                print(f"run {run + 1}: up {up:.1f}s, RSS {rss:.0f} MB, sum of peaks {hwm:.0f} MB, "
                      f"server peak max {server:.0f} MB, client peak median {client:.0f} MB", flush=True)
            finally:
                lab.down(c, quiet=True)
    print(f"median RSS of the {3 + args.clients}-agent lab: {statistics.median(totals):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
