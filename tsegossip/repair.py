"""`tsegossip repair`: find the stragglers live and move just those, through a stack of their own.

Where the cluster is: the planned state (today's, or after one of the plan's stacks) that the most
listed nodes run now, or the one `--after` names. A straggler is a listed node whose own API answers
with another phase. The repair itself is planned by repairplan (pure) and carried out by the same
provider, gates and delivery as every step: `cdktf deploy <name>-repair-<id>`, with the observation
handed to the cdktf app in a file (TSEGOSSIP_REPAIR) so synth plans it with the same code.

Side effects: the request file and cdktf output are written on the runner, under the work dir; the
configs reach each straggler's host by the role's delivery (the provider does that).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import check, deploy, observe
from .errors import UserError
from .expectations import listed_nodes
from .keys import GossipKey
from .phases import Phase
from .planner import Plan
from .repairplan import TODAY, Repair, repair_for, request_doc, state_at


class RepairError(UserError, RuntimeError):
    """Nothing to repair the way asked, or the repair failed."""


@dataclass(frozen=True)
class Found:
    at: str                          # the plan state the cluster is in (a stack id, or today)
    matching: int                    # listed nodes that run that state's phases
    listed: int
    stragglers: dict[str, Phase]     # node -> the phase its own API shows
    down: dict[str, str]             # node -> what was seen (its API silent): not repairable now


def candidates(plan: Plan) -> list[str]:
    return [TODAY, *(s.stack for s in plan.steps)]


def find(plan: Plan, after: str | None = None, timeout: float = observe.DEFAULT_TIMEOUT) -> Found:
    """Read every listed node's own API once and judge it against the chosen (or best-matching) state."""
    rollout = plan.rollout
    if after is not None and after not in candidates(plan):
        raise RepairError(f"--after {after!r} is not a stack of this plan; allowed: {', '.join(candidates(plan))}")
    nodes = listed_nodes(rollout, plan.initial)
    view = observe.observe(rollout.servers.http_addr, {n: e.http_addr for n, e in nodes.items()},
                           check.access_of(rollout), timeout, with_keyring=False)
    labels = view.phases()

    def expected(at: str) -> dict[str, str]:
        return {n: e.phase for n, e in listed_nodes(rollout, state_at(plan, at)).items()}

    def score(at: str) -> int:
        want = expected(at)
        return sum(labels.get(n) == p for n, p in want.items())

    # Ties go to the later state: a cluster half way through reads as the step it was going to.
    at = after if after is not None else max(reversed(candidates(plan)), key=score)
    want = expected(at)
    stragglers = check.stragglers_of(view, want)
    down: dict[str, str] = {}
    for name, phase in want.items():
        # neither in its phase nor a straggler: its API did not show a phase (not-joined has nothing to repair)
        if labels.get(name) != phase and name not in stragglers and phase in Phase.names():
            node = view.nodes.get(name)
            down[name] = (f"member {view.member_status(name)}, "
                          f"{node.describe() if node else 'not read'}; expected {phase}")
    return Found(at, score(at), len(want), stragglers, down)


def describe(found: Found, repair: Repair | None) -> str:
    lines = [f"repair: the cluster is at {found.at} ({found.matching}/{found.listed} listed nodes run its phases)"]
    for name, why in sorted(found.down.items()):
        lines.append(f"  {name}: not answering ({why}); repair it once its agent is back")
    if repair is None:
        lines.append("  no stragglers: every listed node that answers runs its role's phase")
        return "\n".join(lines)
    lines.append(f"  stack {repair.stack}: {len(repair.stragglers)} straggler(s)")
    for m in repair.moves:
        lines.append(f"    {m.role}: {', '.join(m.nodes)}: {m.before} -> {m.after}")
    for note in repair.notes:
        lines.append(f"    {note}")
    lines.append(f"  proof: {repair.proof.summary()}")
    return "\n".join(lines)


def run(plan: Plan, spec_path: Path, key: GossipKey, workdir: Path, after: str | None = None,
        dry_run: bool = False, out: TextIO = sys.stdout, timeout: float = observe.DEFAULT_TIMEOUT,
        settle_seconds: float = 30.0) -> Repair | None:
    """Find, plan, print; unless dry_run, deploy the repair stack and check the cluster after it."""
    found = find(plan, after, timeout)
    repair = repair_for(plan, found.at, found.stragglers) if found.stragglers else None
    print(describe(found, repair), file=out, flush=True)
    if repair is None or dry_run:
        return repair
    workdir.mkdir(parents=True, exist_ok=True)
    request = workdir / f"{repair.stack}.request.json"
    request.write_text(json.dumps(request_doc(found.at, found.stragglers), indent=2) + "\n", encoding="utf-8")
    print(f"== cdktf deploy {repair.stack} (request {request})", file=out, flush=True)
    proc = deploy.run_cdktf("deploy", [repair.stack], spec_path, workdir, out,
                            extra_env={"TSEGOSSIP_REPAIR": str(request)})
    if proc.returncode != 0:
        raise RepairError(f"cdktf deploy {repair.stack} failed (exit {proc.returncode}); nodes not yet restarted "
                          f"are untouched; rerun `tsegossip repair` to resume. Last output:\n"
                          f"{deploy._tail(proc.stdout)}")
    verdict = deploy.settled_state_check(plan, key, repair.state, settle_seconds)
    print(deploy._indent(check.as_table(verdict)), file=out, flush=True)
    if not verdict.ok:
        raise RepairError(f"after {repair.stack} the cluster is not where the repair says: "
                          + "; ".join(verdict.all_problems()))
    return repair
