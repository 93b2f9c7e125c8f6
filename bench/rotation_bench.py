#!/usr/bin/env python
"""Wall time of a whole key rotation (install, use, configs, remove) through `tsegossip deploy`, against
the keyring API round trips and gossip propagation waits the provider measured in the same run.

    cd /work/main && . ./.tsegossip.env && python bench/rotation_bench.py --clients 30 --runs 3

Per run: a fresh lab of 3 servers + N clients in G groups (default 30 in 3), every agent enforced with a
fresh key A (lab initial_fragments), a spec from tests/e2e/helpers.make_spec (servers and clients
`enforced`, batch_size B) with rotate_to_env naming a fresh key B; then one timed subprocess
`tsegossip deploy SPEC --workdir W` (the four stages, one `cdktf deploy` each, the keyring listed after
each), while this script tails W/progress.log every 0.02 s to time each line's arrival.

Figures per run, read from the provider's own progress lines:
  calls, call_s        keyring API round trips (POST install / PUT use / DELETE remove) and their seconds,
                       the `(k call(s) X s, ...)` part of each keyring stage's last line;
  listings, listing_s  the keyring GETs that wait for the change to reach every member (each a serf
                       query over the pool), the `..., m listing(s) Y s)` part;
  done_s               each keyring stage's own `done in Z s` (call to proven; includes the waits between
                       listings: the 0.2 s first look and the poll intervals);
  configs_s            the configs stage's fragment delivery: per group, the sum of its batches'
                       `written in <phase> after X s`; groups are independent resources that Terraform
                       applies in parallel, so the stage's delivery time is the slowest group's sum
                       (configs_sum_s, every group's sum added, is reported too);
  baseline             = sum over install/use/remove of (call_s + listing_s) + configs_s;
  wall                 the `tsegossip deploy` subprocess, start to exit;
  ratio                = wall / baseline (goal <= 1.5).
Every request the deploy sends to the spec's servers.http_addr goes through a counting loopback proxy
(CountingProxy): keyring_requests counts every /v1/operator/keyring request by method (the provider's
calls and listings, and also the gates' listings, the stage's own pre-check, tsegossip's listing after each
stage and at start), with its round trip; baseline_all = their seconds + configs_s, ratio_all = wall / that.
The fixed per-stack cost, measured in the same run: after the rotation each of the four stacks is
deployed again with deploy.run_cdktf (the same `cdktf deploy` command; the stage is in its state, so the
plan is empty and nothing is called): fixed = the sum of those four no-change deploys. Second figure:
ratio_ex_fixed = (wall - fixed) / baseline. With --one-deploy the four stacks go in one `cdktf deploy`
(one_command) and fixed is that one command run again. Also once per bench (before the runs): t_stack, a
`cdktf deploy` of a throwaway stack with no resources and no provider (bench/rollout_bench.measure_empty_stack).
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
import threading
import time
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import deploy, lab, rotation, spec  # noqa: E402
from tsegossip.keys import GossipKey, key_for_plan, rotation_key_for_plan  # noqa: E402
from tsegossip.observe import keyring  # noqa: E402
from tests.e2e.helpers import KEY_ENV, make_spec, tsegossip_cmd  # noqa: E402
from machine import describe, emit  # noqa: E402  (bench/machine.py, beside this script)
from rollout_bench import measure_empty_stack  # noqa: E402

NEW_ENV = "TSEGOSSIP_NEW_KEY"
_KEYRING_DONE = re.compile(r"\): (install|use|remove) (\S+): done in ([\d.]+)s, .*\((\d+) call\(s\) ([\d.]+)s, "
                           r"(\d+) listing\(s\) ([\d.]+)s\)\s*$")
_BATCH_START = re.compile(r"^(\S+ \([^)]+\)): batch (\d+)/(\d+): ")
_BATCH_DONE = re.compile(r"^(\S+ \([^)]+\)): batch (\d+)/(\d+) written in \S+ after ([\d.]+)s")
_DEPLOYED = re.compile(r"^\s*deployed (\S+) in ([\d.]+)s")


class Tail(threading.Thread):
    """Lines appended to a file, each with the monotonic time this thread first saw it."""

    def __init__(self, path: Path, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.lines: list[tuple[float, str]] = []
        self._stop_evt = threading.Event()
        self._offset = 0
        self._partial = ""

    def _drain(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
                self._offset = fh.tell()
        except FileNotFoundError:
            return
        now = time.monotonic()
        text = self._partial + chunk
        parts = text.split("\n")
        self._partial = parts.pop()
        for line in parts:
            msg = line.split(" ", 1)[1] if line[:4].isdigit() and " " in line else line
            self.lines.append((now, msg))

    def run(self) -> None:
        while not self._stop_evt.wait(self.interval):
            self._drain()
        self._drain()

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=5)


class CountingProxy:
    """A loopback HTTP proxy put in front of the spec's servers.http_addr: every request the deploy (provider,
    gates, tsegossip's own listings) sends to that address is forwarded to the agent and counted, by method and
    path, with its round trip as the proxy saw it. Node addresses (a gate's /v1/agent/self per node) go direct."""

    def __init__(self, upstream: str) -> None:
        up = urlsplit(upstream)
        self.upstream = (up.hostname, up.port)
        self.requests: list[tuple[str, str, int, float, float]] = []  # method, path, status, start, seconds
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                t = time.monotonic()
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=hdrs)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path.split("?", 1)[0], resp.status, t,
                                           time.monotonic() - t))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "CountingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict:
        out: dict[str, list] = {}
        with self._lock:
            for method, path, status, t, secs in self.requests:
                if since <= t < until:
                    e = out.setdefault(f"{method} {path}", [0, 0.0, []])
                    e[0] += 1
                    e[1] += secs
                    if status >= 300:
                        e[2].append(status)
        return {k: {"count": n, "seconds": round(s, 3), "non_2xx": bad} for k, (n, s, bad) in sorted(out.items())}


