"""A key rotation's plan rendered for people (text; markdown, the PR comment) and machines (json).

Beside report.py (the phase plans), sharing its JSON format and version, its table layout and its Mermaid
escaping. Every key is shown by its fingerprint (and redacted form, when it is in the environment), never
in clear: a plan made with no secret in the environment reviews the same, fingerprints pinned or unknown.
"""

from __future__ import annotations

import json
from typing import Any

from .agentconfig import tse_parameters
from .keys import KeyShown
from .planner import initial_state
from .report import _MERMAID_ESCAPES, PLAN_FORMAT, PLAN_FORMAT_VERSION, _markdown_table, markdown_key_line
from .rotation import KeyName, Keyring, RotationPlan, RotationStage, StageKind
from .spec import ServerType


def deploy_command(stage: RotationStage) -> str:
    """The command that deploys one stage by hand. As for phase steps (report.deploy_command): each stage's own
    before-gate checks the live keyring is where the previous stage leaves it, so a stage deployed alone is told
    the earlier ones are not part of this run."""
    extra = " --ignore-missing-stack-dependencies" if stage.index > 1 or stage.undoes else ""
    return f"cdktf deploy {stage.stack} --skip-provider-lock{extra}"


# ---- json -------------------------------------------------------------------------------------------------


def _key_doc(shown: KeyShown) -> dict[str, str]:
    return {"redacted": shown.redacted, "fingerprint": shown.fingerprint, "env": shown.env, "source": shown.source}


def _ref(plan: RotationPlan, which: KeyName) -> dict[str, str]:
    return {"key": which.value, "fingerprint": plan.fingerprint(which)}


def _keyring_doc(plan: RotationPlan, ring: Keyring) -> dict[str, Any]:
    return {"held": [_ref(plan, k) for k in ring.held], "primary": _ref(plan, ring.primary),
            "configured": _ref(plan, ring.configured)}


def stage_dict(plan: RotationPlan, stage: RotationStage) -> dict[str, Any]:
    doc = {
        "stack": stage.stack,
        "index": stage.index,
        "kind": stage.kind.value,
        "undoes": stage.undoes,
        "key": _ref(plan, stage.key),
        "call": stage.call,
        "does": stage.does(plan.name),
        "restarts": stage.restarts,
        "servers_roll": stage.servers_roll,
        "before": _keyring_doc(plan, stage.before),
        "after": _keyring_doc(plan, stage.after),
        "requires": list(stage.requires.conditions(plan.name)),
        "verifies": list(stage.verifies.conditions(plan.name)),
        "during": [str(m) for m in stage.proof.during],
        "safe": stage.proof.safe,
        "splits": [str(c) for c in stage.proof.checks if not c.ok],
        "fresh_start_safe": stage.proof.fresh_start_ok,
        "why": stage.proof.why,
    }
    if not stage.undoes:
        doc["deploy"] = deploy_command(stage)
    return doc


def as_json(plan: RotationPlan) -> str:
    """A `tsegossip-plan` of format version 1, as for a phase plan, with no phase steps (every agent stays in
    its phase) and the rotation's stages under `rotation`."""
    r = plan.rollout
    doc = {
        "format": PLAN_FORMAT,
        "version": PLAN_FORMAT_VERSION,
        "name": r.name,
        "strategy": r.strategy.value,
        "target": r.target.value,
        "key": _key_doc(plan.old),
        "today": initial_state(r).as_dict(),
        "steps": [],
        "warnings": list(plan.warnings),
        "rotation": {
            "phase": plan.phase.value,
            "new_key": _key_doc(plan.new),
            "today": _keyring_doc(plan, plan.initial),
            "stages": [stage_dict(plan, s) for s in plan.stages],
            "undo": [stage_dict(plan, s) for s in plan.undo],
        },
    }
    return json.dumps(doc, indent=2)


# ---- text -------------------------------------------------------------------------------------------------


def _ring(plan: RotationPlan, ring: Keyring) -> str:
    held = ", ".join(plan.name(k) for k in ring.held)
    return f"held [{held}], primary {plan.name(ring.primary)}, fragments {plan.name(ring.configured)}"


def _describe(shown: KeyShown, field: str) -> str:
    if shown.source == "environment":
        return f"{shown.redacted} (sha256:{shown.fingerprint}) from ${shown.env}"
    if shown.source == "pinned":
        return f"not in ${shown.env} here; pinned in the spec as sha256:{shown.fingerprint} (deploy needs it)"
    return f"not in ${shown.env} here; fingerprint unknown (deploy needs it; pin it with {field})"


