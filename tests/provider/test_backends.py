"""backends: files (atomic, 0600, schema-checked), commands (quoting, timeout, key hygiene),
tse (the real SDK path against recorded response shapes served locally)."""

from __future__ import annotations

import json
import time
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import TEST_KEY
from tsegossip.agentconfig import fragment
from tsegossip.backends import commands, files, tse
from tsegossip.keys import GossipKey
from tsegossip.phases import Phase
from tsegossip.waiting import wait_until

FIXTURES = Path(__file__).parent / "fixtures"
KEY = GossipKey(TEST_KEY)


# ---------------------------------------------------------------- files

def test_write_fragment_atomic_private(tmp_path):
    path = files.render_path(str(tmp_path / "{node}" / "gossip.json"), "web-1", "http://x:8500")
    files.write_fragment(path, fragment(Phase.ENFORCED, KEY, reveal=True))
    assert json.loads(Path(path).read_text())["encrypt_verify_incoming"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    files.write_fragment(path, fragment(Phase.PLAINTEXT, None))
    assert json.loads(Path(path).read_text()) == {"disable_keyring_file": True}
    assert os.listdir(tmp_path / "web-1") == ["gossip.json"]  # no temp files left


def test_fails_invalid_fragment_without_showing_key(tmp_path):
    bad = {"encrypt": TEST_KEY, "encrypt_verify_incoming": True, "encrypt_verify_outgoing": False}
    with pytest.raises(files.FragmentError) as err:
        files.write_fragment(str(tmp_path / "g.json"), bad)
    assert TEST_KEY not in str(err.value) and not (tmp_path / "g.json").exists()


def test_fails_bad_path_template():
    with pytest.raises(files.FragmentError, match="allowed placeholder: {node}"):
        files.render_path("/etc/{nodes}.json", "a", "b")


# ---------------------------------------------------------------- commands

def test_render_quotes_values():
    cmd = commands.render("restart {node} --config {config_path}", "web 1; rm -rf /", "/a b/c.json", "h")
    assert cmd == "restart 'web 1; rm -rf /' --config '/a b/c.json'"


def test_run_captures_output_and_hides_key_env(monkeypatch):
    monkeypatch.setenv("TSEGOSSIP_KEY", TEST_KEY)
    res = commands.run('echo "out:$TSEGOSSIP_KEY:"; echo err >&2', 5, secrets=[TEST_KEY], hide_env=["TSEGOSSIP_KEY"])
    assert res.ok and res.output.split() == ["out::", "err"]


def test_run_redacts_key_in_output(tmp_path):
    f = tmp_path / "k"
    f.write_text(TEST_KEY)
    res = commands.run(f"cat {f}; exit 3", 5, secrets=[TEST_KEY])
    assert res.returncode == 3 and TEST_KEY not in res.output and "<redacted>" in res.output
    assert "exited 3" in res.describe()


def test_fails_key_in_command():
    with pytest.raises(commands.CommandError):
        commands.run(f"echo {TEST_KEY}", 5, secrets=[TEST_KEY])


def test_run_timeout_sends_term_first_so_the_command_can_clean_up():
    t0 = time.monotonic()
    res = commands.run("trap 'echo cleaned up; exit 3' TERM; sleep 30 & wait", timeout=0.5)
    assert res.timed_out and "cleaned up" in res.output and time.monotonic() - t0 < 5


def test_run_timeout_kills_a_command_that_ignores_term(monkeypatch):
    monkeypatch.setattr(commands, "TERM_GRACE_SECONDS", 0.5)
    t0 = time.monotonic()
    res = commands.run("trap '' TERM; echo started; while :; do sleep 0.1; done", timeout=0.5)
    assert res.timed_out and "started" in res.output and time.monotonic() - t0 < 5


def test_run_timeout_kills_group():
    res = commands.run("sleep 30 & echo $!; sleep 30", 0.5)
    assert res.timed_out and not res.ok and "timed out" in res.describe()
    # The whole group went, not only the shell: the background sleep let go of the output pipe (its pid
    # was read back) and ends (gone, or a zombie waiting for its reaper; it closes the pipe while exiting).
    assert res.output.strip().isdigit(), f"no output: a process outside the kill kept the pipe: {res.output!r}"
    pid = int(res.output)

    def ended():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True, "gone"
        return state == "Z", state

    exited = wait_until(ended, timeout=5, interval=0.02)
    assert exited.ok, f"the background sleep (pid {pid}) is still in state {exited.value}"


# ---------------------------------------------------------------- tse (recorded shapes)

class RecordedTSE:
    """Answers the SDK's POSTs with fixture files in turn and records each request."""

    def __init__(self, answers: list[str]):
        self.answers = list(answers)
        self.requests: list[dict] = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.requests.append({"headers": dict(self.headers), "body": json.loads(body or b"{}")})
                name = rec.answers.pop(0) if len(rec.answers) > 1 else rec.answers[0]
                data = (FIXTURES / name).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorded():
    servers = []

    def make(*answers):
        s = RecordedTSE(list(answers))
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


CREDS = {"TENCENTCLOUD_SECRET_ID": "AKIDexample0000000000000000000000", "TENCENTCLOUD_SECRET_KEY": "secretexample"}


def test_describe_instance_runs_the_real_sdk_path(recorded):
    srv = recorded("describe_sre_instances_running.json")
    st = tse.describe_instance("ins-7d3e1c2a", "ap-guangzhou", environ=CREDS, endpoint=srv.endpoint, scheme="http")
    assert st.running and st.engine_type == "consul" and st.request_id.startswith("6b2c9a9e")
    (req,) = srv.requests
    h = req["headers"]
    assert h["X-TC-Action"] == "DescribeSREInstances" and h["X-TC-Version"] == "2020-12-07"
    assert h["X-TC-Region"] == "ap-guangzhou"
    assert h["Authorization"].startswith("TC3-HMAC-SHA256 Credential=AKIDexample0000000000000000000000/")
    assert "secretexample" not in json.dumps(req)
    assert req["body"]["Filters"] == [{"Name": "InstanceId", "Values": ["ins-7d3e1c2a"]}]


def test_describe_instance_not_listed(recorded):
    srv = recorded("describe_sre_instances_empty.json")
    st = tse.describe_instance("ins-gone", "ap-guangzhou", environ=CREDS, endpoint=srv.endpoint, scheme="http")
    assert st.status is None and not st.running


def test_fails_describe_api_error(recorded):
    srv = recorded("error_auth_failure.json")
    with pytest.raises(tse.TSEError, match="AuthFailure.SignatureFailure"):
        tse.describe_instance("ins-7d3e1c2a", "ap-guangzhou", environ=CREDS, endpoint=srv.endpoint, scheme="http")


def test_fails_without_credentials():
    with pytest.raises(tse.TSEError, match="TENCENTCLOUD_SECRET_ID"):
        tse.describe_instance("ins-7d3e1c2a", "ap-guangzhou", environ={})


def test_wait_running_polls_through_restarting(recorded):
    srv = recorded("describe_sre_instances_restarting.json", "describe_sre_instances_restarting.json",
                   "describe_sre_instances_running.json")
    seen = []

    def describe(i, r):
        return tse.describe_instance(i, r, environ=CREDS, endpoint=srv.endpoint, scheme="http")

    st = tse.wait_running("ins-7d3e1c2a", "ap-guangzhou", timeout=30, poll=0.01, describe=describe,
                          on_poll=lambda s: seen.append(s.status))
    assert st.running and seen == ["restarting", "restarting", "running"]


def test_fails_wait_running_timeout():
    now = [0.0]
    with pytest.raises(tse.TSEError, match="still reports restarting after 5s"):
        tse.wait_running("ins-1", "ap-guangzhou", timeout=5, poll=1,
                         describe=lambda i, r: tse.InstanceStatus(i, "restarting"),
                         sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])