def parse(lines: list[tuple[float, str]], t0: float) -> dict:
    stages, groups, windows = [], {}, {}
    starts: dict[tuple[str, str], float] = {}
    for t, msg in lines:
        m = _KEYRING_DONE.search(msg)
        if m:
            op, _fp, done, calls, call_s, listings, listing_s = m.groups()
            stages.append({"op": op, "done_s": float(done), "calls": int(calls), "call_s": float(call_s),
                           "listings": int(listings), "listing_s": float(listing_s), "at": round(t - t0, 2)})
            continue
        m = _BATCH_START.match(msg)
        if m:
            starts[(m.group(1), m.group(2))] = t
            continue
        m = _BATCH_DONE.match(msg)
        if m:
            who, i, _n, secs = m.groups()
            groups.setdefault(who, []).append(float(secs))
            a = starts.pop((who, i), t - float(secs))
            lo, hi = windows.get(who, (a, t))
            windows[who] = (min(lo, a), max(hi, t))
    sums = {w: round(sum(v), 3) for w, v in groups.items()}
    # did the groups' deliveries overlap in time (as this script saw the lines arrive, +-0.02 s)?
    spans = sorted(windows.values())
    overlap = any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    envelope = (max(w[1] for w in spans) - min(w[0] for w in spans)) if spans else 0.0
    return {"keyring": stages, "configs_groups": sums, "configs_batches": sum(len(v) for v in groups.values()),
            "configs_s": max(sums.values(), default=0.0), "configs_sum_s": round(sum(sums.values()), 3),
            "configs_overlap": overlap, "configs_envelope_s": round(envelope, 2)}


def one_command(stacks: list[str], spec_path: Path, work: Path) -> subprocess.CompletedProcess:
    """All the stacks in one `cdktf deploy`, named in order. Without --ignore-missing-stack-dependencies: with
    it cdktf 0.21 starts every named stack at once (cli-core's execute() takes the first pending stack,
    parallelism unbounded) and the later stages' keyring pre-checks refuse them; without it, each waits for
    the one it depends on."""
    cmd = [a for a in deploy.cdktf_command("deploy", stacks, work / "cdktf.out")
           if a != "--ignore-missing-stack-dependencies"]
    return subprocess.run(cmd, cwd=ROOT, env=deploy.deploy_env(spec_path, work / "progress.log"),
                          capture_output=True, text=True, timeout=600)


