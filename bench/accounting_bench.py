#!/usr/bin/env python
"""The cost of accounting for every member: a 10,000-member /v1/agent/members answer parsed and
compared with the spec's nodes (goal <= 0.2 s).

    ./bootstrap -- python bench/accounting_bench.py --members 10000 --runs 7

Timed per run, on the JSON text Consul would send (its real row shape: Name, Addr, Port, Tags,
Status, protocol versions): json.loads, observe.parse_members, accounting.unlisted against the
listed names (the spec lists all but 10; 3 servers), and accounting.refusals for a smooth step
(accept-encrypted, send-encrypted). The HTTP round trip itself is not in it (one request, measured
with the rollout). Median of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import accounting  # noqa: E402
from tsegossip.observe import parse_members  # noqa: E402
from tsegossip.phases import Phase  # noqa: E402
from machine import cpu_model  # noqa: E402


def consul_rows(n: int) -> str:
    rows = []
    for i in range(n):
        server = i < 3
        rows.append({"Name": f"server-{i + 1}" if server else f"node-{i}", "Addr": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                     "Port": 8301, "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                     "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
                     "Tags": {"role": "consul" if server else "node", "dc": "dc1", "segment": "", "build": "1.14.11:",
                              "vsn": "2", "vsn_min": "2", "vsn_max": "3", "id": f"{i:08x}-0000-0000-0000-000000000000",
                              **({"port": "8300", "expect": "3", "raft_vsn": "3"} if server else {})}})
    return json.dumps(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    text = consul_rows(args.members)
    names = [r["Name"] for r in json.loads(text)]
    listed = set(names[:-10])
    times, found = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        roster = parse_members(json.loads(text))
        found = accounting.unlisted(roster, listed, False, {Phase.ACCEPT_ENCRYPTED})
        lines = accounting.refusals(found, (Phase.ACCEPT_ENCRYPTED, Phase.SEND_ENCRYPTED))
        times.append(time.perf_counter() - t0)
    assert len(found) == 10 and len(lines) == 10
    print(json.dumps({
        "command": " ".join(["./bootstrap -- python bench/accounting_bench.py", *sys.argv[1:]]),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores", "members": args.members, "json_bytes": len(text),
        "runs_s": [round(t, 4) for t in times], "median_s": round(statistics.median(times), 4), "goal_s": 0.2,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