def as_text(plan: RotationPlan) -> str:
    r = plan.rollout
    lines = [
        f"rollout {r.name}: key rotation, every agent stays {plan.phase}; no stage restarts an agent",
        f"current key: {_describe(plan.old, 'key_fingerprint')}",
        f"new key: {_describe(plan.new, 'rotate_to_fingerprint')}",
        f"today: {_ring(plan, plan.initial)}",
    ]
    lines += [f"WARNING: {w}" for w in plan.warnings]
    lines.append(f"{len(plan.stages)} stage(s):")
    for s in plan.stages:
        lines += ["", f"stage {s.index}/{len(plan.stages)}  stack {s.stack}  ({s.kind})", *_text_stage(plan, s),
                  f"  deploy: {deploy_command(s)}"]
    lines += ["", "rollback before remove (planned; from where the rotation stopped, in this order):"]
    for s in plan.undo:
        lines += ["", f"undo of stage {s.index}  stack {s.stack}  ({s.kind})", *_text_stage(plan, s)]
    return "\n".join(lines)


def _text_stage(plan: RotationPlan, s: RotationStage) -> list[str]:
    verdict = "SAFE" if s.proof.safe else "SPLIT"
    return [
        f"  does: {s.does(plan.name)}",
        f"  keys: {_ring(plan, s.before)} -> {_ring(plan, s.after)}",
        f"  requires: {'; '.join(s.requires.conditions(plan.name))}",
        f"  verifies: {'; '.join(s.verifies.conditions(plan.name))}",
        f"  proof [{verdict}]: {s.proof.summary()}; {s.proof.why}",
    ]


# ---- markdown: the PR comment -----------------------------------------------------------------------------


def _md_key(plan: RotationPlan, which: KeyName) -> str:
    return f"{which} `{plan.fingerprint(which)}`"


def _md_keys(plan: RotationPlan, keys: tuple[KeyName, ...]) -> str:
    return ", ".join(_md_key(plan, k) for k in keys)


def _change(before: str, after: str) -> str:
    return before if before == after else f"{before} → **{after}**"


def _md_key_line(shown: KeyShown, title: str, field: str) -> str:
    return markdown_key_line(shown, title, field)


def _stage_rows(plan: RotationPlan, stages: tuple[RotationStage, ...], label) -> list[tuple[str, ...]]:
    rows = []
    for s in stages:
        verdict = "✅ safe" if s.proof.safe else "⚠️ split"
        rows.append((label(s), f"`{s.stack}`", s.does(lambda k: _md_key(plan, k)),
                     _change(_md_keys(plan, s.before.held), _md_keys(plan, s.after.held)),
                     _change(_md_key(plan, s.before.primary), _md_key(plan, s.after.primary)),
                     _change(_md_key(plan, s.before.configured), _md_key(plan, s.after.configured)), verdict))
    return rows


_HEADERS = ("#", "stack", "does", "keys held", "primary", "fragments", "verdict")


def _roles(plan: RotationPlan) -> list[str]:
    r = plan.rollout
    s = r.servers
    out = [f"servers: TSE {s.instance_id} ({s.region}), the console's parameters" if s.type is ServerType.TSE
           else f"servers: {len(s.nodes)} nodes, delivery {s.delivery.where()}"]
    out += [f"client group {g.name}: {len(g.nodes)} nodes, delivery {g.delivery.where()}" for g in r.client_groups]
    return out


def _md_stage(plan: RotationPlan, s: RotationStage, heading: str, deploy: bool) -> list[str]:
    out = ["", f"### {heading} `{s.stack}`", "", f"Does: {s.does(lambda k: _md_key(plan, k))}."]
    if s.kind is StageKind.CONFIGS:
        out += ["", "Fragments rewritten (no restart):", ""] + [f"- {role}" for role in _roles(plan)]
        if s.servers_roll:
            shown = plan.new if s.key is KeyName.NEW else plan.old
            params = tse_parameters(plan.phase, shown)
            out += ["", "TSE console parameters (key redacted):", "", "```json", json.dumps(params, indent=2), "```"]
    out += ["", "Gate before: " + "; ".join(f"`{c}`" for c in s.requires.conditions(plan.name)) + ".",
            "Gate after (done when): " + "; ".join(f"`{c}`" for c in s.verifies.conditions(plan.name)) + "."]
    verdict = "✅ safe" if s.proof.safe else "⚠️ split"
    out += ["", f"Verdict: **{verdict}**. Proof: {s.proof.summary()}. Why: {s.proof.why}."]
    if not s.proof.fresh_start_ok:
        out += ["", f"> **Warning:** until the next stage, an agent that starts without its keyring file has only "
                    f"{_md_key(plan, s.after.configured)} and cannot read what the others send with "
                    f"{_md_key(plan, s.after.primary)}."]
    if deploy:
        out += ["", "```sh", deploy_command(s), "```"]
    return out


