#!/usr/bin/env python
"""Scenario 2 (smooth, three console saves) on TSE servers, end to end against the local TSE stand-in.

    ./bootstrap -- python bench/tse_bench.py --clients 6 --runs 3 [--update-seconds 2 --server-seconds 1]

Per run, on a fresh lab (3 servers owned by the stand-in, N clients in 2 groups, all plaintext):
`deploy.deploy_steps` of the three stacks (real `cdktf deploy`, the provider asking the stand-in with
the real SDK), the console step answered by the operator thread as soon as the instructions show.

Measured in the same run:
  wall         deploy_steps from first stack to last check;
  unavoidable  the waits nothing can take out: per step the console's roll (its updating time, the
               three server restarts and the pauses between them, as the console timed it) plus the
               client batches' restart commands (the groups restart in parallel, so per step the
               slower group's sum), from the provider's `restart commands X s` lines.
Ratio wall / unavoidable; goal <= 1.3. Also how many DescribeSREInstances calls were made.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import deploy, lab, planner, spec  # noqa: E402
from tsegossip.keys import GossipKey  # noqa: E402
from tsegossip.lab import tse_lab  # noqa: E402
from tsegossip.lab.tse_standin import TEST_SECRET_ID, TEST_SECRET_KEY, TSEStandIn  # noqa: E402
from tests.fleet.helpers import Out  # noqa: E402
from machine import cpu_model  # noqa: E402

KEY_ENV = "TSEGOSSIP_KEY"
_BATCH = re.compile(r"progress: (\S+) \(\S+/(\S+)\): batch \d+/\d+ alive in \S+ after [\d.]+s "
                    r"\(restart commands ([\d.]+)s\)")


class Quiet(Out):
    """Deploy output kept (not printed), each line also stamped with its time into `stamped`."""

    def __init__(self) -> None:
        super().__init__()
        self.stamped: list[str] = []

    def write(self, s: str) -> int:
        now = time.monotonic() - self.t0
        self.stamped += [f"{now:7.2f} {line}" for line in s.splitlines() if line.strip()]
        return super(Out, self).write(s)


def client_restarts(text: str) -> float:
    """Per step, the slower group's sum of restart-command seconds; summed over steps."""
    per: dict[tuple[str, str], float] = {}
    for group, stack, secs in _BATCH.findall(text):
        per[(stack, group)] = per.get((stack, group), 0.0) + float(secs)
    steps: dict[str, float] = {}
    for (stack, _group), secs in per.items():
        steps[stack] = max(steps.get(stack, 0.0), secs)
    return sum(steps.values())


def one_run(n: int, clients: int, update_seconds: float, server_seconds: float, log: str | None = None) -> dict:
    key = GossipKey.from_env(KEY_ENV)
    with tempfile.TemporaryDirectory(prefix="tse-bench-") as tmp:
        work = Path(tmp)
        c = tse_lab.up(work / "lab", servers_phase="plaintext", servers=3, clients=clients, groups=2)
        try:
            with TSEStandIn(tse_lab.standin_dir(c)) as standin:
                os.environ[tse_lab.ENDPOINT_ENV] = standin.endpoint
                spec_path = work / "spec.json"
                name = f"tsebench{n}-{os.getpid()}"
                tse_lab.write_spec(c, spec_path, "plaintext", name=name, key_env=KEY_ENV)
                plan = planner.plan(spec.load(spec_path))
                out = Quiet()
                operator = tse_lab.Operator(standin.workdir, key, [s.after.servers for s in plan.steps],
                                            watch=out.getvalue, update_seconds=update_seconds,
                                            server_seconds=server_seconds,
                                            progress=lambda line: out.write(line + "\n"))
                operator.start()
                t0 = time.monotonic()
                try:
                    deploy.deploy_steps(plan, spec_path, key, work / "deploy", out=out)
                finally:
                    wall = time.monotonic() - t0
                    operator.stop()
                if operator.error:
                    raise SystemExit(f"bench: the console step failed: {operator.error}")
                if log:
                    Path(log).write_text("\n".join(out.stamped) + "\n")
                rolls = sum(took for _phase, took in operator.saved)
                restarts = client_restarts(out.getvalue())
                for p in ROOT.glob(f"terraform.{name}-*.tfstate*"):
                    p.unlink()
                return {"wall": wall, "rolls": rolls, "restarts": restarts, "unavoidable": rolls + restarts,
                        "describes": len(standin.calls())}
        finally:
            lab.down(c, quiet=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--update-seconds", type=float, default=2.0, help="the console's time in `updating`")
    ap.add_argument("--server-seconds", type=float, default=1.0, help="the console's pause after each server")
    ap.add_argument("--log", metavar="FILE", help="write the last run's deploy output, time-stamped, to FILE")
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, GossipKey.generate().reveal())
    os.environ.setdefault("TENCENTCLOUD_SECRET_ID", TEST_SECRET_ID)
    os.environ.setdefault("TENCENTCLOUD_SECRET_KEY", TEST_SECRET_KEY)
    runs = []
    for n in range(1, args.runs + 1):
        r = one_run(n, args.clients, args.update_seconds, args.server_seconds, args.log)
        runs.append(r)
        print(f"run {n}: wall {r['wall']:.1f}s, unavoidable {r['unavoidable']:.1f}s (console rolls {r['rolls']:.1f}s "
              f"+ client restarts {r['restarts']:.1f}s), ratio {r['wall'] / r['unavoidable']:.2f}, "
              f"DescribeSREInstances {r['describes']}", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratio = statistics.median(r["wall"] / r["unavoidable"] for r in runs)
    print(f"tse scenario 2, 3 servers + {args.clients} clients, console updating {args.update_seconds}s + "
          f"{args.server_seconds}s per server, {args.runs} runs on {cpu_model()} ({os.cpu_count()} CPUs): "
          f"median wall {med['wall']:.1f}s, unavoidable {med['unavoidable']:.1f}s, ratio {ratio:.2f} "
          f"(goal <= 1.3), DescribeSREInstances {med['describes']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