def one_run(workdir: Path, clients: int, groups: int, batch: int, one_deploy: bool = False) -> dict:
    old, new = GossipKey.generate(), GossipKey.generate()
    os.environ[KEY_ENV], os.environ[NEW_ENV] = old.reveal(), new.reveal()
    enforced = lab.phase_fragment("enforced", old.reveal())
    name = f"rotbench-{os.getpid()}-{int(time.time()) % 100000}"
    labdir, work = workdir / "lab", workdir / "deploy"
    proxy = None
    try:
        tl = time.monotonic()
        c = lab.up(labdir, servers=3, clients=clients, groups=groups, timeout=90,
                   initial_fragments={"servers": enforced, "clients": enforced})
        lab_up_s = time.monotonic() - tl
        spec_path = workdir / "spec.json"
        doc = make_spec(c, spec_path, name, batch_size=batch, servers_phase="enforced", clients_phase="enforced")
        doc["rotate_to_env"] = NEW_ENV
        proxy = CountingProxy(doc["servers"]["http_addr"]).__enter__()
        doc["servers"]["http_addr"] = proxy.url
        spec_path.write_text(json.dumps(doc, indent=2))
        rollout = spec.load(spec_path)
        _, old_shown = key_for_plan(rollout.key_env, None)
        _, new_shown = rotation_key_for_plan(NEW_ENV, None, old_shown)
        plan = rotation.plan_rotation(rollout, old_shown, new_shown)
        work.mkdir(parents=True)
        tail = Tail(work / "progress.log")
        tail.start()
        t0 = time.monotonic()
        stacks = [s.stack for s in plan.stages]
        if one_deploy:
            # the lever left after the listing cut: one synth, one CLI start; Terraform still inits and
            # applies each stack
            proc = one_command(stacks, spec_path, work)
        else:
            proc = subprocess.run([tsegossip_cmd(), "deploy", str(spec_path), "--workdir", str(work)],
                                  capture_output=True, text=True, timeout=600, env=dict(os.environ))
        t1 = time.monotonic()
        wall = t1 - t0
        tail.stop()
        if proc.returncode != 0:
            raise SystemExit(f"deploy failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{(proc.stderr or '')[-2000:]}")
        ring = keyring(c.servers[0].http_addr)
        if not (ring.primary_everywhere(new.fingerprint) and ring.held_nowhere(old.fingerprint)):
            raise SystemExit(f"rotation did not end on the new key alone: {ring.describe()}")
        stage_deploy = {m.group(1).rsplit("-rotate-", 1)[-1]: float(m.group(2))
                        for m in map(_DEPLOYED.match, proc.stdout.splitlines()) if m}
        fig = parse(tail.lines, t0)
        if [s["op"] for s in fig["keyring"]] != ["install", "use", "remove"]:
            raise SystemExit(f"expected one keyring line per stage, got {fig['keyring']}")
        # the fixed per-stack cost: each stack again, no change in its plan, nothing called
        n_lines = len((work / "progress.log").read_text().splitlines())
        noop = {}
        if one_deploy:
            # the same one command again: its fixed cost (one synth, four stack inits and empty plans)
            ts = time.monotonic()
            again = one_command(stacks, spec_path, work)
            noop["all"] = round(time.monotonic() - ts, 2)
            if again.returncode != 0:
                raise SystemExit(f"no-change deploy of all four stacks failed:\n{again.stdout[-3000:]}")
        for stage in ([] if one_deploy else plan.stages):
            ts = time.monotonic()
            again = deploy.run_cdktf("deploy", [stage.stack], spec_path, work, open(os.devnull, "w"))
            noop[stage.stack.rsplit("-rotate-", 1)[-1]] = round(time.monotonic() - ts, 2)
            if again.returncode != 0:
                raise SystemExit(f"no-change deploy of {stage.stack} failed:\n{again.stdout[-3000:]}")
        noop_lines = (work / "progress.log").read_text().splitlines()[n_lines:]
        api = proxy.summary(t0, t1)
        api_noop = proxy.summary(t1)
        ring_req = {k: v for k, v in api.items() if k.endswith("/v1/operator/keyring")}
        # keyring changes the cluster itself counted: none expected in the no-change deploys
        ks = fig["keyring"]
        key_s = sum(s["call_s"] + s["listing_s"] for s in ks)
        baseline = key_s + fig["configs_s"]
        fixed = sum(noop.values())
        return {
            "wall": round(wall, 2), "lab_up_s": round(lab_up_s, 1), "stage_deploy_s": stage_deploy,
            "outside_stage_deploys_s": round(wall - sum(stage_deploy.values()), 2),
            **fig,
            "calls": sum(s["calls"] for s in ks), "listings": sum(s["listings"] for s in ks),
            "call_s": round(sum(s["call_s"] for s in ks), 3), "listing_s": round(sum(s["listing_s"] for s in ks), 3),
            "keyring_done_s": round(sum(s["done_s"] for s in ks), 2),
            "baseline": round(baseline, 3), "ratio": round(wall / baseline, 2),
            "noop_deploy_s": noop, "fixed": round(fixed, 2),
            "ratio_ex_fixed": round((wall - fixed) / baseline, 2),
            "api": api, "api_noop_deploys": api_noop,
            "requests": [(m, pth, st, round(t - t0, 3), round(sec, 3)) for m, pth, st, t, sec in proxy.requests
                         if t0 <= t < t1],
            "keyring_requests": sum(v["count"] for v in ring_req.values()),
            "keyring_changes": sum(v["count"] for k, v in ring_req.items() if not k.startswith("GET ")),
            "keyring_gets": ring_req.get("GET /v1/operator/keyring", {}).get("count", 0),
            "keyring_requests_s": round(sum(v["seconds"] for v in ring_req.values()), 3),
            "baseline_all": round(sum(v["seconds"] for v in ring_req.values()) + fig["configs_s"], 3),
            "ratio_all": round(wall / (sum(v["seconds"] for v in ring_req.values()) + fig["configs_s"]), 2),
            "ratio_all_ex_fixed": round((wall - fixed) / (sum(v["seconds"] for v in ring_req.values())
                                                          + fig["configs_s"]), 2),
            "noop_progress_lines": len(noop_lines), "noop_progress_sample": noop_lines[:6],
            "progress": [(round(t - t0, 3), msg) for t, msg in tail.lines],
            "stdout": proc.stdout,
        }
    finally:
        if proxy is not None:
            proxy.__exit__(None, None, None)
        lab.down(labdir, quiet=True)
        for p in ROOT.glob(f"terraform.{name}-*.tfstate*"):
            p.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=30, help="client agents (default 30), plus 3 servers")
    ap.add_argument("--groups", type=int, default=3, help="client groups (default 3)")
    ap.add_argument("--batch", type=int, default=5, help="batch_size of every group (default 5)")
    ap.add_argument("--runs", type=int, default=3, help="rotations, each on a fresh lab with fresh keys (default 3)")
    ap.add_argument("--stack-samples", type=int, default=3, help="empty-stack cdktf deploys (default 3; 0: skip)")
    ap.add_argument("--one-deploy", action="store_true",
                    help="deploy the four stacks with one `cdktf deploy` instead of `tsegossip deploy` (one per "
                         "stage): measures the per-stack fixed cost that one synth saves")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="rotation-bench-") as tmp:
        tmp = Path(tmp)
        stacks = measure_empty_stack(args.stack_samples) if args.stack_samples else []
        t_stack = statistics.median(stacks) if stacks else None
        if stacks:
            print(f"t_stack (empty cdktf deploy, no provider) median {t_stack:.2f}s of {[round(t, 2) for t in stacks]}",
                  flush=True)
        runs = []
        for i in range(args.runs):
            r = one_run(tmp / f"run-{i}", args.clients, args.groups, args.batch, args.one_deploy)
            runs.append(r)
            print(f"run {i + 1}: wall {r['wall']:.1f}s baseline {r['baseline']:.2f}s ratio {r['ratio']:.2f} "
                  f"(ex fixed {r['ratio_ex_fixed']:.2f}, fixed {r['fixed']:.1f}s {r['noop_deploy_s']}) "
                  f"calls {r['calls']} ({r['call_s']:.3f}s) listings {r['listings']} ({r['listing_s']:.3f}s) "
                  f"configs {r['configs_s']:.2f}s of {r['configs_groups']} overlap {r['configs_overlap']} "
                  f"stages {r['stage_deploy_s']} keyring requests at the server {r['keyring_requests']} "
                  f"({r['keyring_changes']} changes, {r['keyring_gets']} GETs, {r['keyring_requests_s']:.2f}s) "
                  f"api {json.dumps(r['api'])} noop {json.dumps(r['api_noop_deploys'])} load {os.getloadavg()[0]:.2f}", flush=True)
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    out = {
        "command": " ".join(["python bench/rotation_bench.py", *sys.argv[1:]]),
        "machine": describe(), "mode": "one cdktf deploy" if args.one_deploy else "tsegossip deploy",
        "servers": 3, "clients": args.clients, "groups": args.groups, "batch": args.batch,
        "t_stack_median": t_stack, "t_stack_samples": stacks,
        "wall_median": med("wall"), "baseline_median": med("baseline"), "ratio_median": med("ratio"),
        "fixed_median": med("fixed"), "ratio_ex_fixed_median": med("ratio_ex_fixed"),
        "baseline_all_median": med("baseline_all"), "ratio_all_median": med("ratio_all"),
        "ratio_all_ex_fixed_median": med("ratio_all_ex_fixed"),
        "keyring_requests": [r["keyring_requests"] for r in runs], "keyring_gets": [r["keyring_gets"] for r in runs],
        "calls_total": [r["calls"] for r in runs], "listings_total": [r["listings"] for r in runs],
        "runs": runs,
    }
    emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
