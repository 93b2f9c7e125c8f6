#!/usr/bin/env python
"""Synth benchmark: a fleet of N client nodes in 20 groups (plus 3 self-managed servers),
smooth from plaintext to enforced (3 steps, every group in every step), three ways:

  full   tsegossip's constructs: App → PhaseStack per step → app.synth()
  floor  the same App and stacks (provider block, stack dependencies) with no resources: cdktf's floor
  json   a plain json writer of the same Terraform JSON (same props and attribute encoding, no cdktf)

Each run is a fresh subprocess. Wall time is measured by the parent; the child reports its
own load (spec + plan) and synth time, and the peak RSS (VmHWM) of itself and of every
descendant (jsii's node processes), summed: an upper bound on the peak of python + node together.

    ./bootstrap -- python bench/synth_bench.py                  # 100, 1000, 10000 nodes; 5 runs each
    ./bootstrap -- python bench/synth_bench.py --sizes 10000 --runs 7 --markdown
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from machine import describe  # bench/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = 20
VARIANTS = ("floor", "full", "json")
FIXED_KEY = base64.b64encode(bytes(range(32))).decode()  # made here: no key in the repository in clear



def fleet_spec(nodes: int) -> dict:
    per = max(1, nodes // GROUPS)
    return {
        "name": "fleet",
        "strategy": "smooth",
        "target": "enforced",
        "key_env": "TSEGOSSIP_KEY",
        "servers": {
            "type": "self-managed", "phase": "plaintext", "http_addr": "http://consul.internal:8500",
            "config_path": "/etc/consul.d/50-gossip.json", "restart_command": "ssh {node} sudo systemctl restart consul",
            "nodes": [{"name": f"consul-{i}", "http_addr": f"http://consul-{i}.internal:8500"} for i in range(1, 4)],
        },
        "client_groups": [
            {
                "name": f"g{g:02d}", "phase": "plaintext", "config_path": "/etc/consul.d/50-gossip.json",
                "restart_command": "ssh {node} sudo systemctl restart consul", "batch_size": 25,
                "nodes": [{"name": f"g{g:02d}-n{i:05d}", "http_addr": f"http://g{g:02d}-n{i:05d}.internal:8500"}
                          for i in range(per)],
            }
            for g in range(GROUPS)
        ],
    }


# ---- child: one variant, one run ----------------------------------------------------------

def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _json_writer(plan, key, outdir: Path) -> None:
    """The same Terraform JSON, written with json.dumps: the floor of any writer of these files."""
    # cdktf-free modules only: importing tsegossip.constructs.bindings would start jsii
    from tsegossip.constructs.encoding import ATTRIBUTES, MAPS_DIR, encode_attributes
    from tsegossip.constructs.props import (GossipClientConfigProps, GossipServerParamsProps, PhaseGateProps,
                                            expectations)
    from tsegossip.planner import SERVERS
    from tsegossip import resource_schema as A

    r = plan.rollout
    manifest = {"stacks": {}, "version": "0.21.0"}
    previous = None
    for step in plan.steps:
        common = dict(rollout=r.name, stack=step.stack, previous_stack=previous, key_env=r.key_env,
                      key_fingerprint=key.fingerprint, http_addr=r.servers.http_addr,
                      token_env=r.consul.token_env, cacert_env=r.consul.cacert_env,
                      client_cert_env=r.consul.client_cert_env, client_key_env=r.consul.client_key_env)
        resources: dict[str, dict] = {t: {} for t in ATTRIBUTES}
        d = outdir / "stacks" / step.stack
        maps = d / MAPS_DIR
        written: set[str] = set()

        def spill(name: str, text: str) -> None:  # large maps: a file beside the stack, as the constructs do
            if name not in written:
                if not written:
                    maps.mkdir(parents=True, exist_ok=True)
                (maps / name).write_text(text)
                written.add(name)

        def add(type_name, rid, props, depends_on):
            attrs = encode_attributes(type_name, ATTRIBUTES[type_name], props.attributes(), spill)
            meta = {"//": {"metadata": {"path": f"{step.stack}/{rid}", "uniqueId": rid}}}
            if depends_on:
                attrs["depends_on"] = depends_on
            resources[type_name][rid] = {**meta, **attrs}
            return f"{type_name}.{rid}"

        before, after, addresses = expectations(r, step)
        up = [add("tsegossip_phase_gate", "gate-before",
                  PhaseGateProps(**common, when="before", expected=before, addresses=addresses), None)]
        movers = []
        for m in step.moves:
            if m.role == SERVERS:
                s = r.servers
                up = [add("tsegossip_server_params", "servers", GossipServerParamsProps(
                    **common, server_type=s.type.value, phase=m.after, from_phase=m.before,
                    nodes={n.name: n.http_addr for n in s.nodes}, config_path=s.config_path,
                    restart_command=s.restart_command, timeout_seconds=r.timeouts.batch_seconds,
                    poll_seconds=r.timeouts.poll_seconds), up)]
                movers += up
        for m in step.moves:
            if m.role != SERVERS:
                g = r.group(m.role)
                movers.append(add("tsegossip_client_config", f"client-{g.name}", GossipClientConfigProps(
                    **common, group=g.name, phase=m.after, from_phase=m.before or g.phase, joining=m.before is None,
                    nodes={n.name: n.http_addr for n in g.nodes}, config_path=g.config_path,
                    restart_command=g.restart_command, batch_size=g.batch_size,
                    timeout_seconds=r.timeouts.batch_seconds, poll_seconds=r.timeouts.poll_seconds), up))
        add("tsegossip_phase_gate", "gate-after",
            PhaseGateProps(**common, when="after", expected=after, addresses=addresses), movers)
        doc = {
            "//": {"metadata": {"backend": "local", "stackName": step.stack, "version": "0.21.0"}, "outputs": {}},
            "provider": {A.PROVIDER_NAME: [{}]},
            "resource": {t: v for t, v in resources.items() if v},
            "terraform": {"backend": {"local": {"path": str(Path.cwd() / f"terraform.{step.stack}.tfstate")}},
                          "required_providers": {A.PROVIDER_NAME: {"source": A.PROVIDER_SOURCE,
                                                                   "version": A.PROVIDER_VERSION}}},
        }
        d.mkdir(parents=True, exist_ok=True)
        (d / "cdk.tf.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        manifest["stacks"][step.stack] = {"name": step.stack, "dependencies": [previous] if previous else []}
        previous = step.stack
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def child(variant: str, spec_path: str, outdir: str) -> dict:
    from tsegossip import planner, spec
    from tsegossip.keys import GossipKey

    t0 = time.perf_counter()
    plan = planner.plan(spec.load(spec_path))
    key = GossipKey(FIXED_KEY)
    t1 = time.perf_counter()
    out = Path(outdir)
    if variant == "json":
        _json_writer(plan, key, out)
        assert "cdktf" not in sys.modules and "jsii" not in sys.modules, "the json baseline must not load cdktf"
    else:
        from tsegossip.constructs import PhaseStack, PhaseStackProps, TsegossipProvider
        from tsegossip.constructs._cdk import App, TerraformStack

        app = App(outdir=str(out))
        previous = None
        for step in plan.steps:
            if variant == "full":
                previous = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, key, previous))
            else:  # floor: the same stacks, provider block and ordering, no resources
                stack = TerraformStack(app, step.stack)
                TsegossipProvider(stack)
                if previous is not None:
                    stack.add_dependency(previous)
                previous = stack
        app.synth()
    t2 = time.perf_counter()
    size = sum(p.stat().st_size for p in out.rglob("*.json") if p.parent != out)  # stacks and their maps
    node_kb = sum(_hwm_kb(p) for p in _descendants(os.getpid()))
    return {"load_s": t1 - t0, "synth_s": t2 - t1, "py_hwm_kb": _hwm_kb(os.getpid()), "node_hwm_kb": node_kb,
            "tf_json_bytes": size, "stacks": len(plan.steps)}


# ---- parent ----------------------------------------------------------------------------------

def run_once(variant: str, spec_path: Path, work: Path) -> dict:
    outdir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=work))
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CHECKPOINT_DISABLE": "1"}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", variant, str(spec_path), str(outdir)],
                          capture_output=True, text=True, env=env, cwd=work)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    res["outdir"] = str(outdir)
    res["wall_s"] = wall
    res["rss_mb"] = (res["py_hwm_kb"] + res["node_hwm_kb"]) / 1024
    return res


def same_json(full: Path, plain: Path) -> None:
    """The json baseline must write the same Terraform JSON as the constructs (parsed, key order aside)."""
    stacks = sorted(p.parent.name for p in (full / "stacks").glob("*/cdk.tf.json"))
    if not stacks or stacks != sorted(p.parent.name for p in (plain / "stacks").glob("*/cdk.tf.json")):
        raise SystemExit(f"full and json wrote different stacks: {full} vs {plain}")
    for name in stacks:
        a, b = (json.loads((d / "stacks" / name / "cdk.tf.json").read_text()) for d in (full, plain))
        if a != b:
            raise SystemExit(f"{name}: the json baseline's Terraform JSON differs from the constructs'")
        files = [{p.relative_to(d / "stacks" / name).as_posix(): p.read_bytes()
                  for p in (d / "stacks" / name).rglob("*") if p.is_file() and p.name != "cdk.tf.json"}
                 for d in (full, plain)]
        if files[0] != files[1]:
            raise SystemExit(f"{name}: the json baseline wrote other files beside the stack than the constructs: "
                             f"{sorted(files[0])[:5]} vs {sorted(files[1])[:5]}")


def machine() -> str:
    return describe()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table for BENCHMARKS.md")
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "SPEC", "OUTDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    results: dict[tuple[int, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="tsegossip-bench-") as tmp:
        work = Path(tmp)
        for n in args.sizes:
            spec_path = work / f"fleet-{n}.json"
            spec_path.write_text(json.dumps(fleet_spec(n)))
            runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            for _ in range(args.runs):  # interleave variants so drift hits all alike
                for v in VARIANTS:
                    runs[v].append(run_once(v, spec_path, work))
            same_json(Path(runs["full"][0]["outdir"]), Path(runs["json"][0]["outdir"]))
            for v in VARIANTS:
                med = {k: statistics.median(r[k] for r in runs[v]) for k in ("wall_s", "synth_s", "load_s", "rss_mb")}
                med["max_rss_mb"] = max(r["rss_mb"] for r in runs[v])
                med["tf_json_bytes"] = runs[v][0]["tf_json_bytes"]
                med["stacks"] = runs[v][0]["stacks"]
                results[(n, v)] = med
                print(f"n={n:>6} {v:>5}: wall {med['wall_s']:.3f}s synth {med['synth_s']:.3f}s "
                      f"load {med['load_s']:.3f}s rss {med['rss_mb']:.0f}MB (max {med['max_rss_mb']:.0f}) "
                      f"tf.json {med['tf_json_bytes'] / 1e6:.2f}MB", file=sys.stderr)

    lines = [f"Machine: {machine()}", f"Runs: median of {args.runs} per variant and size (variants interleaved).", "",
             "| client nodes | stacks | variant | wall (s) | synth (s) | spec+plan (s) | peak RSS python+node (MB) | tf.json (MB) |",
             "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        for v in VARIANTS:
            m = results[(n, v)]
            lines.append(f"| {n:,} | {m['stacks']} | {v} | {m['wall_s']:.2f} | {m['synth_s']:.3f} | {m['load_s']:.2f} | "
                         f"{m['rss_mb']:.0f} (max {m['max_rss_mb']:.0f}) | {m['tf_json_bytes'] / 1e6:.2f} |")
    lines += ["", "| client nodes | full − floor, synth (s) | json, synth (s) | ratio (target ≤ 2) | "
              "full − floor, wall (s) | json wall − its spec+plan (s) | peak RSS full (MB, target ≤ 400) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        full, floor, js = results[(n, "full")], results[(n, "floor")], results[(n, "json")]
        added = full["synth_s"] - floor["synth_s"]
        ratio = added / js["synth_s"] if js["synth_s"] > 0 else float("inf")
        lines.append(f"| {n:,} | {added:.3f} | {js['synth_s']:.3f} | {ratio:.2f} | "
                     f"{full['wall_s'] - floor['wall_s']:.2f} | {js['wall_s'] - js['load_s']:.2f} | {full['max_rss_mb']:.0f} |")
    if len(args.sizes) > 1:
        n0 = args.sizes[0]
        base = results[(n0, "full")]["synth_s"] - results[(n0, "floor")]["synth_s"]
        lines += ["", f"Per-node share (increment over {n0:,} nodes, which removes the fixed per-resource jsii cost):", "",
                  "| client nodes | full − floor: increment (s) | json: increment (s) | ratio (target ≤ 2) |",
                  "|---:|---:|---:|---:|"]
        for n in args.sizes[1:]:
            inc = results[(n, "full")]["synth_s"] - results[(n, "floor")]["synth_s"] - base
            js = results[(n, "json")]["synth_s"] - results[(n0, "json")]["synth_s"]
            lines.append(f"| {n:,} | {inc:.3f} | {js:.3f} | {inc / js if js > 0 else float('inf'):.2f} |")
    text = "\n".join(lines)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
