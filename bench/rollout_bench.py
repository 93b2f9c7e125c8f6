#!/usr/bin/env python
"""Wall time of the smooth rollout (plaintext -> enforced, real `cdktf deploy`) on a lab, against its floor.

    ./bootstrap -- python bench/rollout_bench.py --clients 30 --batch 5 --runs 3

Per run: a fresh lab of 3 servers + N clients (one group), spec from lab.write_spec with the
given batch size, deploy.deploy_steps over every step while a probe samples every node's
/v1/agent/members every 0.2 s and counts members seen `failed` (status 4).

Floors, measured on the same machine before the runs:
  t_restart  restart-and-rejoin time of one agent: median over agents web-1..web-K of a lab of the
             benchmark's size (3 servers + N clients) of `tsegossip lab restart --dir D web-i` (the
             spec's restart_command: stop with a graceful leave, start, wait until the agent sees itself
             and a peer alive) plus the time until the spec's server (http_addr) lists it alive again --
             what the provider waits for before the next batch;
  t_restart_cmd  the command alone on the same lab;
  t_restart_small  the command alone on a lab of 3 servers + 2 clients (the floor's first definition:
             serf's leave takes longer in a larger cluster, its broadcasts go out log(N) times, so a
             small lab understates the rollout's lab);
  t_stack    median wall time of `cdktf deploy` of a stack with no resources (a throwaway app
             in a temp dir; synth + terraform init/plan/apply, no provider).
  t_restart_server  the same for server-1..3 (by default servers do not leave on terminate,
             Consul's default, so their restart is a stop and start);
  floor          = steps * (servers * t_restart_server + client batches * t_restart) + steps * t_stack
                   (the brief's floor: a batch restarts its nodes in parallel; servers one at a time)
  floor_small    = the same with t_restart_small, for comparison with earlier results
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import deploy, lab, planner, spec  # noqa: E402
from tsegossip.keys import GossipKey  # noqa: E402
from tests.e2e.helpers import Probe, make_spec, observed_phases  # noqa: E402
import tests.e2e.helpers as helpers  # noqa: E402
from machine import cpu_model, emit  # noqa: E402  (bench/machine.py, beside this script)


_BATCH_START = re.compile(r"progress: (\S+) \(([^)]+)\): batch (\d+)/\d+: (.+) -> \S+$")
_BATCH_DONE = re.compile(r"progress: (\S+) \(([^)]+)\): batch (\d+)/\d+ (?:alive|failed|stopped)")


class Sink:
    """Deploy output, not timed against a terminal; remembers when each batch was in flight.

    The decision on the probe (BENCHMARKS.md): a `failed` sample counts only on a node outside the
    batch in flight. The window of a batch runs from its start line to its done line as the deploy
    echoes them (it tails the provider's progress log), widened by MARGIN each side for that echo.
    """
    MARGIN = 1.0

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.started: dict[tuple[str, str, str], tuple[float, list[str]]] = {}
        self.windows: list[tuple[float, float, frozenset[str]]] = []  # (start, end, nodes) in probe time

    def write(self, s):
        now = time.monotonic() - self.t0
        for line in s.splitlines():
            line = line.strip()
            m = _BATCH_START.search(line)
            if m:
                self.started[m.groups()[:3]] = (now, [n.strip() for n in m.group(4).split(",")])
                continue
            m = _BATCH_DONE.search(line)
            if m and m.groups()[:3] in self.started:
                start, nodes = self.started.pop(m.groups()[:3])
                self.windows.append((start - self.MARGIN, now + self.MARGIN, frozenset(nodes)))
        return len(s)

    def flush(self):
        pass

    def in_flight(self, t: float, member: str) -> bool:
        open_ = [(start, nodes) for start, nodes in self.started.values()]  # never closed: still in flight
        return any(a <= t <= b and member in nodes for a, b, nodes in self.windows) or \
            any(start - self.MARGIN <= t and member in nodes for start, nodes in open_)



def console() -> str:
    return str(Path(sys.executable).parent / "tsegossip")


def _restart_samples(c, nodes: list[str], until_rejoined: bool) -> tuple[list[float], list[float]]:
    """(command seconds, command + rejoin seconds) per node, restarting one after another."""
    server = c.servers[0]  # the spec's http_addr (lab.write_spec), which the provider's settle asks
    cmd_times, rejoin_times = [], []
    for node in nodes:
        t0 = time.monotonic()
        subprocess.run([console(), "lab", "restart", "--dir", c.workdir, node], check=True,
                       capture_output=True, timeout=60)
        t1 = time.monotonic()
        if until_rejoined:
            while (lab.agentapi.members(server, timeout=1.0) or {}).get(node) != 1:
                if time.monotonic() - t1 > 30:
                    raise SystemExit(f"{node} not listed alive by {server.name} 30 s after its restart")
                time.sleep(0.01)
        cmd_times.append(t1 - t0)
        rejoin_times.append(time.monotonic() - t0)
        lab.wait_converged(c, timeout=20)
    return cmd_times, rejoin_times


def measure_restart(workdir: Path, samples: int, clients: int, leave: bool | None = None) -> dict[str, list[float]]:
    small = lab.up(workdir / "small", servers=3, clients=2, groups=1, timeout=30, leave_on_terminate=leave)
    try:
        small_cmd, _ = _restart_samples(small, ["web-1"] * samples, until_rejoined=False)
    finally:
        lab.down(small, quiet=True)
    full = lab.up(workdir / "full", servers=3, clients=clients, groups=1, timeout=60, leave_on_terminate=leave)
    try:
        nodes = [f"web-{1 + i % clients}" for i in range(samples)]
        cmd, rejoin = _restart_samples(full, nodes, until_rejoined=True)
        # Servers restart differently (by default they do not leave): their own floor.
        _, server_rejoin = _restart_samples(full, [f"server-{1 + i % 3}" for i in range(samples)],
                                            until_rejoined=True)
    finally:
        lab.down(full, quiet=True)
    return {"small_cmd": small_cmd, "cmd": cmd, "rejoin": rejoin, "server_rejoin": server_rejoin}


EMPTY_APP = """
from cdktf import App, TerraformStack
app = App()
TerraformStack(app, "empty")
app.synth()
"""


def measure_empty_stack(samples: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as d:
        Path(d, "main.py").write_text(EMPTY_APP)
        Path(d, "cdktf.json").write_text(json.dumps({"language": "python", "app": f"{sys.executable} main.py",
                                                     "terraformProviders": [], "sendCrashReports": False}))
        env = dict(os.environ, CHECKPOINT_DISABLE="1", JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
        cmd = [deploy.cdktf_binary(), "deploy", "empty", "--auto-approve", "--skip-provider-lock", "--no-color"]
        for _ in range(samples):
            t0 = time.monotonic()
            r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise SystemExit(f"empty stack deploy failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            times.append(time.monotonic() - t0)
    return times


def one_run(workdir: Path, clients: int, batch: int, key: GossipKey, leave: bool | None = None) -> dict:
    c = lab.up(workdir / "lab", servers=3, clients=clients, groups=1, timeout=60, leave_on_terminate=leave)
    name = f"bench-{os.getpid()}-{int(time.time()) % 100000}"
    try:
        spec_path = workdir / "spec.json"
        make_spec(c, spec_path, name, batch_size=batch, poll=0.3, batch_seconds=120)
        plan = planner.plan(spec.load(spec_path))
        with Probe(c, interval=0.2) as probe:
            t0 = time.monotonic()
            sink = Sink(probe.t0)
            results = deploy.deploy_steps(plan, spec_path, key, workdir / "deploy", out=sink)
            wall = time.monotonic() - t0
        phases = set(observed_phases(c).values())
        outside = [f for f in probe.failed if not sink.in_flight(f[0], f[2])]
        return {"wall": wall, "steps": [round(r.seconds, 1) for r in results], "n_steps": len(plan.steps),
                "failed_seen": len(probe.failed), "failed_sample": probe.failed[:5],
                "failed_outside_batch": len(outside), "failed_outside_sample": outside[:5],
                "batches_timed": len(sink.windows),
                "batch_seconds": [round(b - a - 2 * Sink.MARGIN, 2) for a, b, _ in sink.windows],
                "probe_rounds": probe.rounds,
                "probe_samples": probe.samples, "final_phases": sorted(phases)}
    finally:
        lab.down(c, quiet=True)
        for p in ROOT.glob(f"terraform.{name}-*.tfstate*"):
            p.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--restart-samples", type=int, default=7)
    ap.add_argument("--stack-samples", type=int, default=3)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--no-leave", dest="leave", action="store_const", const=False, default=None,
                    help="agents with leave_on_terminate=false: restarts are stop and start, not leave and "
                         "rejoin (default: Consul's own, clients leave gracefully and servers do not)")
    args = ap.parse_args()

    os.environ.setdefault(helpers.KEY_ENV, GossipKey.generate().reveal())
    key = GossipKey.from_env(helpers.KEY_ENV)
    servers = 3
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        tmp = Path(tmp)
        restarts = measure_restart(tmp / "restart-lab", args.restart_samples, args.clients, args.leave)
        t_restart = statistics.median(restarts["rejoin"])
        t_restart_cmd = statistics.median(restarts["cmd"])
        t_restart_small = statistics.median(restarts["small_cmd"])
        t_restart_server = statistics.median(restarts["server_rejoin"])
        print(f"t_restart (restart and rejoin, 3+{args.clients} lab) median {t_restart:.2f}s of "
              f"{[round(t, 2) for t in restarts['rejoin']]}; command alone {t_restart_cmd:.2f}s; "
              f"command alone on 3+2 lab {t_restart_small:.2f}s; a server {t_restart_server:.2f}s of "
              f"{[round(t, 2) for t in restarts['server_rejoin']]}", flush=True)
        stacks = measure_empty_stack(args.stack_samples)
        t_stack = statistics.median(stacks)
        print(f"t_stack (empty cdktf deploy) median {t_stack:.2f}s of {[round(t, 2) for t in stacks]}", flush=True)
        runs = []
        for i in range(args.runs):
            r = one_run(tmp / f"run-{i}", args.clients, args.batch, key, args.leave)
            runs.append(r)
            print(f"run {i + 1}: {r['wall']:.1f}s steps {r['steps']} failed_seen {r['failed_seen']} "
                  f"(outside the batch in flight: {r['failed_outside_batch']}, {r['batches_timed']} batches timed) "
                  f"probe rounds {r['probe_rounds']} samples {r['probe_samples']} final {r['final_phases']}",
                  flush=True)
    steps = runs[0]["n_steps"]
    client_batches = -(-args.clients // args.batch)
    floor = steps * (servers * t_restart_server + client_batches * t_restart) + steps * t_stack
    floor_small = steps * (servers + client_batches) * t_restart_small + steps * t_stack
    wall = statistics.median(r["wall"] for r in runs)
    out = {
        "command": " ".join(["./bootstrap -- python bench/rollout_bench.py", *sys.argv[1:]]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model()},
        "servers": servers, "clients": args.clients, "batch": args.batch, "steps": steps,
        "leave_on_terminate": args.leave,
        "t_restart_median": t_restart, "t_restart_cmd_median": t_restart_cmd,
        "t_restart_small_median": t_restart_small, "t_restart_server_median": t_restart_server,
        "t_restart_samples": restarts,
        "t_stack_median": t_stack, "t_stack_samples": stacks,
        "floor": floor, "floor_small": floor_small,
        "runs": runs, "wall_median": wall,
        "ratio": wall / floor, "ratio_small": wall / floor_small,
        "failed_seen_total": sum(r["failed_seen"] for r in runs),
        "failed_outside_batch_total": sum(r["failed_outside_batch"] for r in runs),
    }
    emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
