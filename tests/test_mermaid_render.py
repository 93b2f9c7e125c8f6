"""The PR comment's Mermaid diagram renders: every ```mermaid block of `plan --format markdown` (each
bundled example, and direct plans that jump), drawn by mermaid from npm in Debian's headless Chromium.

The page is a local file that loads node_modules/mermaid/dist/mermaid.min.js, runs `mermaid.parse` and
`mermaid.render`, and writes "OK <svg ...>" or "ERROR <message>" into the DOM, which `--dump-dom` hands
back. Nothing here may touch a network: Chromium runs in fresh network and PID namespaces (no interface
up; when it exits the kernel kills whatever it left behind), every host name maps to ~NOTFOUND, and
its own net log must show that no other name ever reached its resolver. Chromium 156 still starts a
couple of background requests no switch turns off (a ListAccounts, the optimization guide's component
manifest); they end there, at the mapped resolver, with no DNS query and no packet.

Both tools come from ./bootstrap (apt: chromium; npm: mermaid); a missing one fails, it never skips.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tsegossip import planner, report, spec

from .constructs.conftest import EXAMPLES, TEST_KEY, load_plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
MERMAID_JS = ROOT / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
TIMEOUT = 30  # seconds of wall clock for one Chromium run; a render takes about 2 (see below)

# Switches that keep Chromium from starting background work (and so from asking for names at all).
# --host-resolver-rules is the guarantee for names; the namespaces are the guarantee for packets.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--disable-breakpad", "--disable-domain-reliability", "--no-pings",
    "--disable-client-side-phishing-detection", "--metrics-recording-only", "--no-proxy-server",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationGuideModelDownloading,"
    "Translate,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
    "--virtual-time-budget=10000",  # virtual: advances at once while the page is idle, the render is awaited
)

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mermaid render</title></head><body>
<pre id="result">PENDING</pre><pre id="ms"></pre><pre id="label-widths"></pre><div id="drawn"></div>
<script src="{mermaid}"></script>
<script>
(async () => {{
  const result = document.getElementById("result");
  try {{
    const source = {source};
    mermaid.initialize({{startOnLoad: false, securityLevel: "strict"}});
    const t0 = performance.now();
    await mermaid.parse(source);
    const {{svg}} = await mermaid.render("diagram", source);
    document.getElementById("ms").textContent = String(Math.round(performance.now() - t0));
    // Drawn into the page, so that text with no font to draw it would measure 0 wide.
    document.getElementById("drawn").innerHTML = svg;
    const widths = [...document.querySelectorAll("#drawn .nodeLabel")].map(e => e.getBoundingClientRect().width);
    document.getElementById("label-widths").textContent = JSON.stringify(widths);
    result.textContent = "OK " + svg;
  }} catch (e) {{
    result.textContent = "ERROR " + ((e && e.message) || String(e));
  }}
}})();
</script></body></html>
"""


@dataclass(frozen=True)
class Rendered:
    status: str            # "OK" or "ERROR"
    body: str              # the SVG, or mermaid's message
    render_ms: int | None  # parse + render inside the page
    wall_s: float          # the whole Chromium run
    label_widths: tuple[float, ...]


def _namespaces() -> list[str]:
    """unshare's prefix: new network and PID namespaces (a user namespace too when not root)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) missing: Chromium must run without a network")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *user, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--"]


@pytest.fixture(scope="module")
def chromium() -> list[str]:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if exe is None:
        pytest.fail("chromium missing: ./bootstrap installs Debian's chromium (APT_PACKAGES)")
    if not MERMAID_JS.is_file():
        pytest.fail(f"{MERMAID_JS.relative_to(ROOT)} missing: ./bootstrap installs mermaid (package.json devDependencies)")
    prefix = _namespaces()
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=TIMEOUT)
    if probe.returncode != 0:
        pytest.fail(f"cannot make network/PID namespaces for Chromium ({' '.join(prefix)}): {probe.stderr.strip()}")
    return [*prefix, exe]


def _resolved_names(netlog: Path) -> list[str]:
    """Every host Chromium's resolver was asked for, from its own net log."""
    doc = json.loads(netlog.read_text())
    resolve = doc["constants"]["logEventTypes"]["HOST_RESOLVER_MANAGER_REQUEST"]
    return [e["params"]["host"] for e in doc["events"] if e["type"] == resolve and "host" in e.get("params", {})]


