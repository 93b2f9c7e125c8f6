"""The live display of `tsegossip deploy` and the demo: folded from the very lines a pipeline logs."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tsegossip.cli import live


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# What deploy prints for a 2-step rollout of 4 web clients in batches of 2 (shapes from deploy.deploy_steps
# and provider/rollout.py; tests/e2e parse the same lines for their batch windows).
STEP_1 = [
    "== step 1/2: cdktf deploy lab-1-accept-encrypted (servers -> accept-encrypted, web -> accept-encrypted)",
    "    progress: gate lab-1-accept-encrypted-before: ok: 7 node(s) alive in their expected phases",
    "    progress: servers (lab/lab-1-accept-encrypted): 3 node(s) to move plaintext -> accept-encrypted in "
    "3 batch(es), delivery local (on the runner)",
]


def feed(state: live.DeployState, lines: list[str]) -> None:
    for line in lines:
        state.feed(line)


def test_step_batch_nodes_restarting_and_elapsed():
    clock = Clock()
    state = live.DeployState(clock=clock)
    assert state.lines() == ["starting ... elapsed 0:00"]
    feed(state, STEP_1 + ["    progress: servers (lab/lab-1-accept-encrypted): batch 1/3: server-1 -> accept-encrypted"])
    clock.now += 65
    lines = state.lines()
    assert lines[0] == "step 1/2: lab-1-accept-encrypted"
    assert lines[1] == "  servers: batch 1/3, nodes 0/3, restarting server-1"
    assert lines[-1] == "elapsed 1:05, estimate after the first batch"


def test_estimate_from_batch_times_then_from_step_times():
    clock = Clock()
    state = live.DeployState(clock=clock)
    who = "servers (lab/lab-1-accept-encrypted)"
    feed(state, STEP_1)
    for i, node in enumerate(["server-1", "server-2"], 1):
        state.feed(f"    progress: {who}: batch {i}/3: {node} -> accept-encrypted")
        clock.now += 10
        state.feed(f"    progress: {who}: batch {i}/3 alive in accept-encrypted after 10.00s (restart commands 0.20s)")
    assert "  servers: batch 2/3, nodes 2/3" in state.lines()
    # one batch of 10 s left in this step; no step finished yet to say more
    assert state.lines()[-1] == "elapsed 0:20, about 0:10 left in this step"
    state.feed(f"    progress: {who}: batch 3/3: server-3 -> accept-encrypted")
    clock.now += 10
    state.feed(f"    progress: {who}: done, 3 node(s) in accept-encrypted")
    state.feed("   deployed lab-1-accept-encrypted in 30.0s")
    assert "  servers: done, 3/3 nodes" in state.lines()
    state.feed("== step 2/2: cdktf deploy lab-2-enforced (servers -> enforced)")
    assert state.lines()[0] == "step 2/2: lab-2-enforced" and len(state.lines()) == 2  # the new step's roles only
    state.feed("    progress: servers (lab/lab-2-enforced): 2 node(s) to move accept-encrypted -> enforced in "
               "2 batch(es), delivery local (on the runner); 1 already there (resumed)")
    assert "  servers: batch 0/2, nodes 1/3" in state.lines()


def test_tse_roll_shows_the_instance_status():
    state = live.DeployState(clock=Clock())
    who = "servers (shop/shop-1-accept-encrypted)"
    feed(state, ["== step 1/3: cdktf deploy shop-1-accept-encrypted (servers -> accept-encrypted)",
                 f"    progress: {who}: waiting up to 900s for ins-0a1b2c3d to roll its servers and run again",
                 f"    progress: {who}: ins-0a1b2c3d: restarting"])
    assert "  servers: ins-0a1b2c3d: restarting" in state.lines()


def test_live_output_prints_every_line_and_draws_the_panel():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    with live.LiveOutput(console=console, clock=Clock()) as out:
        out.write(STEP_1[0] + "\n" + STEP_1[2][:40])
        out.write(STEP_1[2][40:] + "\n")
    text = buf.getvalue()
    assert STEP_1[0] in text and "3 node(s) to move plaintext -> accept-encrypted" in text
    assert "tsegossip deploy" in text and "step 1/2: lab-1-accept-encrypted" in text
    assert "servers: batch 0/3, nodes 0/3" in text


@pytest.mark.parametrize("env,plain,tty,want", [
    ({}, False, True, True),
    ({"CI": "true"}, False, True, False),
    ({"TERM": "dumb"}, False, True, False),
    ({}, True, True, False),
    ({}, False, False, False),
])
def test_live_only_for_a_person_at_a_terminal(env, plain, tty, want):
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    assert live.wants_live(Stream(), env, plain) is want


def test_off_a_terminal_output_is_the_stream_itself():
    stream = io.StringIO()
    with live.output(stream, environ={}) as out:
        assert out is stream


def test_estimate_counts_down_within_a_step_and_ends_at_zero():
    clock = Clock()
    state = live.DeployState(clock=clock)
    state.feed("== step 1/2: cdktf deploy lab-1-accept-encrypted (servers -> accept-encrypted)")
    clock.now += 40
    state.feed("   deployed lab-1-accept-encrypted in 40.0s")
    state.feed("== step 2/2: cdktf deploy lab-2-enforced (servers -> enforced)")
    clock.now += 15   # no batch yet: what is left of the mean step
    assert state.lines()[-1] == "elapsed 0:55, about 0:25 left"
    who = "servers (lab/lab-2-enforced)"
    state.feed(f"    progress: {who}: 1 node(s) to move send-encrypted -> enforced in 1 batch(es), delivery local")
    state.feed(f"    progress: {who}: batch 1/1: server-1 -> enforced")
    state.feed(f"    progress: {who}: batch 1/1 alive in enforced after 3.00s (restart commands 0.30s)")
    state.feed(f"    progress: {who}: done, 1 node(s) in enforced")
    assert state.lines()[-1] == "elapsed 0:55, about 0:00 left"  # the after-gate and the check remain


def test_a_rotation_configs_stage_reads_as_batches_written():
    state = live.DeployState(clock=Clock())
    who = "web (lab/lab-rotate-3-configs)"
    feed(state, ["== step 3/4: cdktf deploy lab-rotate-3-configs (rewrite each node's config fragment)",
                 f"    progress: {who}: 2 node(s) to rewrite in enforced in 1 batch(es), delivery local; fragments only",
                 f"    progress: {who}: batch 1/1: web-1, web-2 -> enforced",
                 f"    progress: {who}: batch 1/1 written in enforced after 0.02s (fragments read back, no restart)"])
    assert "  web: batch 1/1, nodes 2/2" in state.lines()
