"""`tsegossip keygen`, `validate`, `plan` and `render`: the commands that read a spec and touch no cluster.

They only read the spec, plan it and print; `check` and `deploy` talk to the cluster and live beside.
"""

from __future__ import annotations

import argparse
import json

from ..errors import UserError
from ..keys import UNKNOWN_FINGERPRINT, GossipKey, InvalidKey, KeyShown, key_for_plan, redact_text, rotation_key_for_plan


def register(sub) -> None:
    s = sub.add_parser("keygen", help="print a new gossip key (like `consul keygen`)",
                       description="Print base64 of 32 bytes from the OS CSPRNG, exactly like `consul keygen`.")
    s.set_defaults(func=cmd_keygen)

    s = sub.add_parser("tse-parameters", help="print the JSON to save in TSE's console for one phase, key from a variable",
                       description="Print the three gossip parameters TSE's console takes (System parameters -> "
                       "Gossip encryption) for PHASE, with the key read from $KEY_ENV, for a pipe into the "
                       "clipboard: the key is never typed, so never in a shell history. On a terminal the key "
                       "is shown redacted unless --to-terminal.")
    s.add_argument("phase", metavar="PHASE", help="plaintext, accept-encrypted, send-encrypted or enforced")
    s.add_argument("--key-env", default="TSEGOSSIP_KEY", metavar="VAR",
                   help="the variable holding the key (default TSEGOSSIP_KEY)")
    s.add_argument("--to-terminal", action="store_true", help="print the key in clear even on a terminal")
    s.set_defaults(func=cmd_tse_parameters)

    s = sub.add_parser("validate", help="check a rollout spec and the key it names",
                       description="Validate SPEC against schemas/rollout.schema.json and check the key in $key_env.")
    s.add_argument("spec", metavar="SPEC", help="rollout spec, YAML or JSON")
    s.add_argument("--skip-key", action="store_true", help="do not require the key variable to be set")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("plan", help="show the safe steps from today's phases to the target",
                       description="Compute the rollout's steps (one stack each) and prove every step keeps "
                       "every pair of agents able to gossip.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--format", choices=["text", "markdown", "json"], default="text",
                   help="text for terminals, markdown for pull requests, json for pipelines (default: text)")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    s.add_argument("--live", action="store_true",
                   help="also read the live cluster (servers.http_addr): alive members the spec does not list and "
                        "the step that would cut each off, listed nodes that are down and what down_nodes does, "
                        "nodes not in the spec's phase; exit 1 when a step would be refused as things stand")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("render", help="print the agent config fragment of one group in one step",
                       description="Print the exact gossip JSON a Consul agent of GROUP reads after STACK. "
                       "The key is redacted unless --reveal.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--stack", required=True, metavar="ID", help="a stack id from `tsegossip plan`")
    s.add_argument("--group", required=True, metavar="NAME", help="a client group name, or `servers`")
    s.add_argument("--reveal", action="store_true", help="print the key in clear (for piping into a config file)")
    s.set_defaults(func=cmd_render)


def _load_plan(path: str, required: bool = True, rollout=None):
    """The plan, the key (None when not required and not set) and what a plan shows of it."""
    from .. import planner, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    rollout = rollout or spec.load(path)
    try:
        key, shown = key_for_plan(rollout.key_env, rollout.key_fingerprint, required=required)
    except InvalidKey as err:
        raise UserError(f"key_env: {err}") from None
    return planner.plan(rollout), key, shown


def _load_rotation(rollout, required: bool):
    """A rotation spec's plan (None when refused), its two keys (None when not required and not set) and every
    problem found: the current key (key_env), the new one (rotate_to_env), the plan's refusals."""
    from .. import rotation  # on use, like the planner
    from ..errors import PlanError

    problems: list[str] = []
    old = new = old_shown = new_shown = None
    try:
        old, old_shown = key_for_plan(rollout.key_env, rollout.key_fingerprint, required=required)
    except InvalidKey as err:
        problems.append(f"key_env: {err}")
    if rollout.rotate_to_env != rollout.key_env:  # one variable for both: the plan's refusal names the two fields
        current = old_shown or KeyShown(rollout.key_env, rollout.key_fingerprint or UNKNOWN_FINGERPRINT, "",
                                        "pinned" if rollout.key_fingerprint else "none")
        try:
            new, new_shown = rotation_key_for_plan(rollout.rotate_to_env, rollout.rotate_to_fingerprint, current,
                                                   required=required)
        except InvalidKey as err:
            problems.append(f"rotate_to_env: {err}")
    try:
        plan = rotation.plan_rotation(rollout, old_shown, new_shown)
    except PlanError as err:
        plan = None
        problems.extend(err.lines())
    return plan, old, new, problems


def cmd_keygen(args: argparse.Namespace) -> int:
    import sys

    key = GossipKey.generate()
    print(key.reveal())
    # stderr, so `tsegossip keygen > secret` or a pipe into a vault keeps only the key
    print(f"fingerprint {key.fingerprint}: pin it in the spec as `key_fingerprint: {key.fingerprint}`",
          file=sys.stderr)
    return 0