def render(chromium: list[str], source: str) -> Rendered:
    with tempfile.TemporaryDirectory(prefix="tsegossip-mermaid-") as tmp:
        page = Path(tmp) / "render.html"
        page.write_text(_PAGE.format(mermaid=MERMAID_JS.as_uri(),
                                     source=json.dumps(source).replace("</", "<\\/")), encoding="utf-8")
        netlog = Path(tmp) / "netlog.json"
        argv = [*chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--log-net-log={netlog}",
                "--dump-dom", page.as_uri()]
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, cwd=tmp)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):  # unshare's --kill-child takes the namespace down too
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        wall = time.monotonic() - t0
        assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{err[-3000:]}"
        names = _resolved_names(netlog)
        assert all(n.endswith("~notfound") for n in names), f"a host name reached Chromium's resolver: {names}"
    m = re.search(r'<pre id="result">(.*?)</pre>', out, re.S)
    assert m, f"no result in the dumped DOM:\n{out[:2000]}\n{err[-2000:]}"
    status, _, body = html.unescape(m.group(1)).partition(" ")
    ms = re.search(r'<pre id="ms">(\d+)</pre>', out)
    widths = re.search(r'<pre id="label-widths">(.*?)</pre>', out, re.S)
    return Rendered(status, body, int(ms.group(1)) if ms else None, wall,
                    tuple(json.loads(html.unescape(widths.group(1)))) if widths and widths.group(1) else ())


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.M | re.S)


def _node_labels(svg: str) -> dict[int, str]:
    """Each box's label (its HTML, <br> as a newline) by the n of its node id sn."""
    labels = {}
    for m in re.finditer(r'<g class="node[^"]*" id="diagram-flowchart-s(\d+)-\d+".*?<span class="nodeLabel"[^>]*>'
                         r"<p>(.*?)</p></span>", svg, re.S):
        labels[int(m.group(1))] = m.group(2).replace("<br>", "\n")
    return labels


def _expected_label(title: str, state: planner.State, moved: tuple[str, ...]) -> str:
    """What the box must say, written from the plan here rather than from report.py's code."""
    lines = [title]
    for role in state.roles():
        phase = state.phase_of(role)
        shown = html.escape(str(phase) if phase else "not joined", quote=False)
        lines.append(f"{html.escape(role, quote=False)}: " + (f"<b>{shown}</b>" if role in moved else shown))
    return "\n".join(lines)


def assert_draws_plan(result: Rendered, plan: planner.Plan) -> None:
    assert result.status == "OK", f"mermaid refused the diagram: {result.body}"
    assert result.body.startswith("<svg"), result.body[:200]
    want = {0: _expected_label("today", plan.initial, ())}
    want.update({s.index: _expected_label(f"{s.index}. {html.escape(s.stack, quote=False)}", s.after, s.moved_roles)
                 for s in plan.steps})
    assert _node_labels(result.body) == want
    for s in plan.steps:  # an unsafe step is marked on its box and on the arrow into it
        node = re.search(rf'<g class="(node[^"]*)" id="diagram-flowchart-s{s.index}-', result.body).group(1)
        edge = re.search(rf'<path[^>]*class="([^"]*)"[^>]*id="L_s{s.index - 1}_s{s.index}_0"', result.body).group(1)
        assert ("split" in node.split()) is (not s.proof.safe), (s.stack, node)
        assert ("edge-pattern-dotted" in edge.split()) is (not s.proof.safe), (s.stack, edge)
    # text was drawn with a real font (a box with no glyphs would measure next to nothing)
    assert result.label_widths and min(result.label_widths) > 20, result.label_widths


def _direct_variant() -> planner.Plan:
    """Self-managed servers straight from plaintext to enforced (a three-phase jump, split), then a
    group that has not joined; the group is called `end`, a word that ends a Mermaid block."""
    doc = spec.read_document(EXAMPLES_DIR / "self-managed.yaml")
    doc.update(name="dc2", strategy="direct", target="enforced")
    doc["client_groups"][0].update(name="end", joined=False)
    return planner.plan(spec.parse(doc, source="direct variant"))


