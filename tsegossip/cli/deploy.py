"""`tsegossip deploy` (a spec's stacks in order with cdktf), `tsegossip repair` (the stragglers, through a stack of
their own) and `tsegossip demo` (the rollout on a fresh local lab)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import UserError
from . import live
from ..keys import GossipKey, InvalidKey, KeyShown, key_for_plan, rotation_key_for_plan


def register(sub) -> None:
    s = sub.add_parser("deploy", help="deploy the rollout's stacks in order with cdktf, checking after each",
                       description="Run `cdktf deploy STACK` for each planned step (or the ones named), stop at the "
                       "first failure, and check the live cluster after each step. Rerun to resume.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--stack", action="append", metavar="ID", help="deploy only this stack (repeatable)")
    s.add_argument("--workdir", default=".tsegossip/deploy", help="where cdktf.out and logs go (default .tsegossip/deploy)")
    s.add_argument("--no-check", action="store_true", help="skip the live check after each step")
    s.add_argument("--interactive", action="store_true",
                   help="TSE servers: after showing what to save in the console, ask on the terminal to press "
                        "Enter once saved (q stops before anything changes). Without it (pipelines) the step "
                        "polls TSE and the servers up to timeouts.tse_seconds and reads no input")
    s.add_argument("--rollback", action="store_true",
                   help="a key rotation (rotate_to_env): deploy its undo stages from where the live keyring is, back "
                        "to the old key alone (refused once remove is done)")
    s.add_argument("--plain", action="store_true",
                   help="one line per event even on a terminal (the default off a terminal, in CI and with "
                        "--interactive); on a terminal deploy otherwise shows a live display of the step, the "
                        "batch, nodes done, the nodes restarting, elapsed time and an estimate")
    s.set_defaults(func=cmd_deploy)

    s = sub.add_parser("repair", help="move the stragglers (nodes left in an old phase) to their role's phase",
                       description="Read every listed node's phase from its own API, find where the cluster is (the "
                       "planned state most nodes run, or --after STACK), and move just the nodes in another phase "
                       "straight to their role's phase: one stack (<name>-repair-<id>) with the same gates, proof and "
                       "delivery as every step, deployed with cdktf, then checked. Nodes whose API does not answer "
                       "are named and left alone. Rerun to resume.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--after", metavar="STACK",
                   help="the cluster is where this stack leaves it (`today`: the spec's phases); default: the planned "
                        "state most listed nodes run now")
    s.add_argument("--dry-run", action="store_true", help="print the stragglers, the repair and its proof; change nothing")
    s.add_argument("--keyring", action="store_true",
                   help="repair a stale keyring instead: install the key in key_env on every member and make it "
                        "every member's primary through the keyring API (POST, then PUT; stack <name>-keyring-<fp>), "
                        "for agents whose serf/local.keyring holds an older set and so ignores `encrypt`. No file "
                        "is deleted, nothing restarts; older keys stay installed. With a rotation spec "
                        "(rotate_to_env): bring back its stragglers, agents that run again but missed the install "
                        "(stack <name>-keyring-rejoin: the others send with the old key until they hold the new "
                        "one, then forward again; their fragments delivered with the new key)")
    s.add_argument("--workdir", default=".tsegossip/deploy", help="where cdktf.out and logs go (default .tsegossip/deploy)")
    s.add_argument("--timeout", type=float, default=3.0, help="seconds per HTTP request while looking (default 3)")
    s.set_defaults(func=cmd_repair)

    s = sub.add_parser("demo", help="the whole story on a local lab: plaintext to enforced with cdktf deploy",
                       description="Start a lab of real Consul agents (3 servers, 6 clients in 2 groups, plaintext), "
                       "run the smooth rollout with `cdktf deploy` one stack at a time, show the checker's table "
                       "after each step, end enforced with every member alive, and stop the lab.")
    s.add_argument("--dir", default=".tsegossip/demo", help="work dir for the lab and cdktf output (default .tsegossip/demo)")
    s.add_argument("--servers", type=_servers_arg, default=3, metavar="N|tse",
                   help="number of self-managed servers (default 3), or `tse`: the 3 servers of a local TSE "
                        "instance (API stand-in with TC3 signatures checked, the console step answered by the "
                        "demo acting as the operator)")
    s.add_argument("--clients", type=int, default=6)
    s.add_argument("--groups", type=int, default=2)
    s.add_argument("--batch-size", type=int, default=1, help="client batch size (default 1)")
    s.add_argument("--keep", action="store_true", help="leave the lab running at the end")
    s.add_argument("--plain", action="store_true", help="one line per event even on a terminal (see deploy --plain)")
    s.add_argument("--hosts", action="store_true",
                   help="run on a multi-host fleet instead (root): every agent on a host of its own (a network "
                        "namespace with its own address, filesystem and sshd), configs delivered over SSH")
    s.set_defaults(func=cmd_demo)


def _servers_arg(text: str) -> int | str:
    if text == "tse":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of servers or `tse`") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: at least 1 server")
    return n


class _Tee:
    """stdout that also remembers what went through it (the demo's operator reads it)."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def getvalue(self) -> str:
        return "".join(self.parts)


def cmd_deploy(args: argparse.Namespace) -> int:
    from .. import deploy, planner, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    rollout = spec.load(args.spec)
    if rollout.rotates:
        return _deploy_rotation(args, rollout)
    if args.rollback:
        raise UserError("--rollback is for a key rotation (a spec with rotate_to_env); a phase rollout goes back with "
                        "a spec whose target is the lower phase")
    key = _key(rollout)
    plan = planner.plan(rollout)
    if not plan.steps:
        print(f"nothing to do: every agent is already {rollout.target}")
        return 0
    stacks = args.stack
    if not stacks:
        stacks = _live_start(plan)
        if stacks == []:
            return 0
    if args.interactive:
        os.environ["TSEGOSSIP_TSE_INTERACTIVE"] = "1"   # read by the provider (tse_servers.INTERACTIVE_ENV)
    # a DeployError is a UserError: main prints it and exits 1
    with live.output(sys.stdout, plain=args.plain or args.interactive) as out:  # the TSE prompt needs the tty
        deploy.deploy_steps(plan, Path(args.spec), key, Path(args.workdir).resolve(), stacks,
                            check_after=not args.no_check, out=out)
    return 0


def _deploy_rotation(args: argparse.Namespace, rollout) -> int:
    """A key rotation's stages with cdktf deploy; both keys needed (the old one for remove and the gates)."""
    from .. import deploy

    plan = _rotation_plan(rollout)
    with live.output(sys.stdout, plain=args.plain or args.interactive) as out:
        deploy.deploy_rotation(plan, Path(args.spec), Path(args.workdir).resolve(), args.stack, out=out,
                               rollback=args.rollback)
    return 0


def _rotation_plan(rollout):
    """A rotation's plan with both keys from the environment (the old one for remove and the gates)."""
    from .. import rotation

    old = _key(rollout)
    current = KeyShown(rollout.key_env, old.fingerprint, old.redacted, "environment")
    try:
        _, new = rotation_key_for_plan(rollout.rotate_to_env, rollout.rotate_to_fingerprint, current, required=True)
    except InvalidKey as err:
        raise UserError(f"rotate_to_env: {err}; nothing was deployed") from None
    return rotation.plan_rotation(rollout, current, new)


def _key(rollout) -> GossipKey:
    """The key deploy needs: set, valid, and the one the spec pins (key_fingerprint) if it pins one."""
    try:
        key, _ = key_for_plan(rollout.key_env, rollout.key_fingerprint, required=True)
    except InvalidKey as err:
        raise UserError(f"key_env: {err}; nothing was deployed") from None
    return key


def _live_start(plan) -> list[str] | None:
    """The stacks still to deploy, from the live cluster: None (all, from the first) unless every listed
    node runs the phases some step leaves; [] when that is the last step (then says so).

    The spec's phases are today's as the operator wrote them; after a finished (or half finished)
    rollout they are history, and stack 1's gate would refuse the servers it finds enforced. The
    servers' API must answer at all: a closed `servers.http_addr` fails here, at once, naming it.
    """
    from .. import observe, repair
    from ..check import access_of

    rollout = plan.rollout
    try:
        observe.members(rollout.servers.http_addr, access_of(rollout))
    except observe.ObserveError as err:
        raise UserError(f"servers.http_addr: {rollout.servers.http_addr}: the servers' API does not answer "
                        f"({err}); nothing was deployed. Check the address, or that the servers are up") from None
    found = repair.find(plan)
    if found.matching < found.listed or found.at == repair.TODAY:
        return None
    done = [s.stack for s in plan.steps if s.index <= plan.step(found.at).index]
    rest = [s.stack for s in plan.steps if s.stack not in done]
    if not rest:
        print(f"nothing to do: every step is already done (the live cluster is where {found.at} leaves it: "
              f"{found.matching}/{found.listed} listed nodes in their phases); `tsegossip check` shows it")
        return []
    print(f"resuming: the live cluster is where {found.at} leaves it ({found.matching}/{found.listed} listed "
          f"nodes); {', '.join(done)} already done, deploying {', '.join(rest)}", flush=True)
    return rest


def cmd_repair(args: argparse.Namespace) -> int:
    from .. import planner, repair, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    rollout = spec.load(args.spec)
    if args.keyring:
        from .. import deploy

        if rollout.rotates:  # a rotation's stragglers: back through the keyring API (rotation.rejoin_calls)
            deploy.rejoin_keyring(_rotation_plan(rollout), Path(args.spec), Path(args.workdir).resolve())
            return 0
        deploy.repair_keyring(rollout, Path(args.spec), _key(rollout), Path(args.workdir).resolve())
        return 0
    if rollout.rotates:
        raise UserError("repair of a rotation spec (rotate_to_env set) is `tsegossip repair SPEC --keyring`: its "
                        "stragglers are brought back through the keyring API; nothing was changed")
    plan = planner.plan(rollout)
    key = _key(rollout)
    repair.run(plan, Path(args.spec), key, Path(args.workdir).resolve(), args.after, args.dry_run,
               timeout=args.timeout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import check, deploy, lab, planner, report, spec  # on use: keeps `lab restart` light (see tsegossip.cli)

    workdir = Path(args.dir).resolve()
    if workdir.exists():
        lab.down(workdir / "lab", quiet=True)  # a demo left running by --keep
        if (workdir / "fleet" / "fleet.json").exists():
            from ..lab import fleet as lab_fleet

            lab_fleet.down(workdir / "fleet")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    key_env = "TSEGOSSIP_KEY"
    if not os.environ.get(key_env):
        os.environ[key_env] = GossipKey.generate().reveal()  # lives only in this process and its children
    key = GossipKey.from_env(key_env)
    t0 = time.monotonic()
    tse_mode = args.servers == "tse"
    if tse_mode and args.hosts:
        raise UserError("--servers tse runs on the local lab; --hosts is for self-managed servers")
    if tse_mode:
        args.servers = 3
    where = "fleet of hosts" if args.hosts else ("lab with TSE servers" if tse_mode else "lab")
    print(f"== demo: {where} of {args.servers} servers + {args.clients} clients in {args.groups} groups, "
          f"key {key.redacted} sha256:{key.fingerprint}", flush=True)
    spec_path = workdir / "spec.json"
    if tse_mode:
        return _demo_tse(args, workdir, spec_path, key, key_env, t0)
    if args.hosts:
        from ..lab import fleet as lab_fleet

        fleet = _demo_fleet(args, workdir, spec_path, key_env)
        stop = lambda: lab_fleet.down(fleet.workdir)  # noqa: E731
    else:
        cluster = lab.up(workdir / "lab", servers=args.servers, clients=args.clients, groups=args.groups)
        stop = lambda: lab.down(cluster, quiet=True)  # noqa: E731
        lab.write_spec(cluster, spec_path, key_env=key_env, batch_size=args.batch_size)
    try:
        rollout = spec.load(spec_path)
        plan = planner.plan(rollout)
        print(report.as_text(plan, key), flush=True)
        print("== today:", flush=True)
        verdict = check.run_check(rollout, key)
        print(deploy._indent(check.as_table(verdict)), flush=True)
        with live.output(sys.stdout, plain=args.plain) as out:
            deploy.deploy_steps(plan, spec_path, key, workdir, out=out)
        print(f"== demo done in {time.monotonic() - t0:.0f}s: every agent {plan.final.servers}, every member alive",
              flush=True)
    finally:
        if not args.keep:
            stop()
            print(f"== {where} stopped", flush=True)
    return 0


def _demo_tse(args: argparse.Namespace, workdir: Path, spec_path: Path, key: GossipKey, key_env: str,
              t0: float) -> int:
    """Scenario 2 on a TSE instance's servers: the stand-in answers the SDK, the demo saves the console."""
    import sys

    from .. import deploy, lab, planner, report, spec
    from ..lab import tse_lab
    from ..lab.tse_standin import TEST_SECRET_ID, TEST_SECRET_KEY, TSEStandIn

    cluster = tse_lab.up(workdir / "lab", servers_phase="plaintext", servers=3, clients=args.clients,
                         groups=args.groups)
    try:
        with TSEStandIn(tse_lab.standin_dir(cluster)) as standin:
            # Only this process and its children (cdktf, the provider) get the stand-in's test pair.
            os.environ.setdefault("TENCENTCLOUD_SECRET_ID", TEST_SECRET_ID)
            os.environ.setdefault("TENCENTCLOUD_SECRET_KEY", TEST_SECRET_KEY)
            os.environ[tse_lab.ENDPOINT_ENV] = standin.endpoint
            print(f"== TSE stand-in for instance {tse_lab.INSTANCE_ID} ({tse_lab.REGION}) at {standin.endpoint} "
                  f"({tse_lab.ENDPOINT_ENV}); its servers are the lab's 3 Consul servers. The demo plays the operator: "
                  "each time the server step shows what to save, it saves it through the stand-in's console "
                  "(`tsegossip lab tse save`)", flush=True)
            tse_lab.write_spec(cluster, spec_path, "plaintext", key_env=key_env, batch_size=args.batch_size)
            rollout = spec.load(spec_path)
            plan = planner.plan(rollout)
            print(report.as_text(plan, key), flush=True)
            shown = contextlib.ExitStack()
            out = _Tee(shown.enter_context(live.output(sys.stdout, plain=args.plain)))
            operator = tse_lab.Operator(standin.workdir, key, [s.after.servers for s in plan.steps
                                                               if s.after.servers != s.before.servers],
                                        watch=out.getvalue, progress=lambda line: print(f"   {line}", flush=True))
            operator.start()
            try:
                with shown:
                    deploy.deploy_steps(plan, spec_path, key, workdir, out=out)
            finally:
                operator.stop()
            if operator.error:
                raise UserError(f"the demo's console step failed: {operator.error}")
            print(f"== demo done in {time.monotonic() - t0:.0f}s: every agent {plan.final.servers}, every member "
                  f"alive; the console was saved {len(operator.saved)} time(s)", flush=True)
    finally:
        if not args.keep:
            lab.down(cluster, quiet=True)
            print("== lab with TSE servers stopped", flush=True)
    return 0


def _demo_fleet(args: argparse.Namespace, workdir: Path, spec_path: Path, key_env: str):
    """The fleet, its spec (ssh delivery), and the runner's identity in the variable the spec names."""
    import json

    from ..lab import fleet as F

    names = ["web", "api"] + [f"group-{i}" for i in range(3, args.groups + 1)]
    groups = {g: args.clients // args.groups + (1 if i < args.clients % args.groups else 0)
              for i, g in enumerate(names[:args.groups])}
    fleet = F.up(workdir / "fleet", servers=args.servers, groups={g: n for g, n in groups.items() if n},
                 progress=lambda line: print(f"   {line}", flush=True))
    os.environ[F.IDENTITY_ENV] = str(fleet.identity)
    spec_path.write_text(json.dumps(F.spec(fleet, name="demo", key_env=key_env, batch_size=args.batch_size),
                                    indent=2))
    return fleet