def cmd_tse_parameters(args: argparse.Namespace) -> int:
    import sys

    from ..agentconfig import tse_parameters
    from ..phases import Phase

    try:
        phase = Phase(args.phase)
    except ValueError:
        raise UserError(f"PHASE: {args.phase!r} is not a phase; expected one of {', '.join(Phase.names())}") from None
    key = None
    if phase.has_key:
        try:
            key = GossipKey.from_env(args.key_env)
        except InvalidKey as err:
            raise UserError(f"--key-env: {err}") from None
    reveal = args.to_terminal or not sys.stdout.isatty()
    print(json.dumps(tse_parameters(phase, key, reveal=reveal), indent=2))
    if not reveal:
        print(f"(key redacted on a terminal, fingerprint {key.fingerprint if key else 'none'}: pipe this command "
              "into your clipboard, e.g. `| xclip -selection clipboard`, or add --to-terminal)", file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .. import planner, spec  # on use: keeps `lab restart` light (see tsegossip.cli)
    from ..errors import PlanError

    rollout = spec.load(args.spec)
    if rollout.rotates:
        return _validate_rotation(args, rollout)
    problems = []
    if not args.skip_key:
        try:
            key, _ = key_for_plan(rollout.key_env, rollout.key_fingerprint, required=True)
        except InvalidKey as err:
            problems.append(f"key_env: {err}")
    try:
        planner.plan(rollout)  # every check `plan` runs: a spec that validates also plans
    except PlanError as err:
        problems.extend(err.lines())
    if problems:
        raise UserError("\n".join(f"{args.spec}: {p}" for p in problems))
    nodes = len(rollout.servers.nodes) + sum(len(g.nodes) for g in rollout.client_groups)
    msg = f"{args.spec}: valid ({rollout.strategy}, target {rollout.target}, {len(rollout.client_groups)} client group(s), {nodes} listed node(s))"
    if not args.skip_key:
        msg += f"; key {key.redacted} sha256:{key.fingerprint}" + (" (as pinned)" if rollout.key_fingerprint else "")
    elif rollout.key_fingerprint:
        msg += f"; key pinned as sha256:{rollout.key_fingerprint} (not checked: --skip-key)"
    print(redact_text(msg))
    return 0


def _validate_rotation(args: argparse.Namespace, rollout) -> int:
    """`validate` of a rotation spec: both keys (unless --skip-key) and every refusal of the rotation's plan."""
    plan, old, new, problems = _load_rotation(rollout, required=not args.skip_key)
    if problems:
        raise UserError("\n".join(f"{args.spec}: {p}" for p in problems))
    nodes = len(rollout.servers.nodes) + sum(len(g.nodes) for g in rollout.client_groups)
    msg = (f"{args.spec}: valid (key rotation at {plan.phase}, {len(plan.stages)} stages, "
           f"{len(rollout.client_groups)} client group(s), {nodes} listed node(s))")
    if not args.skip_key:
        msg += (f"; key {old.redacted} sha256:{old.fingerprint}" + (" (as pinned)" if rollout.key_fingerprint else "")
                + f"; new key {new.redacted} sha256:{new.fingerprint}"
                + (" (as pinned)" if rollout.rotate_to_fingerprint else ""))
    else:
        msg += f"; keys not checked (--skip-key): current sha256:{plan.old.fingerprint}, new sha256:{plan.new.fingerprint}"
    print(redact_text(msg))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .. import report, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    rollout = spec.load(args.spec)
    if rollout.rotates:
        if args.live:
            raise UserError("--live: not for a key rotation yet (each stage's gate reads the live keyring at deploy "
                            "time); `tsegossip check SPEC` shows every node and the keys it holds")
        # No secret needed either: the fingerprints pinned in the spec, or unknown.
        plan, _, _, problems = _load_rotation(rollout, required=False)
        if problems:
            raise UserError("\n".join(problems))
        from .. import rotation_report

        out = rotation_report.render(plan, args.format)
    else:
        # A pull request's plan needs no secret: without the key it shows the pinned fingerprint, or unknown.
        plan, _, shown = _load_plan(args.spec, required=False, rollout=rollout)
        render = {"text": report.as_text, "markdown": report.as_markdown, "json": report.as_json}[args.format]
        out = render(plan, shown)
    ok = True
    if args.live:
        from .. import check

        lines, ok = check.live_lines(plan)
        if args.format == "json":
            import json

            out = json.dumps({**json.loads(out), "live": {"ok": ok, "lines": lines}}, indent=2)
        elif args.format == "markdown":
            out = out.rstrip("\n") + "\n\n### Live\n\n```\n" + "\n".join(lines) + "\n```\n"
        else:
            out = out.rstrip("\n") + "\n" + "\n".join(lines)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(out if out.endswith("\n") else out + "\n")
        except OSError as err:  # a missing directory, a directory, no permission
            raise UserError(f"-o/--output: cannot write {args.output!r}: {err.strerror or err.__class__.__name__}") from None
    else:
        print(out)
    return 0 if ok else 1


def cmd_render(args: argparse.Namespace) -> int:
    from .. import report, schemas  # on use: keeps `lab restart` light (see tsegossip.cli)

    plan, key, _ = _load_plan(args.spec)
    groups = ["servers", *(g.name for g in plan.rollout.client_groups)]
    if args.group not in groups:
        raise UserError(f"--group: {args.group!r} is not a group of {plan.rollout.name}; allowed: {', '.join(groups)}")
    try:
        doc = report.render_fragment(plan, args.stack, args.group, key, reveal=args.reveal)
    except ValueError as err:
        raise UserError(f"--group: {err}") from None
    problems = schemas.problems("agent-gossip-config", doc)
    if problems:  # our own output failing our own schema is a bug, not user input
        raise RuntimeError("; ".join(map(str, problems)))
    print(json.dumps(doc, indent=2))
    return 0
