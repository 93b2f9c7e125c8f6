"""Plans rendered for machines (json) and people (text, markdown: the PR comment)."""

from __future__ import annotations

import json
from typing import Any

from tabulate import DataRow, TableFormat, tabulate

from .agentconfig import fragment, tse_parameters
from .expectations import label
from .keys import GossipKey, KeyShown
from .phases import Phase
from .planner import SERVERS, Plan, Step
from .spec import ServerType


def deploy_command(step: Step) -> str:
    """The command that deploys this one stage by hand.

    Every stage after the first depends on the one before (cdktf stack dependencies, so `cdktf deploy`
    naming the stages from the first runs them in order); deploying one stage alone makes cdktf refuse it
    unless told the earlier ones are not part of this run. That is safe for one stage: its own gate-before
    checks the live cluster is where the previous stage leaves it, whoever deployed that one and when.
    Not for several: with the flag cdktf 0.21 starts every named stack at once (README "Using it").
    """
    extra = " --ignore-missing-stack-dependencies" if step.index > 1 else ""
    return f"cdktf deploy {step.stack} --skip-provider-lock{extra}"


def step_dict(step: Step) -> dict[str, Any]:
    after = step.after.as_dict()
    return {
        "stack": step.stack,
        "index": step.index,
        "kind": step.kind.value,
        "servers": after["servers"],
        "clients": after["clients"],
        "moves": [
            {"role": m.role, "from": label(m.before), "to": m.after.value, "nodes": m.nodes}
            for m in step.moves
        ],
        "coexisting": [p.value for p in step.proof.coexisting],
        "safe": step.proof.safe,
        "splits": [str(c) for c in step.proof.splits],
        "warnings": list(step.warnings),
        "deploy": deploy_command(step),
    }


# `plan --format json` is an interface (pipelines, policy checks): schemas/plan.schema.json describes it,
# and PLAN_FORMAT_VERSION goes up on any change a consumer could trip on (a field removed, renamed or
# retyped); adding a field does not bump it.
PLAN_FORMAT = "tsegossip-plan"
PLAN_FORMAT_VERSION = 1


def as_json(plan: Plan, key: GossipKey | KeyShown) -> str:
    doc = {
        "format": PLAN_FORMAT,
        "version": PLAN_FORMAT_VERSION,
        "name": plan.rollout.name,
        "strategy": plan.rollout.strategy.value,
        "target": plan.rollout.target.value,
        "key": {"redacted": key.redacted, "fingerprint": key.fingerprint, "env": plan.rollout.key_env,
                "source": getattr(key, "source", "environment")},
        "today": plan.initial.as_dict(),
        "steps": [step_dict(s) for s in plan.steps],
        "warnings": list(plan.warnings),
    }
    return json.dumps(doc, indent=2)


def _flags(phase: Phase | None) -> str:
    if phase is None:
        return "not joined"
    if phase is Phase.PLAINTEXT:
        return "plaintext (no key)"
    return (
        f"{phase} (encrypt=key, verify_incoming={str(phase.verify_incoming).lower()}, "
        f"verify_outgoing={str(phase.verify_outgoing).lower()})"
    )


def _role_label(plan: Plan, role: str) -> str:
    if role == SERVERS:
        s = plan.rollout.servers
        if s.type is ServerType.TSE:
            return f"servers (TSE {s.instance_id}, {s.region})"
        return f"servers ({len(s.nodes)} nodes, delivery {s.delivery.where()})"
    g = plan.rollout.group(role)
    return f"client group {role} ({len(g.nodes)} nodes, batch {g.batch_size}, delivery {g.delivery.where()})"


