"""Run a rollout stack by stack with `cdktf deploy`, checking the live cluster after each.

The top of the stack: it drives the cdktf CLI (which synthesizes main.py and runs
Terraform with our provider) and reads the cluster with the same checker as
`tsegossip check`. Progress lines the provider writes per batch are followed from its
progress log and echoed as they come.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from . import check
from .errors import UserError
from .keys import GossipKey
from .planner import Plan, State, Step
from .waiting import wait_until


def _app_root() -> Path:
    """The cdktf app `cdktf deploy` runs in: this checkout (its cdktf.json and main.py) when the package
    runs from one; installed, the working directory (the user's own app, `tsegossip init`'s)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "cdktf.json").is_file() and (checkout / "main.py").is_file():
        return checkout
    return Path.cwd()


ROOT = _app_root()


class DeployError(UserError, RuntimeError):
    """A stack failed to deploy or the cluster did not end where the step said."""


@dataclass(frozen=True)
class StepResult:
    stack: str
    seconds: float
    verdict_ok: bool


def cdktf_binary(root: Path = ROOT) -> str:
    """The app's own cdktf-cli (root/node_modules/.bin/cdktf: the checkout's, or the user's npm install),
    else `cdktf` on PATH."""
    local = root / "node_modules" / ".bin" / "cdktf"
    if local.exists():
        return str(local)
    on_path = shutil.which("cdktf")
    if on_path:
        return on_path
    raise DeployError(f"cdktf-cli is not installed: not at {local} and no `cdktf` on PATH; in a checkout run "
                      "./bootstrap, in your own app `npm install cdktf-cli@0.21.0` there")