def _renamed(plan: planner.Plan, names: dict[str, str]) -> planner.Plan:
    """The same plan with other role names: ones no spec may hold, to show that escaping, not the
    schema's name pattern, keeps a name from ending a label or becoming markup."""
    def state(s: planner.State) -> planner.State:
        return replace(s, clients=tuple((names.get(n, n), p) for n, p in s.clients))

    def step(s: planner.Step) -> planner.Step:
        moves = tuple(replace(m, role=names.get(m.role, m.role)) for m in s.moves)
        return replace(s, before=state(s.before), after=state(s.after), moves=moves, stack=s.stack + '-"q"<b>&#1;')

    return replace(plan, initial=state(plan.initial), steps=tuple(step(s) for s in plan.steps))


def _timed(name: str, result: Rendered) -> Rendered:
    """Printed for -s / -rP: the render is asked to stay well under 10 s, and this shows by how much."""
    print(f"{name}: parse + render {result.render_ms} ms in the page, {result.wall_s:.2f} s for the Chromium run")
    return result


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_diagram_renders(example, chromium):
    plan = load_plan(example)
    blocks = mermaid_blocks(report.as_markdown(plan, TEST_KEY))
    assert len(blocks) == 1, "the PR comment carries one diagram"
    assert_draws_plan(_timed(example.stem, render(chromium, blocks[0])), plan)


def test_direct_jump_diagram_marks_the_split(chromium):
    plan = _direct_variant()
    assert [s.proof.safe for s in plan.steps] == [False, True]  # the plan this test is about
    blocks = mermaid_blocks(report.as_markdown(plan, TEST_KEY))
    assert len(blocks) == 1
    assert_draws_plan(_timed("direct variant", render(chromium, blocks[0])), plan)


def test_names_mermaid_dislikes_stay_text(chromium):
    plan = _renamed(load_plan(EXAMPLES_DIR / "tse-smooth.yaml"),
                    {"web": 'end"]; click s0 call alert(1); x["', "api": "<i>api</i> & #35; `md`"})
    block = "\n".join(report._mermaid_diagram(plan)[1:-1]) + "\n"
    assert_draws_plan(_timed("hostile names", render(chromium, block)), plan)


def test_fails_broken_diagram_is_reported(chromium):
    """The check can fail: a box left open is mermaid's error, not an SVG."""
    result = _timed("broken", render(chromium, 'flowchart LR\n    s0["today<br/>servers: plaintext"]\n    s0 --> s1["1. open\n'))
    assert result.status == "ERROR", result.body[:300]
    assert "Parse error" in result.body or "Lexical error" in result.body, result.body


def test_no_diagram_when_nothing_to_do():
    plan = load_plan(EXAMPLES_DIR / "tse-smooth.yaml")
    done = replace(plan, initial=plan.final, steps=())
    assert mermaid_blocks(report.as_markdown(done, TEST_KEY)) == []


# The block exactly as GitHub is given it (and deterministic: a spec always gives the same text);
# tse-direct is the example with both kinds of step.
TSE_DIRECT_BLOCK = """\
```mermaid
%%{init: {"flowchart": {"wrappingWidth": 400}}}%%
flowchart LR
    accTitle: tsegossip plan billing, the phase of each group after each step
    s0["today<br/>servers: accept-encrypted<br/>workers: not joined"]
    s1["1. billing-servers-enforced<br/>servers: <b>enforced</b><br/>workers: not joined"]
    s0 -.->|"⚠️ transient split"| s1
    s2["2. billing-join-enforced<br/>servers: enforced<br/>workers: <b>enforced</b>"]
    s1 -->|"✅ safe"| s2
    classDef split stroke:#d93025,stroke-width:3px,stroke-dasharray:6 4
    class s1 split
```
"""


def test_diagram_text_is_stable():
    """Between the summary table and the first step's section."""
    md = report.as_markdown(load_plan(EXAMPLES_DIR / "tse-direct.yaml"), TEST_KEY)
    assert "| ✅ safe |\n\n" + TSE_DIRECT_BLOCK + "\n### 1. `billing-servers-enforced`" in md
