#!/usr/bin/env python
"""Benchmark (issue 18): worst-case refusal time of bad specs under 1 MB, and a 20 MB valid YAML spec's load.

Part 1, bad specs: every file of tests/fixtures/hostile/ (the regression corpus, keys filled in at run
time) plus generated worst cases of just under 1 MB (one bad node at the end of 14,000; every node bad;
every node key-like; a syntax error at the last byte; a duplicate field at the end; an alias bomb;
nesting 100,000 deep; a 900 KB integer), each refused by `tsegossip validate` in a fresh process.
Reported: the slowest in-process refusal (spec.load) and the slowest whole process, medians of --runs.

Part 2, a valid YAML spec of --nodes nodes (bench/synth_bench.py's fleet, ~20 MB at 300,000 nodes):
spec.load (read, libyaml events to plain data, checks, validation, model) in a fresh child per run.

Run: ./bootstrap -- python bench/hostile_bench.py [--runs 5] [--nodes 300000]
"""
from __future__ import annotations

import argparse
import base64
import copy
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

CHILD = """
import sys, time
t0 = time.perf_counter()
from tsegossip import spec
from tsegossip.errors import SpecError
t1 = time.perf_counter()
try:
    spec.load(sys.argv[1]); ok = True
except SpecError:
    ok = False
print(time.perf_counter() - t1, ok)
"""


def bad_specs(workdir: Path, key: str) -> dict[str, Path]:
    import yaml

    from tests.test_hostile_specs import CORPUS, EXPECTED, with_key

    out: dict[str, Path] = {}
    for name in sorted(EXPECTED):
        p = workdir / f"corpus-{name}"
        p.write_text(with_key((CORPUS / name).read_text()))
        out[f"corpus/{name}"] = p
    base = fleet_spec(13000)  # ~0.95 MB as JSON

    def put(name: str, doc=None, text: str | None = None, suffix: str = ".json") -> None:
        p = workdir / f"{name}{suffix}"
        p.write_text(text if text is not None else json.dumps(doc))
        assert p.stat().st_size < 1_048_576, (name, p.stat().st_size)
        out[name] = p

    d = copy.deepcopy(base)
    d["client_groups"][-1]["nodes"][-1]["name"] = "bad name"
    put("one bad node at the end (JSON)", d)
    put("one bad node at the end (YAML)", text=yaml.safe_dump(d, sort_keys=False), suffix=".yaml")
    d = copy.deepcopy(base)
    for g in d["client_groups"]:
        for n in g["nodes"]:
            n["name"] = "bad name"
    put("every node bad", d)
    d = copy.deepcopy(fleet_spec(11000))
    raw = base64.b64decode(key)
    for g in d["client_groups"]:
        for i, n in enumerate(g["nodes"]):
            n["name"] = base64.b64encode(bytes([i % 256]) + raw[1:16]).decode()
    put("every node name key-like", d)
    d = copy.deepcopy(base)
    for g in d["client_groups"]:
        g["nodes"] += g["nodes"][:50]
    put("duplicate node names", d)
    text = json.dumps(base)
    put("syntax error at the last byte (JSON)", text=text[:-1])
    ytext = yaml.safe_dump(base, sort_keys=False)
    while len(ytext.encode()) > 1_000_000:
        ytext = ytext[: ytext.rindex("  - name:")]
    put("syntax error at the last byte (YAML)", text=ytext + "  - name: [x\n", suffix=".yaml")
    put("duplicate field at the end (YAML)", text=ytext + "name: again\n", suffix=".yaml")
    put("alias bomb (10^9)", text="a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")), suffix=".yaml")
    put("nested 100,000 deep (JSON)", text='{"name": ' + "[" * 100_000 + "]" * 100_000 + "}")
    put("nested 100,000 deep (YAML)", text="name: " + "[" * 100_000 + "]" * 100_000 + "\n", suffix=".yaml")
    put("integer of 900,000 digits", text='{"name": ' + "9" * 900_000 + "}")
    return out


def child_time(path: Path, env: dict) -> tuple[float, bool]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, check=True)
    seconds, ok = r.stdout.split()
    return float(seconds), ok == "True"


def whole_time(path: Path, env: dict) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tsegossip", "validate", str(path)], capture_output=True, text=True,
                       env=env, timeout=60)
    return time.perf_counter() - t0, r.returncode, r.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=300_000)
    args = ap.parse_args()
    from tests.test_hostile_specs import FORMS, KEY

    env = dict(os.environ, TSEGOSSIP_KEY=KEY, PYTHONPATH=str(HERE.parent))
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = bad_specs(work, KEY)
        rows = []
        for name, path in cases.items():
            inproc = statistics.median(child_time(path, env)[0] for _ in range(args.runs))
            walls = []
            for _ in range(args.runs):
                wall, code, err = whole_time(path, env)
                if code != 1 or "Traceback" in err or any(f[:16] in err for f in FORMS.values()):
                    raise SystemExit(f"{name}: exit {code}: {err[-400:]}")
                walls.append(wall)
            rows.append((name, path.stat().st_size, inproc, statistics.median(walls)))
        rows.sort(key=lambda r: -r[2])
        print(f"\nbad specs: {len(rows)} (all exit 1, no traceback, no key); slowest 12, medians of {args.runs} runs:")
        print(f"{'case':48} {'bytes':>9} {'spec.load':>10} {'process':>8}")
        for name, size, inproc, wall in rows[:12]:
            print(f"{name[:48]:48} {size:>9,} {inproc:>9.3f}s {wall:>7.3f}s")
        print(f"worst in-process {max(r[2] for r in rows):.3f}s; worst whole process {max(r[3] for r in rows):.3f}s")

        import yaml

        big = work / "fleet.yaml"
        big.write_text(yaml.dump(fleet_spec(args.nodes), Dumper=yaml.CSafeDumper, sort_keys=False, width=1000))
        size = big.stat().st_size
        times = []
        for _ in range(args.runs):
            seconds, ok = child_time(big, env)
            assert ok, "the fleet spec must be valid"
            times.append(seconds)
        print(f"\nvalid YAML spec, {args.nodes:,} nodes, {size / 1e6:.1f} MB: spec.load median {statistics.median(times):.2f}s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