def _mermaid_diagram(plan: RotationPlan) -> list[str]:
    """The stages as a Mermaid flowchart, drawn as report._mermaid_diagram draws phase steps (its escaping, its
    init directive): one box per stage with the keyrings after it, the line that changed in bold; the undo
    stages below, each reached by a dotted arrow from the stage it takes back. Node ids s0..s4 (today and the
    stages) and u1..u3 (undo): no name ever becomes Mermaid syntax."""
    def text(s: object) -> str:
        return str(s).translate(_MERMAID_ESCAPES)

    def name(k: KeyName) -> str:
        return text(plan.name(k))

    def box(title: str, ring: Keyring, before: Keyring | None) -> str:
        rows = [("held", ", ".join(name(k) for k in ring.held), before and before.held != ring.held),
                ("primary", name(ring.primary), before and before.primary is not ring.primary),
                ("fragments", name(ring.configured), before and before.configured is not ring.configured)]
        lines = [title] + [f"{label}: " + (f"<b>{value}</b>" if changed else value) for label, value, changed in rows]
        return '["' + "<br/>".join(lines) + '"]'

    out = ["```mermaid", '%%{init: {"flowchart": {"wrappingWidth": 400}}}%%', "flowchart LR",
           f"    accTitle: tsegossip key rotation {text(plan.rollout.name)}, every keyring after each stage",
           f"    s0{box('today', plan.initial, None)}"]
    for s in plan.stages:
        out.append(f"    s{s.index}{box(f'{s.index}. {text(s.stack)}', s.after, s.before)}")
        mark = "✅" if s.proof.safe else "⚠️"
        out.append(f'    s{s.index - 1} -->|"{mark} {text(s.kind)} {text(s.key)}"| s{s.index}')
    for u in plan.undo:
        out.append(f"    u{u.index}{box(f'undo {u.index}. {text(u.stack)}', u.after, u.before)}")
        out.append(f'    s{u.index} -.->|"↩ undo"| u{u.index}')
        if u.index < len(plan.undo):
            out.append(f"    u{u.index + 1} -.-> u{u.index}")
    return out + ["```"]


def as_markdown(plan: RotationPlan) -> str:
    r = plan.rollout
    out = [f"## tsegossip plan: `{r.name}` (key rotation, every agent stays {plan.phase})", ""]
    if plan.warnings:
        for w in plan.warnings:
            out += [f"> **Warning:** {w}", ">"]
        out[-1] = ""
    out += [_md_key_line(plan.old, "Current gossip key", "key_fingerprint"),
            _md_key_line(plan.new, "New gossip key", "rotate_to_fingerprint"), "",
            "No stage restarts an agent; each is one stack, deployed in order.", ""]
    today = ("0", "*today*", "—", _md_keys(plan, plan.initial.held), _md_key(plan, plan.initial.primary),
             _md_key(plan, plan.initial.configured), "—")
    out += _markdown_table(_HEADERS, [today, *_stage_rows(plan, plan.stages, lambda s: str(s.index))])
    out += ["", *_mermaid_diagram(plan)]
    for s in plan.stages:
        out += _md_stage(plan, s, f"{s.index}.", deploy=True)
    out += ["", "### Rollback before `remove`", "",
            "Planned, not run: stopped after stage k, the way back is undo k, then each lower one, through the same "
            "states the rotation went through. After `remove` the old key is gone from every keyring; the way back "
            "is then a rotation of its own.", ""]
    out += _markdown_table(_HEADERS, _stage_rows(plan, plan.undo, lambda s: f"undo {s.index}"))
    for s in plan.undo:
        out += _md_stage(plan, s, f"undo {s.index}.", deploy=False)
    return "\n".join(out) + "\n"


RENDERERS = {"text": as_text, "markdown": as_markdown, "json": as_json}


def render(plan: RotationPlan, fmt: str) -> str:
    return RENDERERS[fmt](plan)

