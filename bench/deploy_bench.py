#!/usr/bin/env python
"""Whole-process `cdktf deploy` of one step: our stack against the same stack with no resources.

    ./bootstrap -- python bench/deploy_bench.py --runs 5

Variants, each one `cdktf deploy <first stack>` (deploy.cdktf_command: --auto-approve,
--skip-provider-lock, --ignore-missing-stack-dependencies), run from the project root with a
fresh --output dir (so `terraform init` runs every time) and no state file left from before:

  floor         a throwaway app (--app "<python> <script>"): the same stack ids as main.py, one
                provider block per stack, the same stack dependencies, no resources. Terraform
                still installs the provider from the mirror and starts it (schema, validate).
  floor-noprov  the same app without provider blocks: cdktf + terraform alone.
  real          main.py (cdktf.json's app) on a spec for a fresh lab of 3 servers + N clients
                (one group, batch_size 1): step 1 = gate before, server params, client config,
                gate after. A fresh lab per run (up before, down in finally: plaintext again).

Restart time excluded from real: the sum of "restart commands X s" over the batches in the
run's progress log (TSEGOSSIP_PROGRESS_LOG), i.e. the wall time of the agents' restart
commands as the provider ran them. Also reported: the sum of "alive in X s" (restart commands
plus the provider's settle polls until the batch is seen alive in its new phase).

Plugin start: median wall time from spawning the mirror's launcher (sh -> python -m
tsegossip.provider) to the go-plugin handshake line on its stdout, measured on its own; and one
extra, untimed deploy per variant with TF_LOG=debug counts how often terraform starts the
plugin and how long each start took there ("starting plugin" -> "using plugin").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import check, deploy, lab, planner, spec  # noqa: E402
from tsegossip.keys import GossipKey  # noqa: E402
from tests.e2e.helpers import KEY_ENV, make_spec  # noqa: E402
from machine import cpu_model  # noqa: E402  (bench/machine.py, beside this script)

LAUNCHER = next((ROOT / "mirror").rglob("terraform-provider-tsegossip_v*"), None)

FLOOR_APP = """
import sys
sys.path.insert(0, {root!r})
from tsegossip.constructs import TsegossipProvider
from tsegossip.constructs._cdk import App, TerraformStack

provider = sys.argv[1] == "provider"
app = App()
previous = None
for sid in sys.argv[2:]:
    stack = TerraformStack(app, sid)
    if provider:
        TsegossipProvider(stack)
    if previous is not None:
        stack.add_dependency(previous)
    previous = stack
