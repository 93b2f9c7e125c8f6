"""The cdktf app: one Terraform stack per planned step of a rollout spec, in a new App or one of yours.

`main()` is what main.py (this checkout's, or one `tsegossip init` wrote) runs under `cdktf synth`:
the spec from $TSEGOSSIP_SPEC, the key from the variable the spec names (only its fingerprint
reaches the synthesized configuration; with no key there, the spec's pinned key_fingerprint or "unknown"), a repair stack when `tsegossip repair` asks for one.
`add_rollout(app, spec_path)` adds the same stacks to an App that already holds other stacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from . import planner, repairplan, spec, statelocation
from .errors import SpecError, UserError, one_line
from .keys import UNKNOWN_FINGERPRINT, key_for_plan, redact_text, remember_environ, rotation_key_for_plan


class RepairRequestError(UserError):
    """$TSEGOSSIP_REPAIR could not be read or does not fit the plan (its message names it)."""


def add_rollout(app: Any, spec_path: str, environ: Mapping[str, str] | None = None) -> list[Any]:
    """The rollout's stacks, added to `app` (a cdktf App); raises SpecError / UserError on bad input."""
    from .constructs import PhaseStack, PhaseStackProps, RepairStack, RepairStackProps

    env = os.environ if environ is None else environ
    rollout = spec.load(spec_path)
    if rollout.rotates:
        return _add_rotation(app, rollout, dict(env))
    # No key in the environment is fine here (a pull request's plan needs no secret): the stacks then carry
    # the spec's pinned fingerprint, or "unknown", and the provider refuses to apply them without the key.
    _, key = key_for_plan(rollout.key_env, rollout.key_fingerprint, dict(env))
    plan = planner.plan(rollout)
    repair = None
    request = env.get("TSEGOSSIP_REPAIR")  # written by `tsegossip repair`: the stragglers seen live
    if request:
        try:
            with open(request, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as err:
            raise RepairRequestError(f"TSEGOSSIP_REPAIR: cannot read {request}: {one_line(str(err))}") from None
        try:
            repair = repairplan.from_request(plan, doc, f"TSEGOSSIP_REPAIR ({request})")
        except UserError as err:
            raise RepairRequestError(str(err)) from None
    stacks: list[Any] = []
    previous = None
    state_dir = env.get("TSEGOSSIP_STATE_DIR") or None  # default: terraform.<stack>.tfstate here
    for step in plan.steps:
        previous = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, key, previous, state_dir))
        stacks.append(previous)
    if repair is not None:  # a stack of its own, beside the steps: their stacks and states stay as they are
        stacks.append(RepairStack(app, repair.stack, RepairStackProps.of(rollout, repair, key, state_dir)))
    if env.get("TSEGOSSIP_KEYRING_REPAIR") and key.fingerprint != UNKNOWN_FINGERPRINT:  # `tsegossip repair --keyring`
        from .constructs import KeyringRepairStack

        stacks.append(KeyringRepairStack(app, rollout, key.fingerprint, state_dir))
    return stacks


def _add_rotation(app: Any, rollout: Any, env: dict[str, str]) -> list[Any]:
    """A key rotation's stacks: one per forward stage (install, use, configs, remove), fingerprints only; with no
    keys in the environment the pinned fingerprints or unknown, which the provider refuses to apply."""
    from . import rotation
    from .constructs import RotationStack, RotationStackProps

    _, old = key_for_plan(rollout.key_env, rollout.key_fingerprint, env)
    new = None
    if rollout.rotate_to_env != rollout.key_env:  # the same variable: plan_rotation's refusal names both fields
        _, new = rotation_key_for_plan(rollout.rotate_to_env, rollout.rotate_to_fingerprint, old, env)
    plan = rotation.plan_rotation(rollout, old, new)
    state_dir = env.get("TSEGOSSIP_STATE_DIR") or None
    stacks: list[Any] = []
    previous = None
    for stage in plan.stages:
        previous = RotationStack(app, stage.stack, RotationStackProps(plan=plan, stage=stage, previous=previous,
                                                                      state_dir=state_dir))
        stacks.append(previous)
    # The way back before remove (undo3 configs, undo2 use, undo1 install), deployed only when asked:
    # `tsegossip deploy --rollback`, or cdktf deploy of each by hand; each stage's gate checks where it starts.
    undo = None
    for stage in plan.undo:
        undo = RotationStack(app, stage.stack, RotationStackProps(plan=plan, stage=stage, previous=undo,
                                                                  state_dir=state_dir))
        stacks.append(undo)
    request = env.get(rotation.REJOIN_ENV)  # written by `tsegossip repair --keyring`: the stragglers seen live
    if request:
        from .constructs import KeyringRejoinStack

        try:
            doc = json.loads(request)
            stragglers, old_removed = dict(doc["stragglers"]), bool(doc["old_removed"])
        except (ValueError, KeyError, TypeError) as err:
            raise RepairRequestError(f"{rotation.REJOIN_ENV}: not a rejoin request ({one_line(str(err))}); allowed: "
                                     '{"stragglers": {node: role}, "old_removed": true|false}') from None
        stacks.append(KeyringRejoinStack(app, plan, stragglers, old_removed, state_dir))
    return stacks


def main(default_spec: str = "spec.yaml") -> int:
    path = os.environ.get("TSEGOSSIP_SPEC", default_spec)
    from .constructs._cdk import App

    app = App()
    try:
        stacks = add_rollout(app, path)
    except SpecError as err:
        where = "" if err.source else "TSEGOSSIP_SPEC: "  # the file could not be read at all
        _print_error([f"error: {where}{line}" for line in err.render().splitlines()])
        return 1
    except RepairRequestError as err:
        _print_error([f"error: {line}" for line in err.lines()])
        return 1
    except UserError as err:  # PlanError, InvalidKey, ...
        _print_error([f"error: {one_line(path)}: {line}" for line in err.lines()])
        return 1
    app.synth()
    try:  # a changed state directory meeting an earlier run's cdktf.out (see statelocation)
        for m in statelocation.reconcile(Path(app.outdir), [st.node.id for st in stacks]):
            print(f"note: stack {m.stack}: state now at {m.new} (was {m.old}, which holds nothing)")
    except statelocation.StateMoved as err:
        _print_error([f"error: TSEGOSSIP_STATE_DIR: {err}"])
        return 1
    return 0


def _print_error(lines: list[str]) -> None:
    remember_environ()  # the one redaction rule: no key in any encoding on any line we print
    print("\n".join(redact_text(line) for line in lines), file=sys.stderr)
