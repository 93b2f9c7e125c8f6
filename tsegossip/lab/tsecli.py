"""`tsegossip lab tse ...`: a lab whose servers are a local TSE instance, its API stand-in, its console.

  up      start the lab with the servers as a TSE instance has them, write the instance and a spec
  serve   run the API stand-in (foreground) and print the endpoint to give tsegossip
  save    what the console's save does: check the three parameters, roll the servers one at a time
  status  the instance's status and the status history
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..keys import GossipKey, InvalidKey


def register(sub, guard, dir_arg) -> None:
    p = sub.add_parser("tse", help="a lab whose servers are a local TSE instance: API stand-in and console",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="tse_command", metavar="{up,serve,save,status}")
    tsub.required = True

    up = tsub.add_parser("up", help="start the lab with the servers of a TSE instance",
                         description="Start a lab (3 servers, clients in groups) whose servers are the TSE "
                                     "instance's, write the stand-in's instance (<dir>/tse/instance.json) and, "
                                     "with --spec-out, a rollout spec with servers of type tse.")
    dir_arg(up)
    up.add_argument("--servers-phase", default="plaintext",
                    help="the instance's gossip phase: plaintext (encryption off) or accept-encrypted (a new TSE "
                         "instance: a key of its own, nothing verified); default plaintext")
    up.add_argument("--instance-key-env", default="TSEGOSSIP_TSE_INSTANCE_KEY", metavar="VAR",
                    help="the instance's own key, when its phase has one; generated into <dir>/tse/instance.key "
                         "(0600) when unset")
    up.add_argument("--clients", type=int, default=6, help="client agents (default 6)")
    up.add_argument("--groups", type=int, default=2, help="client groups (default 2)")
    up.add_argument("--spec-out", metavar="FILE", help="also write a rollout spec for this lab")
    up.add_argument("--key-env", default="TSEGOSSIP_KEY", help="key_env of the spec written (default TSEGOSSIP_KEY)")
    up.set_defaults(func=guard(cmd_up))

    sv = tsub.add_parser("serve", help="run the TSE API stand-in in the foreground",
                         description="Serve DescribeSREInstances for the lab's instance on 127.0.0.1, TC3 "
                                     "signatures checked against the test SecretId/SecretKey printed. Ctrl-C stops.")
    dir_arg(sv)
    sv.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    sv.set_defaults(func=guard(cmd_serve))

    sa = tsub.add_parser("save", help="the console's save: check the parameters, roll the servers",
                         description="Save the three gossip parameters as TSE's console does and roll the servers "
                                     "one at a time while the instance reports updating, then restarting, then "
                                     "running. The key is read from --key-env, never given as an argument.")
    dir_arg(sa)
    sa.add_argument("--key-env", default="TSEGOSSIP_KEY", metavar="VAR", help="variable holding encrypt")
    sa.add_argument("--no-key", action="store_true", help="save encrypt empty (encryption off)")
    sa.add_argument("--verify-incoming", choices=["true", "false"], required=True)
    sa.add_argument("--verify-outgoing", choices=["true", "false"], required=True)
    sa.add_argument("--update-seconds", type=float, default=2.0, help="time in `updating` (default 2)")
    sa.add_argument("--server-seconds", type=float, default=1.0, help="pause after each server (default 1)")
    sa.add_argument("--fail", choices=["update", "restart"], help="end in update_fail or restart_fail (tests)")
    sa.set_defaults(func=guard(cmd_save))

    st = tsub.add_parser("status", help="the instance's status and its history")
    dir_arg(st)
    st.set_defaults(func=guard(cmd_status))


def _tse_dir(lab_dir: str) -> str:
    from .tse_lab import TSE_DIR

    return os.path.join(os.path.abspath(lab_dir), TSE_DIR)


def cmd_up(args) -> int:
    from ..phases import Phase
    from . import tse_lab
    from .configs import new_key_file
    from .model import LabError

    if args.servers_phase not in ("plaintext", "accept-encrypted"):
        raise LabError(f"--servers-phase: {args.servers_phase!r}: a TSE instance starts in plaintext or "
                       "accept-encrypted")
    key = None
    if Phase(args.servers_phase).has_key:
        key = os.environ.get(args.instance_key_env)
        if not key:
            path = os.path.join(_tse_dir(args.dir), "instance.key")
            key = new_key_file(path)
            print(f"lab tse: ${args.instance_key_env} unset; the instance's own key (sha256:"
                  f"{GossipKey(key).fingerprint}) is in {path}; adopt it with export {args.key_env}=$(cat {path})",
                  file=sys.stderr)
    c = tse_lab.up(args.dir, servers_phase=args.servers_phase, instance_key=key, clients=args.clients,
                   groups=args.groups)
    print(f"lab tse: instance {tse_lab.INSTANCE_ID} ({tse_lab.REGION}): {len(c.servers)} servers in "
          f"{args.servers_phase}, {len(c.clients)} clients in plaintext; `tsegossip lab tse serve --dir {args.dir}` "
          "serves its API", file=sys.stderr)
    if args.spec_out:
        tse_lab.write_spec(c, args.spec_out, args.servers_phase, key_env=args.key_env)
        print(f"lab tse: wrote rollout spec {os.path.abspath(args.spec_out)}", file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    from .tse_standin import TEST_SECRET_ID, TSEStandIn

    with TSEStandIn(_tse_dir(args.dir), port=args.port) as standin:
        print(f"lab tse: serving on {standin.endpoint}; give tsegossip\n"
              f"  export TSEGOSSIP_TSE_ENDPOINT={standin.endpoint} TENCENTCLOUD_SECRET_ID={TEST_SECRET_ID} "
              "TENCENTCLOUD_SECRET_KEY=<the test key in tsegossip/lab/tse_standin.py>", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def cmd_save(args) -> int:
    from . import tse_console

    encrypt = ""
    if not args.no_key:
        encrypt = os.environ.get(args.key_env, "").strip()
        if not encrypt:
            raise tse_console.ConsoleError(f"--key-env: ${args.key_env} is not set (or use --no-key)")
        try:
            GossipKey(encrypt)
        except InvalidKey:
            raise tse_console.ConsoleError(f"--key-env: ${args.key_env} is not a gossip key "
                                           "(base64 of 16, 24 or 32 bytes); value not shown") from None
    params = {"encrypt": encrypt, "encrypt_verify_incoming": args.verify_incoming == "true",
              "encrypt_verify_outgoing": args.verify_outgoing == "true"}
    tse_console.save(_tse_dir(args.dir), params, args.update_seconds, args.server_seconds, fail=args.fail,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def cmd_status(args) -> int:
    from .tse_standin import read_instance

    doc = read_instance(_tse_dir(args.dir))
    shown = {k: doc.get(k) for k in ("instance_id", "region", "status", "phase", "history")}
    print(json.dumps(shown, indent=2))
    return 0