def as_text(plan: Plan, key: GossipKey | KeyShown) -> str:
    r = plan.rollout
    lines = [
        f"rollout {r.name}: strategy {r.strategy}, target {r.target}",
        f"key: {_shown(key, r.key_env).describe()}",
        f"today: servers {plan.initial.servers}; "
        + ", ".join(f"{n} {p if p else 'not joined'}" for n, p in plan.initial.clients),
    ]
    for w in plan.warnings:
        lines.append(f"WARNING: {w}")
    if r.unmanaged:
        lines.append(f"unmanaged (never restarted, proven against): "
                     + ", ".join(f"{u.name} {u.label}" for u in r.unmanaged))
    if not plan.steps:
        lines.append(f"nothing to do: every agent is already {r.target}")
        return "\n".join(lines)
    lines.append(f"{len(plan.steps)} step(s):")
    for s in plan.steps:
        lines.append("")
        lines.append(f"step {s.index}/{len(plan.steps)}  stack {s.stack}  ({s.kind})")
        for m in s.moves:
            lines.append(f"  {_role_label(plan, m.role)}: {_flags(m.before)} -> {_flags(m.after)}")
        unmoved = [role for role in s.before.roles() if role not in s.moved_roles]
        for role in unmoved:
            lines.append(f"  {_role_label(plan, role)}: unchanged, {_flags(s.before.phase_of(role))}")
        verdict = "SAFE" if s.proof.safe else "TRANSIENT SPLIT"
        lines.append(f"  proof [{verdict}]: {s.proof.summary()}")
        lines.append(f"  deploy: {deploy_command(s)}")
    return "\n".join(lines)


# GitHub renders the pipes, so cells stay unpadded (no alignment) under a plain `---` rule per column.
_MARKDOWN = TableFormat(
    lineabove=None, linebelowheader=lambda widths, _aligns: "|" + "---|" * len(widths), linebetweenrows=None,
    linebelow=None, headerrow=DataRow("|", "|", "|"), datarow=DataRow("|", "|", "|"), padding=1,
    with_header_hide=None,
)


def _markdown_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return tabulate(rows, headers=headers, tablefmt=_MARKDOWN, stralign=None, disable_numparse=True).splitlines()


# Mermaid's entity codes (`#34;`), in one pass: a label is always quoted, so only these characters could
# end it, open a markdown string (backtick) or become markup; names cannot hold them today, but the
# fence must not depend on the schema's patterns staying that strict.
_MERMAID_ESCAPES = str.maketrans({c: f"#{ord(c)};" for c in '#"&<>`'})


def _mermaid_diagram(plan: Plan) -> list[str]:
    """The steps as a Mermaid flowchart (a ```mermaid block, drawn by GitHub): one box per stage with
    every role's phase after it, the roles the step moved in bold, as in the table above; the arrow into
    a step is labelled with its verdict, and a step that splits the cluster for a while (direct's
    servers-only jump) gets a dotted arrow and a red dashed box. Node ids are s0 (today), s1, ...: no
    name ever becomes Mermaid syntax."""
    def text(s: object) -> str:
        return str(s).translate(_MERMAID_ESCAPES)

    def box(title: str, state, moved: tuple[str, ...]) -> str:
        lines = [title]
        for role in state.roles():
            phase = state.phase_of(role)
            shown = text(phase if phase else "not joined")
            lines.append(f"{text(role)}: " + (f"<b>{shown}</b>" if role in moved else shown))
        return '["' + "<br/>".join(lines) + '"]'

    # Wider than mermaid's default wrap (120-200 px by version), so a stack id stays on one line. An
    # init directive rather than front matter: a renderer that does not know it reads a comment.
    out = ["```mermaid", '%%{init: {"flowchart": {"wrappingWidth": 400}}}%%', "flowchart LR",
           f"    accTitle: tsegossip plan {text(plan.rollout.name)}, the phase of each group after each step",
           f"    s0{box('today', plan.initial, ())}"]
    split = []
    for s in plan.steps:
        out.append(f"    s{s.index}{box(f'{s.index}. {text(s.stack)}', s.after, s.moved_roles)}")
        if s.proof.safe:
            out.append(f'    s{s.index - 1} -->|"✅ safe"| s{s.index}')
        else:
            out.append(f'    s{s.index - 1} -.->|"⚠️ transient split"| s{s.index}')
            split.append(f"s{s.index}")
    if split:
        out.append("    classDef split stroke:#d93025,stroke-width:3px,stroke-dasharray:6 4")
        out.append(f"    class {','.join(split)} split")
    return out + ["```"]


