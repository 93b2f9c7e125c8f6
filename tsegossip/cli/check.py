"""`tsegossip check`: the live cluster against the spec, as a table or JSON; exit 1 when they differ."""

from __future__ import annotations

import argparse
import os

from ..keys import GossipKey


def register(sub) -> None:
    s = sub.add_parser("check", help="compare the live cluster with the spec: members, phases, keys",
                       description="For every node: alive or not, its phase as observed through Consul's HTTP API, "
                       "the keys its keyring holds (fingerprints). Exits 1 when anything differs from what the spec "
                       "says today (or, with --after, from what it should be after that stack).")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--after", metavar="STACK", help="expect the phases planned after this stack instead of today's")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.add_argument("--timeout", type=float, default=3.0, help="seconds per HTTP request (default 3)")
    s.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from .. import check, planner, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    rollout = spec.load(args.spec)
    key = GossipKey.from_env(rollout.key_env) if os.environ.get(rollout.key_env) else None
    state = None
    if args.after:
        state = planner.plan(rollout).step(args.after).after
    verdict = check.run_check(rollout, key, state, timeout=args.timeout)
    print(check.as_table(verdict) if args.format == "table" else check.as_json(verdict))
    return 0 if verdict.ok else 1