def test_keyring_fingerprints_read_where_the_session_delivers(tmp_path):
    """Local delivery reads an agent's serf/local.keyring on the runner (fingerprints only come out); the
    operator's command delivery cannot read, and a missing or malformed file names nobody."""
    from tsegossip.backends import delivery as dl
    from tsegossip.delivery import Delivery

    a, b = GossipKey(TEST_KEY), GossipKey.generate()
    ring = tmp_path / "serf" / "local.keyring"
    ring.parent.mkdir()
    ring.write_text(json.dumps([b.reveal(), a.reveal()]))
    target = dl.Target("web-1", "http://127.0.0.1:1", str(ring), "")
    ctx = dl.Context(secrets=[], hide_env=[], environ={})
    with dl.open_session(Delivery(), ctx) as local:
        assert local.keyring_fingerprints(target, str(ring), 5) == (b.fingerprint, a.fingerprint)
        assert local.keyring_fingerprints(target, str(tmp_path / "missing"), 5) is None
        (tmp_path / "bad").write_text("{not json")
        assert local.keyring_fingerprints(target, str(tmp_path / "bad"), 5) is None
    command = Delivery.from_doc({"method": "command", "command": ["/bin/true"]}, "delivery")
    with dl.open_session(command, ctx) as session:
        assert session.keyring_fingerprints(target, str(ring), 5) is None