def deploy_env(spec_path: str | Path, progress_log: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["TSEGOSSIP_SPEC"] = str(Path(spec_path).resolve())
    env["TSEGOSSIP_PROGRESS_LOG"] = str(progress_log)
    env["TSEGOSSIP_PROGRESS_TTY"] = "0"  # we echo the log ourselves
    # State beside the progress log, per work dir: two rollouts with one name never share it.
    env.setdefault("TSEGOSSIP_STATE_DIR", str(progress_log.parent / "state"))
    env.setdefault("CHECKPOINT_DISABLE", "1")
    # Never a plugin cache shared between checkouts: cdktf-cli would set ~/.terraform.d/plugin-cache,
    # where Terraform keeps a symlink to the first checkout's provider (see .tsegossip.env).
    env["CDKTF_DISABLE_PLUGIN_CACHE_ENV"] = "1"
    env.pop("TF_PLUGIN_CACHE_DIR", None)
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    return env


def cdktf_command(verb: str, stacks: list[str], outdir: Path, root: Path = ROOT) -> list[str]:
    cmd = [cdktf_binary(root), verb, *stacks, "--output", str(outdir), "--skip-provider-lock", "--no-color"]
    if verb in ("deploy", "destroy"):
        cmd += ["--auto-approve", "--ignore-missing-stack-dependencies"]
    return cmd


class _Follower(threading.Thread):
    """Echo lines appended to a file until stopped."""

    def __init__(self, path: Path, out: TextIO, prefix: str) -> None:
        super().__init__(daemon=True)
        self.path, self.out, self.prefix = path, out, prefix
        self.offset = path.stat().st_size if path.exists() else 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            self._drain()
            if self.stopping.wait(0.2):
                self._drain()
                return

    def _drain(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
                self.offset = fh.tell()
        except FileNotFoundError:
            return
        for line in chunk.splitlines():
            # The log lines start with a timestamp; keep the message.
            msg = line.split(" ", 1)[1] if line[:4].isdigit() and " " in line else line
            print(f"{self.prefix}{msg}", file=self.out, flush=True)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def run_cdktf(verb: str, stacks: list[str], spec_path: Path, workdir: Path, out: TextIO,
              root: Path = ROOT, timeout: float = 1800,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "progress.log"
    env = {**deploy_env(spec_path, log), **(extra_env or {})}
    follower = _Follower(log, out, "    progress: ")
    follower.start()
    try:
        proc = subprocess.run(
            cdktf_command(verb, stacks, workdir / "cdktf.out", root),
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )
    finally:
        follower.stop()
    (workdir / f"cdktf-{verb}.log").open("a", encoding="utf-8").write(proc.stdout)
    return proc


def _tail(text: str, n: int = 25) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return "\n".join("    " + l for l in lines[-n:])


def settled_check(plan: Plan, key: GossipKey, step: Step, settle_seconds: float, poll: float = 1.0):
    """Check the cluster after a step until it matches, for up to settle_seconds.

    The step's own after-gate already passed, so a mismatch here is usually a read that
    lost a race (a keyring query waiting on a serf round trip, a member still marked
    leaving); one more look settles it. A real problem is still there when time is up.
    """
    return settled_state_check(plan, key, step.after, settle_seconds, poll)


def settled_state_check(plan: Plan, key: GossipKey, state: State, settle_seconds: float, poll: float = 1.0):
    """settled_check against a planned state (a step's `after`, or the state a repair restores)."""
    def look():
        verdict = check.run_check(plan.rollout, key, state)
        return verdict.ok, verdict

    return wait_until(look, timeout=settle_seconds, interval=poll).value


def deploy_steps(plan: Plan, spec_path: Path, key: GossipKey, workdir: Path, stacks: list[str] | None = None,
                 out: TextIO = sys.stdout, check_after: bool = True,
                 on_step: Callable[[Step], None] | None = None, settle_seconds: float = 30.0) -> list[StepResult]:
    """Deploy `stacks` (default: all, in plan order), one `cdktf deploy` each; stop at the first failure."""
    wanted = [plan.step(s) for s in stacks] if stacks else list(plan.steps)
    wanted.sort(key=lambda s: s.index)
    results: list[StepResult] = []
    for n, step in enumerate(wanted, 1):
        print(f"== step {n}/{len(wanted)}: cdktf deploy {step.stack} "
              f"({', '.join(f'{m.role} -> {m.after}' for m in step.moves)})", file=out, flush=True)
        t0 = time.monotonic()
        proc = run_cdktf("deploy", [step.stack], spec_path, workdir, out)
        took = time.monotonic() - t0
        if proc.returncode != 0:
            raise DeployError(f"cdktf deploy {step.stack} failed (exit {proc.returncode}) after {took:.0f}s; "
                              f"nodes not yet restarted are untouched; rerun to resume. Last output:\n{_tail(proc.stdout)}")
        print(f"   deployed {step.stack} in {took:.1f}s", file=out, flush=True)
        ok = True
        if check_after:
            verdict = settled_check(plan, key, step, settle_seconds)
            print(_indent(check.as_table(verdict)), file=out, flush=True)
            ok = verdict.ok
            if not ok:
                raise DeployError(f"after {step.stack} the cluster is not where the plan says: "
                                  + "; ".join(verdict.all_problems()))
        results.append(StepResult(step.stack, took, ok))
        if on_step:
            on_step(step)
    return results


def _indent(text: str) -> str:
    return "\n".join("   " + l for l in text.splitlines())


def rotation_done(plan, timeout: float = 3.0) -> int:
    """How many forward stages of a rotation the live keyring shows done (0-4). configs leaves no trace in the
    keyring: once `use` is done it counts as not yet done (delivering the fragments again is harmless)."""
    from . import observe
    from .rotation import KeyName

    r = plan.rollout
    ring = observe.keyring(r.servers.http_addr, check.access_of(r), timeout=timeout)
    if ring.error:
        raise DeployError(f"servers.http_addr: {r.servers.http_addr}: cannot list the keyring ({ring.error}); "
                          "nothing was deployed")
    old, new = plan.fingerprint(KeyName.OLD), plan.fingerprint(KeyName.NEW)
    if ring.primary_everywhere(new) and ring.held_nowhere(old):
        return 4
    if ring.primary_everywhere(new):
        return 2
    if ring.holds_everywhere(new) and ring.primary_everywhere(old):
        return 1
    return 0


def deploy_rotation(plan, spec_path: Path, workdir: Path, stacks: list[str] | None = None,
                    out: TextIO = sys.stdout, rollback: bool = False) -> list[StepResult]:
    """Deploy a rotation's stages (default: those the live keyring does not show done), one `cdktf deploy`
    each (the keyring each stage proved is in its progress lines); stop at the first failure. rollback: the
    undo stages from where the live keyring is, back to the old key alone (refused once remove is done)."""
    if stacks:
        wanted = [plan.stage(s) for s in stacks]
    elif rollback:
        done = rotation_done(plan)
        if done == 4:
            raise DeployError("the rotation is done: the old key is gone from every keyring, so there is no way back "
                              "but a rotation of its own (to a new key); nothing was deployed")
        wanted = list(plan.undo) if done >= 2 else [s for s in plan.undo if s.index == 1] if done else []
        if not wanted:
            print("nothing to roll back: the live keyring shows no rotation stage done", file=out, flush=True)
            return []
    else:
        done = rotation_done(plan)
        wanted = list(plan.stages[done:])
        if done and wanted:
            print(f"resuming: the live keyring shows {', '.join(s.stack for s in plan.stages[:done])} done",
                  file=out, flush=True)
        if not wanted:
            print("nothing to do: every rotation stage is already done (the new key is every member's primary "
                  "and the old one is gone)", file=out, flush=True)
            return []
    results = []
    for n, stage in enumerate(wanted, 1):
        print(f"== step {n}/{len(wanted)}: cdktf deploy {stage.stack} ({stage.does(plan.name)})", file=out, flush=True)
        t0 = time.monotonic()
        proc = run_cdktf("deploy", [stage.stack], spec_path, workdir, out)
        took = time.monotonic() - t0
        if proc.returncode != 0:
            raise DeployError(f"cdktf deploy {stage.stack} failed (exit {proc.returncode}) after {took:.0f}s; the "
                              f"keyring is where the stage stopped (each change is safe to repeat); rerun to resume. "
                              f"Last output:\n{_tail(proc.stdout)}")
        # the stage's keyring resource printed the keyring it proved (its last progress line above)
        print(f"   deployed {stage.stack} in {took:.1f}s", file=out, flush=True)
        results.append(StepResult(stage.stack, took, True))
    return results


def repair_keyring(rollout, spec_path: Path, key: GossipKey, workdir: Path, out: TextIO = sys.stdout) -> bool:
    """Put a stale keyring right through the keyring API (the key in key_env installed everywhere, then made
    every member's primary): one stack, `<name>-keyring-<fp>`, deployed with cdktf. False when nothing was
    needed. Members whose serf/local.keyring holds an older set keep ignoring `encrypt` until this runs."""
    from . import observe
    from .rotation import keyring_repair_stack_id

    access = check.access_of(rollout)
    ring = observe.keyring(rollout.servers.http_addr, access)
    if ring.error:
        raise DeployError(f"servers.http_addr: {rollout.servers.http_addr}: cannot list the keyring ({ring.error}); "
                          "nothing was changed")
    fp = key.fingerprint
    if ring.holds_everywhere(fp) and ring.primary_everywhere(fp):
        print(f"nothing to repair: key {fp} is installed on every member and every member's primary "
              f"({ring.describe()})", file=out, flush=True)
        return False
    stack = keyring_repair_stack_id(rollout, fp)
    # The stack records a change, not a place the cluster must stay in: a keyring gone stale again later
    # needs the change again, so an earlier run's state of it goes.
    (workdir / "state" / f"{stack}.tfstate").unlink(missing_ok=True)
    print(f"== keyring repair: cdktf deploy {stack} (install key {fp}, then make it every member's primary, "
          f"through {rollout.servers.http_addr}; keyring now: {ring.describe()})", file=out, flush=True)
    t0 = time.monotonic()
    proc = run_cdktf("deploy", [stack], spec_path, workdir, out, extra_env={"TSEGOSSIP_KEYRING_REPAIR": "1"})
    if proc.returncode != 0:
        raise DeployError(f"cdktf deploy {stack} failed (exit {proc.returncode}) after {time.monotonic() - t0:.0f}s; "
                          f"each keyring change is safe to repeat: rerun. Last output:\n{_tail(proc.stdout)}")
    after = observe.keyring(rollout.servers.http_addr, access)
    print(f"   repaired in {time.monotonic() - t0:.1f}s: {after.describe()}", file=out, flush=True)
    return True


def rejoin_keyring(plan, spec_path: Path, workdir: Path, out: TextIO = sys.stdout, timeout: float = 3.0) -> bool:
    """A rotation's stragglers back through the keyring API (rotation.rejoin_calls): listed nodes whose agent
    runs (its own API answers) but is no alive member, after the new key became primary. One stack,
    `<name>-keyring-rejoin`, deployed with cdktf. False when nothing was needed."""
    import json

    from . import observe
    from .expectations import addresses_by_node, roles_by_node
    from .rotation import REJOIN_ENV, KeyName, keyring_rejoin_stack_id, rejoin_calls

    r = plan.rollout
    access = check.access_of(r)
    where = f"servers.http_addr: {r.servers.http_addr}"
    ring = observe.keyring(r.servers.http_addr, access, timeout=timeout)
    if ring.error:
        raise DeployError(f"{where}: cannot list the keyring ({ring.error}); nothing was changed")
    try:
        statuses = observe.members(r.servers.http_addr, access, timeout=timeout)
    except observe.ObserveError as err:
        raise DeployError(f"{where}: cannot list the members ({err}); nothing was changed") from None
    addresses, roles = addresses_by_node(r), roles_by_node(r)
    down = {n: statuses.get(n, "absent") for n in roles if statuses.get(n, "absent") != "alive"}
    if not down:
        print(f"nothing to rejoin: every listed node is an alive member (keyring: {ring.describe()})", file=out,
              flush=True)
        return False
    old, new = plan.fingerprint(KeyName.OLD), plan.fingerprint(KeyName.NEW)
    if not (ring.lan and ring.lan.primary.get(new, 0)):
        print(f"nothing to rejoin yet: {', '.join(sorted(down))} not alive, but no member uses the new key {new} as "
              "primary, so a straggler that runs again reads the others: `tsegossip deploy SPEC` resumes the "
              "rotation and its install reaches it", file=out, flush=True)
        return False
    views = observe.node_settings_many({n: addresses[n] for n in down}, access, timeout=timeout)
    running = {n: roles[n] for n in sorted(down) if views[n].reachable}
    silent = sorted(set(down) - set(running))
    if not running:
        raise DeployError("; ".join(f"{n}: member {down[n]}, its API at {addresses[n]} does not answer" for n in silent)
                          + ": start the agent first (its keyring file keeps the old key), then run repair again; "
                            "nothing was changed")
    old_removed = ring.held_nowhere(old)
    calls = rejoin_calls(old_removed)
    stack = keyring_rejoin_stack_id(r)
    (workdir / "state" / f"{stack}.tfstate").unlink(missing_ok=True)  # a change, not a place to stay in
    print(f"== keyring rejoin: cdktf deploy {stack} for {', '.join(f'{n} ({s})' for n, s in running.items())} "
          f"(running, member {', '.join(sorted({down[n] for n in running}))}; keyring now: {ring.describe()})",
          file=out, flush=True)
    for i, c in enumerate(calls, 1):
        print(f"   {i}. {c.operation} {plan.name(c.key)}: {c.why}", file=out, flush=True)
    print(f"   then {', '.join(running)}' fragments delivered with {plan.name(KeyName.NEW)}, nothing restarted. The "
          f"old key {old} is every member's primary for the while of the rejoin", file=out, flush=True)
    if silent:
        print(f"   left down (their API does not answer): {', '.join(silent)}; run repair again once they run",
              file=out, flush=True)
    t0 = time.monotonic()
    request = json.dumps({"stragglers": running, "old_removed": old_removed})
    proc = run_cdktf("deploy", [stack], spec_path, workdir, out, extra_env={REJOIN_ENV: request})
    if proc.returncode != 0:
        raise DeployError(f"cdktf deploy {stack} failed (exit {proc.returncode}) after {time.monotonic() - t0:.0f}s; "
                          "every member that is up held both keys at each call, so they still read each other; "
                          f"rerun `tsegossip repair SPEC --keyring`. Last output:\n{_tail(proc.stdout)}")
    after = observe.keyring(r.servers.http_addr, access, timeout=timeout)
    print(f"   rejoined in {time.monotonic() - t0:.1f}s: {after.describe()}", file=out, flush=True)
    return True
