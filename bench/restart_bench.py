#!/usr/bin/env python
"""How long `lab.restart` takes with and without a graceful leave (leave_on_terminate true / false).

    ./bootstrap -- python bench/restart_bench.py --samples 5

Per variant: a fresh lab of 3 servers + 2 clients (one group) with that leave_on_terminate, then
`lab.restart(web-1)` `--samples` times (stop, the leave wait when the agent leaves, start, wait until it
sees itself and a peer alive); prints each variant's median and samples, and their ratio. This is the
timing that tests/lab/test_lab_manager.py used to assert (`took < 2` without a leave); the test now
checks that the leave wait is skipped, this script how much that saves (first run, 2 cores: median
1.66 s with a leave, 0.16 s without, 3 samples each; on the rollout bench's 3 + 30 lab see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import lab  # noqa: E402
from machine import describe  # noqa: E402  (bench/machine.py, beside this script)


def measure(workdir: Path, leave: bool, samples: int) -> list[float]:
    c = lab.up(workdir, servers=3, clients=2, groups=1, timeout=60, leave_on_terminate=leave)
    try:
        took = [lab.restart(c, "web-1", timeout=45) for _ in range(samples)]
        lab.wait_converged(c, timeout=30)
        return took
    finally:
        lab.down(c, quiet=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    out = {"command": " ".join(["./bootstrap -- python bench/restart_bench.py", *sys.argv[1:]]),
           "machine": describe()}
    with tempfile.TemporaryDirectory(prefix="restart-bench-") as tmp:
        for name, leave in (("leave", True), ("no_leave", False)):
            took = measure(Path(tmp) / name, leave, args.samples)
            out[name] = {"median": statistics.median(took), "samples": [round(t, 3) for t in took]}
            print(f"{name}: median {out[name]['median']:.2f}s of {out[name]['samples']}", flush=True)
    out["ratio"] = out["leave"]["median"] / out["no_leave"]["median"]
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
