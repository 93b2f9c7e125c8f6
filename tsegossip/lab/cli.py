"""`tsegossip lab ...` subcommands. Wire with `register(subparsers)`; each handler is cmd_x(args) -> int."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from ..keys import GossipKey
from .. import lab
from . import fleetcli, tsecli
from .configs import new_key_file

DEFAULT_DIR = os.environ.get("TSEGOSSIP_LAB_DIR", ".tsegossip-lab")


def _err(msg: str) -> int:
    first, *_rest = str(msg).splitlines() or [""]
    print(f"error: {first}", file=sys.stderr)
    for line in _rest:  # log tails etc. go after the one-line error
        print(f"  {line}", file=sys.stderr)
    return 1


def _guard(fn):
    def run(args) -> int:
        try:
            return fn(args)
        except lab.LabError as e:
            return _err(str(e))
        except KeyboardInterrupt:
            return _err("interrupted")
        except OSError as e:
            return _err(f"{e.strerror or e}: {e.filename}" if getattr(e, "filename", None) else str(e))
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {v!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {v}")
    return n


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `lab` command (with up/status/restart/down) to an argparse subparsers object."""
    p = subparsers.add_parser(
        "lab", help="run a local lab of real Consul agents on 127.0.0.1",
        description="Run a local lab of real Consul agents (servers and client groups, each with its "
                    "own ports and data dir) on 127.0.0.1, to try a gossip encryption rollout end to "
                    "end without touching a real cluster.")
    sub = p.add_subparsers(dest="lab_command", metavar="{up,status,restart,token,down,fleet,tse}")
    sub.required = True

    def dir_arg(sp):
        sp.add_argument("--dir", default=DEFAULT_DIR,
                        help=f"lab working directory (default: $TSEGOSSIP_LAB_DIR or {DEFAULT_DIR})")

    up = sub.add_parser("up", help="create and start a lab cluster",
                        description="Create and start a lab cluster (servers + client groups web, api, ...) "
                                    "and wait until every agent sees every other alive.")
    dir_arg(up)
    up.add_argument("--servers", type=_positive, default=3, help="number of server agents (default 3)")
    up.add_argument("--clients", type=_positive, default=6, help="number of client agents (default 6)")
    up.add_argument("--groups", type=_positive, default=2,
                    help="number of client groups: web, api, group-3, ... (default 2)")
    up.add_argument("--base-port", type=_positive, default=None,
                    help="use consecutive ports from here (3 per node) instead of free random ones")
    up.add_argument("--binary", default=None, help="consul binary (default: $TSEGOSSIP_CONSUL, else "
                                                     ".tools/bin/consul, built by ./bootstrap)")
    up.add_argument("--spec-out", metavar="PATH", default=None,
                    help="also write a rollout spec for this lab to PATH")
    up.add_argument("--servers-phase", choices=lab.PHASES, default="plaintext",
                    help="gossip phase the servers start in (default plaintext)")
    up.add_argument("--clients-phase", choices=lab.PHASES, default="plaintext",
                    help="gossip phase the clients start in (default plaintext)")
    up.add_argument("--key-env", default="TSEGOSSIP_KEY",
                    help="environment variable holding the gossip key for non-plaintext phases; "
                         "a key is generated and printed when it is unset (default TSEGOSSIP_KEY)")
    # An alive broadcast that misses a node at start-up is healed by the next push/pull, every 30 s
    # on memberlist's LAN profile (seen: one node unseen for 30 s among 9 starting at once).
    up.add_argument("--timeout", type=float, default=75.0,
                    help="seconds to wait for the cluster to form (default 75: two push/pull rounds)")
    leave = up.add_mutually_exclusive_group()
    leave.add_argument("--leave-on-terminate", dest="leave_on_terminate", action="store_const", const=True,
                       default=None, help="write leave_on_terminate=true into every agent's config: every "
                                          "restart, servers' too, is a graceful leave and rejoin")
    leave.add_argument("--no-leave-on-terminate", dest="leave_on_terminate", action="store_const", const=False,
                       help="write leave_on_terminate=false into every agent's config: a restart is then a "
                            "stop and start, not a graceful leave and rejoin (by default each agent keeps "
                            "Consul's own: clients leave, servers do not)")
    up.add_argument("--secure", action="store_true",
                    help="ACLs on (default deny, a management token kept in --dir) and HTTPS only on every "
                         "agent's API, with a CA and certificates from `consul tls`; then `tsegossip lab token` "
                         "gives tsegossip a least-privilege token and <dir>/tls/consul-agent-ca.pem is the CA")
    up.add_argument("--fresh", action="store_true",
                    help="delete the node directories of a previous lab in --dir first (configs, data, "
                         "keyrings, logs); by default they are reused")
    up.set_defaults(func=cmd_up)

    st = sub.add_parser("status", help="show each agent's view: members, encryption, verify flags",
                        description="Ask every agent for its members and /v1/agent/self and print one row per node.")
    dir_arg(st)
    st.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    st.set_defaults(func=cmd_status)

    rs = sub.add_parser("restart", help="restart one agent (stop, start, wait for rejoin)",
                        description="Stop one agent with SIGTERM (a graceful leave when the lab leaves on "
                                    "terminate, the default; a plain stop with --no-leave-on-terminate), start it again with its "
                                    "config dir (re-reading 50-gossip.json) and wait until it sees itself "
                                    "and another member alive.")
    dir_arg(rs)
    rs.add_argument("node", help="node name, e.g. server-1 or web-2")
    rs.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    rs.add_argument("--no-wait-join", action="store_true",
                    help="only wait for the HTTP API, not for the agent to rejoin")
    rs.set_defaults(func=cmd_restart)

    tk = sub.add_parser("token", help="print a new least-privilege ACL token for tsegossip (secure labs)",
                        description="Create a policy with the rules tsegossip needs and a token holding it, with "
                                    "the lab's management token, and print the token's SecretID on stdout "
                                    "(e.g. `export CONSUL_HTTP_TOKEN=$(tsegossip lab token --dir D)`). The rules:\n"
                                    + lab.TSEGOSSIP_RULES + "With --rotation (a key rotation installs and removes "
                                    "keys) keyring = \"write\" instead.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tk.add_argument("--rotation", action="store_true", help='keyring = "write": for a key rotation (rotate_to_env)')
    dir_arg(tk)
    tk.set_defaults(func=cmd_token)

    dn = sub.add_parser("down", help="stop every agent of the lab (files are kept)",
                        description="Stop every agent (SIGTERM, then SIGKILL after a grace period). "
                                    "Idempotent; the working directory is left for inspection.")
    dir_arg(dn)
    dn.set_defaults(func=cmd_down)
    fleetcli.register(sub, _guard)
    tsecli.register(sub, _guard, dir_arg)
    return p


@_guard
def cmd_up(args) -> int:
    fragments = {}
    key = None
    if args.servers_phase != "plaintext" or args.clients_phase != "plaintext":
        key = os.environ.get(args.key_env)
        if not key:
            key_file = os.path.abspath(os.path.join(args.dir, "gossip.key"))
            key = new_key_file(key_file)
            print(f"lab: ${args.key_env} is not set; generated a key (sha256:{GossipKey(key).fingerprint}) "
                  f"into {key_file}. Use it for the rollout:\nexport {args.key_env}=$(cat {key_file})",
                  file=sys.stderr)
        fragments["servers"] = lab.phase_fragment(args.servers_phase, key)
        fragments["clients"] = lab.phase_fragment(args.clients_phase, key)
    c = lab.up(args.dir, servers=args.servers, clients=args.clients, groups=args.groups,
               base_port=args.base_port, binary=args.binary, initial_fragments=fragments or None,
               timeout=args.timeout, fresh=args.fresh, leave_on_terminate=args.leave_on_terminate,
               secure=args.secure)
    print(f"lab: {len(c.nodes)} agents up in {c.workdir} (servers: {len(c.servers)}, "
          f"groups: {', '.join(c.groups) or '-'}); first server HTTP API {c.servers[0].http_addr}",
          file=sys.stderr)
    if args.spec_out:
        lab.write_spec(c, args.spec_out, key_env=args.key_env, servers_phase=args.servers_phase,
                       clients_phase=args.clients_phase)
        print(f"lab: wrote rollout spec {os.path.abspath(args.spec_out)}", file=sys.stderr)
    return 0


def _fmt_bool(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


@_guard
def cmd_status(args) -> int:
    rows = lab.status(args.dir)
    if args.format == "json":
        json.dump([dataclasses.asdict(r) for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    header = ("NODE", "ROLE", "PID", "HTTP", "ALIVE", "FAILED", "LEFT", "ENCRYPTED", "V_IN", "V_OUT", "NOTE")
    table = [header]
    for r in rows:
        note = r.error or ""
        if r.members:
            bad = [f"{k}={v}" for k, v in sorted(r.members.items()) if v != "alive"]
            if bad:
                note = "sees " + ", ".join(bad)
        table.append((r.name, r.role if r.role == "server" else f"client/{r.group}",
                      str(r.pid or "-"), r.http_addr.replace("http://", ""),
                      "-" if r.members_alive is None else str(r.members_alive),
                      "-" if r.members_failed is None else str(r.members_failed),
                      "-" if r.members_left is None else str(r.members_left),
                      _fmt_bool(r.encrypted), _fmt_bool(r.verify_incoming), _fmt_bool(r.verify_outgoing), note))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


@_guard
def cmd_restart(args) -> int:
    lab.restart(args.dir, args.node, timeout=args.timeout, wait_join=not args.no_wait_join)
    return 0


@_guard
def cmd_token(args) -> int:
    print(lab.create_token(lab.load(args.dir), lab.ROTATION_RULES if args.rotation else lab.TSEGOSSIP_RULES))
    return 0


@_guard
def cmd_down(args) -> int:
    how = lab.down(args.dir)
    if not how:
        print("lab: no agent running", file=sys.stderr)
    return 0
