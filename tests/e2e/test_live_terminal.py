"""The demo at a terminal (a real pty) shows the live display; its lines still scroll above it."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import pytest

from tests.e2e.helpers import tsegossip_cmd

pytestmark = pytest.mark.usefixtures("cdktf_ready")


@pytest.mark.timeout(300)
def test_demo_on_a_terminal_draws_the_live_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TSEGOSSIP_PLAIN")}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([tsegossip_cmd(), "demo", "--clients", "2", "--groups", "1", "--dir", str(tmp_path / "d")],
                            stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        os.close(leader)
    raw = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert rc == 0, text[-3000:]
    assert "\x1b[" in raw                                   # drawn and redrawn in place
    assert "tsegossip deploy" in text                       # the panel's title
    for want in ("step 1/3: lab-1-accept-encrypted", "step 3/3: lab-3-enforced",
                 "servers: batch 1/3, nodes 0/3, restarting server-1", "web: done, 2/2 nodes"):
        assert want in text, want
    assert re.search(r"elapsed \d+:\d\d, about \d+:\d\d left", text)
    # the lines a pipeline logs are all still there
    assert "== step 3/3: cdktf deploy lab-3-enforced" in text and "== demo done in" in text
