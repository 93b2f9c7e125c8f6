#!/usr/bin/env python
"""The smooth rollout on the multi-host fleet over SSH, against the same rollout without delivery cost
and against an Ansible playbook doing the same three config-and-restart passes.

    ./bootstrap -- python bench/fleet_bench.py --clients 30 --batch 5 --runs 3

Per run, each on a fresh fleet of 3 servers + N clients (two groups, web and api, of N/2 hosts):
  ssh        tsegossip deploy (real `cdktf deploy`, stack by stack) with ssh delivery: per host one
             connection per step, the write on the host, the restart on the host;
  no-ssh     the same rollout with delivery's cost taken out: `local` delivery writing straight into
             each host's private directory on the runner, and `nsenter <the host's namespaces> consulctl
             restart` as restart command (no SSH, no Python start-up);
  ansible    ansible-core (PyPI, its own venv under .tools/ansible) over the same SSH fleet: three passes
             (accept-encrypted, send-encrypted, enforced), each servers `serial: 1` then clients
             `serial: 5`, a copy of the fragment (no_log) and `consulctl restart`, pipelining on, then
             `wait_for` the agent's HTTP port: what an operator would otherwise write. No gates, no proof,
             no membership check.
Ratios: ssh / no-ssh (goal <= 1.2) and ssh / ansible (goal <= 1.0). Also the connections tsegossip
opened per host per step (from the provider's `delivery opened N connection(s) to M host(s)` lines;
goal 1) and the failed samples a probe saw outside the batch in flight.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tsegossip import deploy, planner, spec  # noqa: E402
from tsegossip.keys import GossipKey  # noqa: E402
from tsegossip.lab import fleet as F  # noqa: E402
from tsegossip.lab import fleetnet  # noqa: E402
from tests.fleet.helpers import Out, Probe  # noqa: E402
from machine import cpu_model  # noqa: E402

ANSIBLE_VERSION = "2.19.14"
ANSIBLE_VENV = ROOT / ".tools" / "ansible"
KEY_ENV = "TSEGOSSIP_FLEET_KEY"
_CONN = re.compile(r"delivery opened (\d+) connection\(s\) to (\d+) host\(s\)")


def console() -> str:
    return str(Path(sys.executable).parent / "tsegossip")


def ensure_ansible() -> Path:
    """ansible-playbook from PyPI in a venv of its own (not the project's: it is only the peer here)."""
    exe = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not exe.exists():
        print(f"bench: installing ansible-core=={ANSIBLE_VERSION} into {ANSIBLE_VENV}", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run([str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", f"ansible-core=={ANSIBLE_VERSION}"],
                       check=True)
    return exe


def fleet_up(workdir: Path, clients: int) -> F.Fleet:
    half = clients // 2
    return F.up(workdir, servers=3, groups={"web": clients - half, "api": half})


def run_tsegossip(fleet: F.Fleet, workdir: Path, batch: int, no_ssh: bool) -> dict:
    doc = F.spec(fleet, name="bench", key_env=KEY_ENV, batch_size=batch)
    if no_ssh:
        for role in [doc["servers"], *doc["client_groups"]]:
            role["delivery"] = {"method": "local"}
            role["config_path"] = str(fleet.root / "hosts" / "{node}" / "consul.d" / "50-gossip.json")
            # nsenter straight into the host's namespaces: no SSH, and no Python start-up either
            enter = " ".join(fleetnet.enter(fleet.ns_dir, "{node}"))
            role["restart_command"] = f"{enter} {F.RESTART_COMMAND}"
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(doc, indent=2))
    plan = planner.plan(spec.load(spec_path))
    key = GossipKey.from_env(KEY_ENV)
    out = Out()
    t0 = time.monotonic()
    with Probe(fleet, interval=0.25) as probe, contextlib.redirect_stdout(sys.stderr):  # JSON alone on stdout
        deploy.deploy_steps(plan, spec_path, key, workdir / "deploy", out=out, check_after=False)
    wall = time.monotonic() - t0
    conns = [(int(a), int(b)) for a, b in _CONN.findall(out.getvalue())]
    per_host = [a / b for a, b in conns if b]
    return {"wall": round(wall, 1), "failed_outside": len(probe.outside_batches(out)),
            "connections_per_host_per_step": max(per_host) if per_host else None, "samples": probe.samples}


PLAYBOOK = """
- name: servers to {phase}
  hosts: servers
  serial: 1
  gather_facts: false
  tasks: &tasks
    - name: gossip fragment
      no_log: true
      ansible.builtin.copy:
        dest: /etc/consul.d/50-gossip.json
        mode: "0600"
        content: "{content}"
    - name: restart
      ansible.builtin.command: /var/lib/consul/consulctl restart
    - name: agent answers
      ansible.builtin.wait_for: {{host: "{{{{ ansible_host }}}}", port: 8500, timeout: 60}}
      delegate_to: localhost
- name: clients to {phase}
  hosts: clients
  serial: {batch}
  gather_facts: false
  tasks: *tasks
"""


def run_ansible(fleet: F.Fleet, workdir: Path, batch: int) -> dict:
    exe = ensure_ansible()
    inv = ["[servers]"] + [f"{h.name} ansible_host={h.addr}" for h in fleet.servers] + ["", "[clients]"] + \
          [f"{h.name} ansible_host={h.addr}" for h in fleet.clients]
    (workdir / "inventory.ini").write_text("\n".join(inv) + "\n")
    key_expr = "{{ lookup('env', '" + KEY_ENV + "') }}"
    plays = []
    for phase, vin, vout in (("accept-encrypted", "false", "false"), ("send-encrypted", "false", "true"),
                             ("enforced", "true", "true")):
        content = ('{\\"encrypt\\": \\"' + key_expr + '\\", \\"encrypt_verify_incoming\\": ' + vin +
                   ', \\"encrypt_verify_outgoing\\": ' + vout + '}')
        plays.append(PLAYBOOK.format(phase=phase, content=content, batch=batch)
                     .replace("tasks: &tasks", f"tasks: &tasks_{phase.replace('-', '_')}")
                     .replace("tasks: *tasks", f"tasks: *tasks_{phase.replace('-', '_')}"))
    (workdir / "rollout.yml").write_text("\n".join(plays))
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_PIPELINING="True",
               ANSIBLE_SSH_ARGS=f"-F {fleet.ssh_config} -o ControlMaster=auto -o ControlPersist=60s "
                                f"-o ControlPath={workdir}/cm-%C", ANSIBLE_FORKS="10", ANSIBLE_REMOTE_USER="root",
               ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-local"), ANSIBLE_GATHERING="explicit")
    t0 = time.monotonic()
    with Probe(fleet, interval=0.25) as probe:
        r = subprocess.run([str(exe), "-i", str(workdir / "inventory.ini"), str(workdir / "rollout.yml")],
                           env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"ansible failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return {"wall": round(wall, 1), "failed_any": len(probe.failed), "samples": probe.samples}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("ssh", "no-ssh", "ansible"), action="append")
    ap.add_argument("--workdir", default="/tmp/tsegossip-fleet-bench")
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, GossipKey.generate().reveal())
    variants = args.only or ["ssh", "no-ssh", "ansible"]
    results: dict[str, list[dict]] = {v: [] for v in variants}
    base = Path(args.workdir)
    for run in range(args.runs):
        for v in variants:
            work = base / f"{v}-{run}"
            work.mkdir(parents=True, exist_ok=True)
            fleet = fleet_up(work / "fleet", args.clients)
            os.environ[F.IDENTITY_ENV] = str(fleet.identity)
            try:
                if v == "ansible":
                    res = run_ansible(fleet, work, args.batch)
                else:
                    res = run_tsegossip(fleet, work, args.batch, no_ssh=(v == "no-ssh"))
            finally:
                F.down(fleet.workdir)
            results[v].append(res)
            print(f"bench: run {run + 1}/{args.runs} {v}: {res}", file=sys.stderr, flush=True)
    med = {v: statistics.median(r["wall"] for r in rs) for v, rs in results.items()}
    summary = {
        "command": " ".join(["./bootstrap -- python bench/fleet_bench.py", *sys.argv[1:]]),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores", "servers": 3, "clients": args.clients,
        "batch": args.batch, "runs": results, "median_wall": med,
    }
    if "ssh" in med and "no-ssh" in med:
        summary["ratio_ssh_vs_no_ssh"] = round(med["ssh"] / med["no-ssh"], 3)
    if "ssh" in med and "ansible" in med:
        summary["ratio_ssh_vs_ansible"] = round(med["ssh"] / med["ansible"], 3)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
