"""`tsegossip check`: the live cluster against the spec, as a table or JSON; exit 1 when they differ."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..keys import InvalidKey, key_for_plan, rotation_key_for_plan


def register(sub) -> None:
    s = sub.add_parser("check", help="compare the live cluster with the spec: members, phases, keys",
                       description="For every node: alive or not, its phase as observed through Consul's HTTP API, "
                       "the keys its keyring holds (fingerprints). Exits 1 when anything differs from what the spec "
                       "says today (or, with --after, from what it should be after that stack).")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--after", metavar="STACK", help="expect the phases planned after this stack instead of today's")
    s.add_argument("--today", action="store_true",
                   help="judge against the spec's phases only; without it, a cluster that differs from them but runs "
                        "exactly the phases some step of the plan leaves is judged against that step (and says so)")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.add_argument("--timeout", type=float, default=3.0, help="seconds per HTTP request (default 3)")
    s.set_defaults(func=cmd_check)

    d = sub.add_parser("discover", help="write a spec skeleton from a live cluster",
                       description="List the members of the cluster behind ADDR (Consul's HTTP API), take servers from "
                       "their tags, group the clients (by a node-meta key or a name pattern), read each node's phase "
                       "from its own API, and print a spec skeleton (YAML). It leaves out what it cannot know "
                       "(delivery's known_hosts and identity): `tsegossip validate` names each field to fill in.")
    d.add_argument("addr", metavar="ADDR", help="an agent's HTTP API, e.g. http://10.0.0.5:8500")
    d.add_argument("--group-by", default="pattern:^(?P<group>.+?)-?\\d+$",
                   help="meta:KEY (the catalog's node meta) or pattern:REGEX with a named group `group` applied to "
                        "node names (default: the name without its trailing number, web-3 -> web)")
    d.add_argument("--http-port", type=int, default=8500, help="the agents' HTTP port (default 8500)")
    d.add_argument("--name", default="discovered", help="the rollout's name (default discovered)")
    d.add_argument("--tse", nargs=2, metavar=("INSTANCE_ID", "REGION"),
                   help="the servers are this TSE instance (otherwise self-managed, one node per server member)")
    d.add_argument("--token-env", default="CONSUL_HTTP_TOKEN")
    d.add_argument("--cacert-env", default="CONSUL_CACERT")
    d.add_argument("--out", metavar="PATH", help="write the skeleton here instead of stdout")
    d.add_argument("--timeout", type=float, default=3.0)
    d.set_defaults(func=cmd_discover)


def cmd_discover(args: argparse.Namespace) -> int:
    import sys

    from .. import discover, observe

    access = observe.Access(token_env=args.token_env, cacert_env=args.cacert_env)
    found = discover.discover(args.addr, access, args.group_by, args.http_port, args.timeout)
    doc, notes = discover.skeleton(found, args.addr, args.name, tuple(args.tse) if args.tse else None)
    if args.token_env != "CONSUL_HTTP_TOKEN" or args.cacert_env != "CONSUL_CACERT":
        doc["consul"] = {"token_env": args.token_env, "cacert_env": args.cacert_env}
    text = discover.render(doc, notes, args.addr, len(found))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"discover: wrote {args.out}: {sum(f.server for f in found)} server(s), "
              f"{len(doc['client_groups'])} group(s), {sum(not f.server for f in found)} client(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .. import check, planner, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    rollout = spec.load(args.spec)
    try:  # the keyring is judged by fingerprint: the spec's pinned one does without the key itself
        _, key = key_for_plan(rollout.key_env, rollout.key_fingerprint)
    except InvalidKey as err:
        raise UserError(f"key_env: {err}") from None
    rotation_note = None
    if rollout.rotates and rollout.rotate_to_env != rollout.key_env:
        key, rotation_note = _rotation_key(rollout, key, args.timeout)
    state = None
    if args.after:
        state = planner.plan(rollout).step(args.after).after
    verdict = check.run_check(rollout, key, state, timeout=args.timeout)
    note = None
    if not verdict.ok and not args.after and not args.today:
        # The spec's phases are today's as written; mid-rollout or after it they are history. Where
        # every listed node runs what some step leaves, that step is the useful comparison.
        from .. import repair

        plan = planner.plan(rollout)
        found = repair.find(plan, timeout=args.timeout)
        if found.at != repair.TODAY and found.matching == found.listed:
            at = check.run_check(rollout, key, plan.step(found.at).after, timeout=args.timeout)
            if at.ok:
                verdict = at
                note = (f"judged against the phases planned after {found.at}: the live cluster runs them on "
                        f"{found.matching}/{found.listed} listed nodes, not the spec's phases (those are today's as "
                        "written; update them, or --today to judge against them)")
    if rotation_note:
        note = rotation_note + (f"; {note}" if note else "")
        # an agent that runs (its API answers) but is no alive member missed a key change: a rotation's straggler
        cut = [v.name for v in verdict.nodes if v.member in ("failed", "left", "absent")
               and v.observed not in ("unreachable", "unknown")]
        if cut:
            note += (f"; {', '.join(cut)} runs but is no alive member: it missed a keyring change (a straggler of the "
                     "rotation, holding the old key only); `tsegossip repair SPEC --keyring` brings it back through "
                     "the keyring API")
    if args.format == "table":
        print((note + "\n" if note else "") + check.as_table(verdict))
    else:
        print(check.as_json(verdict, note))
    return 0 if verdict.ok else 1


def _rotation_key(rollout, old, timeout: float):
    """A rotation spec is judged against the key every member uses as primary now: the new one once `use` is
    done, else the old one. Fingerprints only (pinned, or from the variables when set)."""
    from .. import observe
    from ..check import access_of

    try:
        _, new = rotation_key_for_plan(rollout.rotate_to_env, rollout.rotate_to_fingerprint, old)
    except InvalidKey as err:
        raise UserError(f"rotate_to_env: {err}") from None
    ring = observe.keyring(rollout.servers.http_addr, access_of(rollout), timeout=max(timeout, 5.0))
    if new.fingerprint != "unknown" and not ring.error and ring.primary_everywhere(new.fingerprint):
        return new, (f"key rotation: judged against the new key sha256:{new.fingerprint} "
                     f"(${rollout.rotate_to_env}), every member's primary now")
    return old, f"key rotation: judged against the current key sha256:{old.fingerprint} (${rollout.key_env})"