app.synth()
"""

BATCH_RE = re.compile(r"batch \d+/\d+ alive in \S+ after ([\d.]+)s \(restart commands ([\d.]+)s\)")



def clean_state(stacks: list[str]) -> None:
    for s in stacks:
        for p in ROOT.glob(f"terraform.{s}.tfstate*"):
            p.unlink()


def run_deploy(stack: str, stacks: list[str], work: Path, spec_path: Path, app: str | None,
               env_extra: dict[str, str] | None = None) -> tuple[float, Path]:
    """One whole `cdktf deploy <stack>` from ROOT with a fresh output dir; returns (wall, progress log)."""
    clean_state(stacks)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "progress.log"
    env = deploy.deploy_env(spec_path, log)
    env.update(env_extra or {})
    cmd = deploy.cdktf_command("deploy", [stack], work / "cdktf.out")
    if app:
        cmd += ["--app", app]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    wall = time.monotonic() - t0
    (work / "cdktf-deploy.log").write_text(proc.stdout)
    clean_state(stacks)
    if proc.returncode != 0:
        raise SystemExit(f"cdktf deploy {stack} ({app or 'main.py'}) failed (exit {proc.returncode}):\n"
                         + "\n".join(proc.stdout.splitlines()[-30:]))
    return wall, log


def restart_seconds(log: Path) -> tuple[int, float, float]:
    """(batches, sum of restart-command seconds, sum of batch alive-after seconds) from a progress log."""
    text = log.read_text() if log.exists() else ""
    hits = [(float(a), float(r)) for a, r in BATCH_RE.findall(text)]
    return len(hits), sum(r for _, r in hits), sum(a for a, _ in hits)


def plugin_handshake(samples: int) -> list[float]:
    if LAUNCHER is None:
        return []
    times = []
    env = dict(os.environ, PLUGIN_PROTOCOL_VERSIONS="6",
               TF_PLUGIN_MAGIC_COOKIE="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2")
    for _ in range(samples):
        t0 = time.monotonic()
        p = subprocess.Popen([str(LAUNCHER)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        try:
            line = p.stdout.readline()
            took = time.monotonic() - t0
            if not line.startswith("1|6|"):
                raise SystemExit(f"unexpected handshake from {LAUNCHER}: {line!r}")
            times.append(took)
        finally:
            p.kill()
            p.wait()
    return times


TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)")


def _ts(line: str) -> float | None:
    m = TS_RE.match(line)
    if not m:
        return None
    return datetime.fromisoformat(m.group(1)[:26]).timestamp()


def plugin_starts(tf_log: Path) -> list[float]:
    """Seconds from each 'starting plugin' (our provider) to the following 'using plugin' in a TF_LOG file."""
    out, started = [], None
    for line in tf_log.read_text(errors="replace").splitlines():
        if "starting plugin:" in line and "tsegossip" in line:
            started = _ts(line)
        elif "using plugin:" in line and started is not None:
            t = _ts(line)
            if t is not None:
                out.append(t - started)
            started = None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--handshake-samples", type=int, default=7)
    ap.add_argument("--no-trace", action="store_true", help="skip the extra TF_LOG=debug deploy per variant")
    ap.add_argument("--keep-trace", metavar="DIR", help="copy the traced runs' logs (tf.log, progress.log) here")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()

    os.environ.setdefault(KEY_ENV, GossipKey.generate().reveal())
    key = GossipKey.from_env(KEY_ENV)
    t_start = time.monotonic()
    walls: dict[str, list[float]] = {"floor": [], "floor-noprov": [], "real": []}
    real_runs: list[dict] = []
    traces: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="deploy-bench-") as tmp:
        tmp = Path(tmp)
        app_py = tmp / "floor_app.py"
        app_py.write_text(FLOOR_APP.format(root=str(ROOT)))
        hs = plugin_handshake(args.handshake_samples)
        if hs:
            print(f"plugin handshake median {statistics.median(hs):.3f}s of {[round(t, 3) for t in hs]}", flush=True)

        def one(i: int, variant: str, trace: bool = False) -> None:
            name = f"dbench{os.getpid() % 10000}r{i}"
            work = tmp / f"{variant}-{i}"
            extra = {}
            if trace:
                extra = {"TF_LOG": "debug", "TF_LOG_PATH": str(work / "tf.log")}
            c = lab.up(work / "lab", servers=3, clients=args.clients, groups=1, timeout=60)
            try:
                spec_path = work / "spec.json"
                make_spec(c, spec_path, name, batch_size=1, poll=0.3, batch_seconds=120)
                plan = planner.plan(spec.load(spec_path))
                stacks = [s.stack for s in plan.steps]
                first = plan.steps[0]
                if variant == "real":
                    wall, log = run_deploy(first.stack, stacks, work, spec_path, None, extra)
                    verdict = check.run_check(plan.rollout, key, first.after)
                    if not verdict.ok:
                        raise SystemExit(f"after {first.stack}: " + "; ".join(verdict.all_problems()))
                    batches, restarts, alive = restart_seconds(log)
                else:
                    mode = "provider" if variant == "floor" else "none"
                    app = f"{sys.executable} {app_py} {mode} {' '.join(stacks)}"
                    wall, _ = run_deploy(first.stack, stacks, work, spec_path, app, extra)
            finally:
                lab.down(c, quiet=True)
            if trace:
                traces[variant] = plugin_starts(work / "tf.log")
                note = ""
                if variant == "real":
                    b, r, a = restart_seconds(log)
                    note = f", restart commands {r:.2f}s, alive-after {a:.2f}s"
                if args.keep_trace:
                    dest = Path(args.keep_trace) / variant
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(work, dest, ignore=shutil.ignore_patterns("lab", "cdktf.out"))
                print(f"trace {variant}: {len(traces[variant])} plugin starts "
                      f"{[round(t, 3) for t in traces[variant]]} (wall {wall:.2f}s{note}; TF_LOG=debug, not timed)",
                      flush=True)
                return
            walls[variant].append(wall)
            if variant == "real":
                real_runs.append({"wall": wall, "batches": batches, "restart_cmds": restarts, "alive": alive,
                                  "moves": [f"{m.role}->{m.after}" for m in first.moves], "stack": first.stack})
                print(f"run {i + 1} real: {wall:.2f}s, {batches} batches, restart commands {restarts:.2f}s, "
                      f"alive-after {alive:.2f}s -> {wall - restarts:.2f}s without restarts", flush=True)
            else:
                print(f"run {i + 1} {variant}: {wall:.2f}s", flush=True)

        # The lab is up for the floors too (same load on the machine), but they do not touch it.
        for i in range(args.runs):  # interleaved so drift hits all variants alike
            for v in ("floor", "floor-noprov", "real"):
                one(i, v)
        if not args.no_trace:
            for v in ("floor", "floor-noprov", "real"):
                one(args.runs, v, trace=True)

    med = {v: statistics.median(w) for v, w in walls.items()}
    real_net = statistics.median(r["wall"] - r["restart_cmds"] for r in real_runs)
    real_net_alive = statistics.median(r["wall"] - r["alive"] for r in real_runs)
    out = {
        "command": " ".join(["./bootstrap -- python bench/deploy_bench.py", *sys.argv[1:]]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
                    "linux": platform.release()},
        "lab": {"servers": 3, "clients": args.clients, "groups": 1, "batch_size": 1},
        "runs": args.runs, "walls": walls, "medians": med, "real_runs": real_runs,
        "restart_cmds_median": statistics.median(r["restart_cmds"] for r in real_runs),
        "alive_median": statistics.median(r["alive"] for r in real_runs),
        "real_minus_restarts_median": real_net, "real_minus_alive_median": real_net_alive,
        "overhead_vs_floor": real_net - med["floor"], "ratio_vs_floor": real_net / med["floor"],
        "overhead_vs_noprov": real_net - med["floor-noprov"], "ratio_vs_noprov": real_net / med["floor-noprov"],
        "provider_block_cost": med["floor"] - med["floor-noprov"],
        "handshake_samples": hs, "handshake_median": statistics.median(hs) if hs else None,
        "trace_plugin_starts": traces,
        "bench_seconds": time.monotonic() - t_start,
    }
    print(json.dumps({k: v for k, v in out.items() if k not in ("real_runs", "walls")}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
