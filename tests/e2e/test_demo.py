"""The README's main job, through the real console script, on a small lab."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tsegossip.keys import looks_like_key
from tests.support import console_script

pytestmark = pytest.mark.usefixtures("cdktf_ready", "lab_binary")


@pytest.mark.timeout(400)
def test_demo_runs_plaintext_to_enforced_and_cleans_up(tmp_path):
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "TSEGOSSIP_KEY"}  # the demo makes its own key
    r = subprocess.run([console_script(), "demo", "--dir", str(workdir), "--clients", "2", "--groups", "1"],
                       capture_output=True, text=True, env=env, timeout=380)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    steps = re.findall(r"^== step (\d)/3: cdktf deploy (\S+)", r.stdout, re.M)
    assert [s for s, _ in steps] == ["1", "2", "3"]
    assert [stack for _, stack in steps] == ["lab-1-accept-encrypted", "lab-2-send-encrypted", "lab-3-enforced"]
    assert r.stdout.count("5/5 nodes as expected") == 4  # today, and after each of the three steps
    assert re.search(r"progress: web \(lab/lab-2-send-encrypted\): batch 1/\d+ alive in send-encrypted", r.stdout)
    assert "every agent enforced, every member alive" in r.stdout
    assert "== lab stopped" in r.stdout
    # The key shows only redacted: nothing printed looks like a key.
    assert not [w for w in re.split(r"[\s\"',()]+", out) if looks_like_key(w)]
    # Every agent the demo started is gone.
    left = subprocess.run(["pgrep", "-f", f"-config-dir {workdir}"], capture_output=True, text=True).stdout
    assert left == ""
    # State went to the demo's own work dir, one file per stack.
    assert sorted(p.name for p in (workdir / "state").iterdir()) == [
        "lab-1-accept-encrypted.tfstate", "lab-2-send-encrypted.tfstate", "lab-3-enforced.tfstate"]
