#!/usr/bin/env python
"""Benchmark: load, validate and plan large specs (`tsegossip plan --format json`).

For each size (client nodes in 20 groups, bench/synth_bench.py's fleet_spec) and each of --runs runs:
- whole process: `tsegossip plan SPEC --format json` wall time and peak RSS (a fresh process each run);
- in-process, in a fresh child each run: the floor "read the JSON + fast validation" and, on a second
  read of the same file, spec load + plan (what every plan, synth and deploy pays).
Reports medians and the ratio load+plan / floor. Run: ./bootstrap -- python bench/plan_bench.py
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from machine import describe  # noqa: E402
from synth_bench import fleet_spec  # noqa: E402


def child(path: str) -> None:
    t0 = time.perf_counter()
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    from tsegossip import schemas

    assert schemas.is_valid("rollout", doc)
    floor = time.perf_counter() - t0
    from tsegossip import planner, spec

    t1 = time.perf_counter()
    plan = planner.plan(spec.load(path))
    load_plan = time.perf_counter() - t1
    assert plan.steps
    print(json.dumps({"floor": floor, "load_plan": load_plan}))


def whole(path: str, env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tsegossip", "plan", path, "--format", "json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"plan failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return 0
    env = dict(os.environ)
    from tsegossip.keys import GossipKey

    env["TSEGOSSIP_KEY"] = GossipKey.generate().reveal()  # lives in this process and its children only
    print(f"machine: {describe()}")
    print("| nodes | plan wall (whole process) | peak RSS | floor (read + fast validation) | load + plan | ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = str(Path(tmp) / f"fleet-{size}.json")
            Path(path).write_text(json.dumps(fleet_spec(size)))
            walls, rss, floors, loads = [], [], [], []
            for i in range(args.runs):
                w, r = whole(path, env)
                walls.append(w)
                rss.append(r)
                out = subprocess.run([sys.executable, __file__, "--child", path], env=env, check=True,
                                     capture_output=True, text=True).stdout
                d = json.loads(out)
                floors.append(d["floor"])
                loads.append(d["load_plan"])
                print(f"  {size} nodes: run {i + 1}/{args.runs}: wall {w:.3f} s", file=sys.stderr)
            f, lp = statistics.median(floors), statistics.median(loads)
            print(f"| {size:,} | {statistics.median(walls):.3f} s | {statistics.median(rss) / 1024:.0f} MB | "
                  f"{f * 1000:.0f} ms | {lp * 1000:.0f} ms | {lp / f:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
