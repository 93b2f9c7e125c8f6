"""`tsegossip lab fleet up|status|spec|down`: the multi-host test fleet from the command line."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..phases import Phase
from . import fleet as F
from .model import LabError

DEFAULT_DIR = os.environ.get("TSEGOSSIP_FLEET_DIR", str(F.DEFAULT_WORKDIR))


def _group(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or not name or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=COUNT (e.g. web=3)")
    return name, int(count)


def register(sub, guard) -> None:
    """Add `fleet` to the lab's subcommands; `guard` turns LabError into an error line and exit 1."""
    p = sub.add_parser(
        "fleet", help="a multi-host test fleet: network namespaces with sshd and Consul (root)",
        description="Hosts made of network namespaces on this machine (198.18.0.0/24, bridge tsgfleet0), "
                    "each with its own address, its own /etc/consul.d, /var/lib/consul, /etc/ssh and /root, a "
                    "real sshd and a real Consul agent. The runner reaches them only over SSH and Consul's "
                    "HTTP API. Needs root.")
    fsub = p.add_subparsers(dest="fleet_command", metavar="{up,status,spec,restart,down}")
    fsub.required = True

    def dir_arg(sp):
        sp.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"fleet working directory on the runner (default: $TSEGOSSIP_FLEET_DIR or {DEFAULT_DIR})")

    up = fsub.add_parser("up", help="make the fleet and start its agents",
                         description="Make the hosts (removing any earlier fleet first), start sshd and the Consul "
                                     "agents, and wait until the agents see each other alive.")
    dir_arg(up)
    up.add_argument("--servers", type=int, default=3, help="server hosts (default 3)")
    up.add_argument("--group", type=_group, action="append", metavar="NAME=COUNT",
                    help="a client group and its number of hosts; repeat (default: web=3 api=3)")
    up.add_argument("--not-started", action="append", default=[], metavar="GROUP",
                    help="a group whose agents are not started (new clients, for the direct strategy)")
    up.add_argument("--servers-phase", choices=Phase.names(), default="plaintext")
    up.add_argument("--clients-phase", choices=Phase.names(), default="plaintext")
    up.add_argument("--key-env", default="TSEGOSSIP_FLEET_KEY",
                    help="variable holding the key for phases other than plaintext (default TSEGOSSIP_FLEET_KEY)")
    up.add_argument("--spec-out", metavar="PATH", help="also write a rollout spec with ssh delivery to PATH")
    up.add_argument("--batch-size", type=int, default=1, help="the spec's client batch size (default 1)")
    up.set_defaults(func=guard(cmd_up))

    st = fsub.add_parser("status", help="each host: address, sshd, agent, membership")
    dir_arg(st)
    st.add_argument("--format", choices=("table", "json"), default="table")
    st.set_defaults(func=guard(cmd_status))

    sp = fsub.add_parser("spec", help="write a rollout spec for the fleet (ssh delivery)")
    dir_arg(sp)
    sp.add_argument("--out", required=True, metavar="PATH")
    sp.add_argument("--batch-size", type=int, default=1)
    sp.add_argument("--key-env", default="TSEGOSSIP_FLEET_KEY")
    sp.set_defaults(func=guard(cmd_spec))

    rs = fsub.add_parser("restart", help="restart one host's agent from the runner, without SSH",
                         description="Run the host's `consulctl restart` inside its namespaces (nsenter) on the "
                                     "runner: a restart_command for benchmarks that take the delivery's cost out.")
    dir_arg(rs)
    rs.add_argument("node")
    rs.set_defaults(func=guard(cmd_restart))

    dn = fsub.add_parser("down", help="stop everything and remove the fleet (idempotent, also after a crash)")
    dir_arg(dn)
    dn.set_defaults(func=guard(cmd_down))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_up(args) -> int:
    groups = dict(args.group) if args.group else {"web": 3, "api": 3}
    phases = {"servers": args.servers_phase, "clients": args.clients_phase}
    key = None
    if Phase(args.servers_phase).has_key or Phase(args.clients_phase).has_key:
        key = os.environ.get(args.key_env)
        if not key:
            raise LabError(f"${args.key_env} is not set: phases other than plaintext need the key "
                           f"(e.g. export {args.key_env}=$(consul keygen))")
    fleet = F.up(args.dir, servers=args.servers, groups=groups, phases=phases, key=key,
                 not_started=args.not_started, progress=_say)
    _say(f"fleet: identity for ssh delivery: export {F.IDENTITY_ENV}={fleet.identity}")
    _say(f"fleet: by hand: ssh -F {fleet.ssh_config} root@{fleet.hosts[0].addr}")
    if args.spec_out:
        _write_spec(fleet, args.spec_out, args.batch_size, args.key_env, phases, args.not_started)
    return 0


def _write_spec(fleet, out, batch_size, key_env, phases=None, not_joined=()) -> None:
    doc = F.spec(fleet, key_env=key_env, batch_size=batch_size, phases=phases, not_joined=not_joined,
                 strategy="direct" if not_joined else "smooth")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    _say(f"fleet: wrote rollout spec {os.path.abspath(out)}")


def cmd_spec(args) -> int:
    _write_spec(F.load(args.dir), args.out, args.batch_size, args.key_env)
    return 0


def cmd_status(args) -> int:
    fleet = F.load(args.dir)
    try:
        seen = F.members(fleet)
    except OSError as err:
        seen = {}
        _say(f"fleet: {fleet.servers[0].name} did not list members: {err}")
    rows = [{"host": h.name, "addr": h.addr, "role": h.role if h.role == "server" else f"client/{h.group}",
             "sshd": F.sshd_running(fleet, h.name), "agent": F.consulctl(fleet, h.name, "status").strip(),
             "member": seen.get(h.name, "absent")} for h in fleet.hosts]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for r in rows:
        print(f"{r['host']:<12} {r['addr']:<13} {r['role']:<12} sshd={'up' if r['sshd'] else 'down':<5} "
              f"agent={r['agent']:<16} member={r['member']}")
    return 0


def cmd_restart(args) -> int:
    fleet = F.load(args.dir)
    fleet.host(args.node)  # an unknown node is named
    F.consulctl(fleet, args.node, "restart")
    return 0


def cmd_down(args) -> int:
    names = F.down(args.dir, progress=_say)
    if not names:
        _say("fleet: nothing to remove")
    return 0
