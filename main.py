#!/usr/bin/env python
"""CDKTF app: one Terraform stack per planned step of the rollout in $TSEGOSSIP_SPEC.

Wiring only. Run with `python main.py` or `cdktf synth` (cdktf.json points here).
The gossip key is read from the environment variable the spec names, and only its
fingerprint reaches the synthesized configuration.
"""

from __future__ import annotations

import json
import os
import sys

from tsegossip import planner, repairplan, spec
from tsegossip.errors import SpecError, UserError, one_line
from tsegossip.keys import GossipKey, redact_text, remember_environ

DEFAULT_SPEC = "examples/tse-smooth.yaml"


def main() -> int:
    path = os.environ.get("TSEGOSSIP_SPEC", DEFAULT_SPEC)
    try:
        rollout = spec.load(path)
        key = GossipKey.from_env(rollout.key_env)
        plan = planner.plan(rollout)
    except SpecError as err:
        where = "" if err.source else "TSEGOSSIP_SPEC: "  # the file could not be read at all
        _print_error([f"error: {where}{line}" for line in err.render().splitlines()])
        return 1
    except UserError as err:  # PlanError, InvalidKey, ...
        _print_error([f"error: {one_line(path)}: {line}" for line in err.lines()])
        return 1

    repair = None
    request = os.environ.get("TSEGOSSIP_REPAIR")  # written by `tsegossip repair`: the stragglers seen live
    if request:
        try:
            with open(request, encoding="utf-8") as fh:
                repair = repairplan.from_request(plan, json.load(fh), f"TSEGOSSIP_REPAIR ({request})")
        except (OSError, ValueError) as err:
            _print_error([f"error: TSEGOSSIP_REPAIR: cannot read {request}: {one_line(str(err))}"])
            return 1
        except UserError as err:
            _print_error([f"error: {line}" for line in err.lines()])
            return 1

    from tsegossip.constructs import PhaseStack, PhaseStackProps, RepairStack, RepairStackProps
    from tsegossip.constructs._cdk import App

    app = App()
    previous = None
    state_dir = os.environ.get("TSEGOSSIP_STATE_DIR") or None  # default: terraform.<stack>.tfstate here
    for step in plan.steps:
        previous = PhaseStack(app, step.stack, PhaseStackProps.for_step(plan, step, key, previous, state_dir))
    if repair is not None:  # a stack of its own, beside the steps: their stacks and states stay as they are
        RepairStack(app, repair.stack, RepairStackProps.of(rollout, repair, key, state_dir))
    app.synth()
    return 0


def _print_error(lines: list[str]) -> None:
    remember_environ()  # the one redaction rule: no key in any encoding on any line we print
    print("\n".join(redact_text(line) for line in lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