def as_markdown(plan: Plan, key: GossipKey | KeyShown) -> str:
    """The pull-request comment: warnings first, then one section per stack."""
    r = plan.rollout
    out = [f"## tsegossip plan: `{r.name}` ({r.strategy} → {r.target})", ""]
    if plan.warnings:
        for w in plan.warnings:
            out.append(f"> **Warning:** {w}")
            out.append(">")
        out.pop()
        out.append("")
    out.append(_markdown_key(_shown(key, r.key_env)))
    out.append("")
    if r.unmanaged:
        out.append("Unmanaged members (never restarted; every step is proven against them, `observe` ones live "
                   "at deploy time): " + ", ".join(f"`{u.name}` {u.label}" for u in r.unmanaged))
        out.append("")
    if not plan.steps:
        out.append(f"Nothing to do: every agent is already `{r.target}`.")
        return "\n".join(out) + "\n"
    # Laid out by hand: today's row ends in an empty verdict cell written `| |`, which tabulate pads to `|  |`.
    out.append("| # | stack | servers | " + " | ".join(n for n, _ in plan.initial.clients) + " | verdict |")
    out.append("|---|---|---|" + "---|" * len(plan.initial.clients) + "---|")
    out.append("| 0 | *today* | " + " | ".join(
        [str(plan.initial.servers)] + [str(p) if p else "not joined" for _, p in plan.initial.clients]) + " | |")
    for s in plan.steps:
        cells = [str(s.after.servers)] + [str(p) if p else "not joined" for _, p in s.after.clients]
        moved = set(s.moved_roles)
        roles = [SERVERS] + [n for n, _ in s.after.clients]
        cells = [f"**{c}**" if role in moved else c for role, c in zip(roles, cells)]
        verdict = "✅ safe" if s.proof.safe else "⚠️ transient split"
        out.append(f"| {s.index} | `{s.stack}` | " + " | ".join(cells) + f" | {verdict} |")
    out += ["", *_mermaid_diagram(plan)]
    for s in plan.steps:
        out += ["", f"### {s.index}. `{s.stack}`", ""]
        rows = [(_role_label(plan, m.role), _flags(m.before), _flags(m.after)) for m in s.moves]
        rows += [(_role_label(plan, role), _flags(s.before.phase_of(role)), "unchanged")
                 for role in s.before.roles() if role not in s.moved_roles]  # so reviewers see what stays put
        out += _markdown_table(("role", "before", "after"), rows)
        for w in s.warnings:
            out.append("")
            out.append(f"> **Warning:** {w}")
        out.append("")
        verdict = "✅ safe" if s.proof.safe else "⚠️ transient split"
        out.append(f"Verdict: **{verdict}**. Proof: {s.proof.summary()}.")
        if s.moves_servers and r.servers.type is ServerType.TSE:
            params = tse_parameters(s.after.servers, key)
            out += ["", "TSE console parameters (key redacted):", "", "```json", json.dumps(params, indent=2), "```"]
        out += ["", "```sh", deploy_command(s), "```"]
    return "\n".join(out) + "\n"


def _shown(key: GossipKey | KeyShown, env: str) -> KeyShown:
    return key if isinstance(key, KeyShown) else KeyShown(env, key.fingerprint, key.redacted, "environment")


def _markdown_key(k: KeyShown) -> str:
    return markdown_key_line(k)


def markdown_key_line(k: KeyShown, title: str = "Gossip key", field: str = "key_fingerprint") -> str:
    """The same line whether or not the key was there, so a plan made without it reviews the same."""
    if k.source == "environment":
        return f"{title}: `{k.redacted}` (sha256 `{k.fingerprint}`), read from `${k.env}` at deploy time."
    if k.source == "pinned":
        return (f"{title}: sha256 `{k.fingerprint}` (pinned in the spec; not in `${k.env}` when this plan was "
                f"made), read from `${k.env}` at deploy time.")
    return (f"{title}: fingerprint **unknown** (not in `${k.env}` when this plan was made, none pinned in the "
            f"spec's `{field}`), read from `${k.env}` at deploy time.")


def render_fragment(plan: Plan, stack: str, group: str, key: GossipKey, reveal: bool) -> dict[str, Any]:
    step = plan.step(stack)
    phase = step.after.servers if group == SERVERS else step.after.phase_of(group)
    if phase is None:
        raise ValueError(f"group {group!r} has not joined after step {stack}")
    return fragment(phase, key, reveal=reveal)
