"""TSE servers: what to save in the console is shown (key redacted), then TSE and the servers are watched."""

from __future__ import annotations

from tf.iface import CreateContext

from tests.provider.tfwire import ENV, KEY, ctx, errors, tse_state
from tests.support import TEST_KEY
from tsegossip.backends.tse import InstanceStatus
from tsegossip.provider.resources import ServerParams


def test_tse_shows_redacted_json_then_waits_for_running_and_flags(cluster):
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["web-1"].phase  # plaintext
    polls = []

    def describe(instance_id, region):
        polls.append(cluster.now)
        if len(polls) == 3:  # the operator saved the console; TSE rolls the servers
            cluster.nodes["server-1"].phase = cluster.nodes["server-1"].phase.up()
        # the first call (credentials and instance) finds it running; then TSE rolls
        return InstanceStatus(instance_id, "running" if len(polls) in (1, 5) else "restarting")

    world = cluster.world(ENV)
    world.describe_tse = describe
    c = ctx(CreateContext)
    new = ServerParams(world=world).create(c, tse_state(cluster))
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"server-1": "accept-encrypted"} and len(polls) == 5
    shown = next(line for line in cluster.lines if "System parameters" in line)
    assert KEY.redacted in shown and TEST_KEY not in shown and '"encrypt_verify_incoming": false' in shown


def test_fails_tse_timeout_repeats_what_to_save(cluster):
    world = cluster.world(ENV)
    world.describe_tse = lambda i, r: InstanceStatus(i, "running")
    c = ctx(CreateContext)
    state = tse_state(cluster)
    state["timeout_seconds"] = 5
    for n in cluster.nodes.values():
        n.phase = cluster.nodes["web-1"].phase
    assert ServerParams(world=world).create(c, state) is None
    (err,) = errors(c)
    assert "did not reach accept-encrypted within 5s" in err.summary
    assert KEY.redacted in err.detail and TEST_KEY not in err.detail


# ------------------------------------------------------------ the real SDK against the stand-in
import pytest  # noqa: E402

from tsegossip.backends import tse  # noqa: E402
from tsegossip.lab import tse_standin  # noqa: E402
from tsegossip.lab.tse_standin import TEST_SECRET_ID, TEST_SECRET_KEY, TSEStandIn  # noqa: E402
from tsegossip.phases import Phase  # noqa: E402


@pytest.fixture
def standin(tmp_path):
    tse_standin.new_instance(tmp_path / "tse", str(tmp_path / "lab"), "ins-abc123", "ap-guangzhou")
    with TSEStandIn(tmp_path / "tse") as s:
        yield s


def sdk_env(standin, **changes):
    env = dict(ENV, TENCENTCLOUD_SECRET_ID=TEST_SECRET_ID, TENCENTCLOUD_SECRET_KEY=TEST_SECRET_KEY,
               TSEGOSSIP_TSE_ENDPOINT=standin.endpoint, TSEGOSSIP_TSE_REQUEST_TIMEOUT="2")
    env.update(changes)
    return env


def console_roll(cluster, standin, statuses, phase_after, at=2):
    """A scripted operator: from the `at`-th DescribeSREInstances on, the instance goes through
    `statuses` one per call, and the servers show `phase_after` once it runs again."""
    calls = []

    def describe(instance_id, region):
        calls.append(instance_id)
        step = len(calls) - at
        if 0 <= step < len(statuses):
            tse_standin.update_instance(standin.workdir, status=statuses[step])
            if statuses[step] in ("running", "restart_fail"):
                cluster.nodes["server-1"].phase = Phase(phase_after)
        return tse.describe_instance(instance_id, region, environ=env)

    env = sdk_env(standin)
    world = cluster.world(env)
    world.describe_tse = describe
    return world, calls


def tse_at(cluster, **kw):
    state = tse_state(cluster)
    state.update(kw)
    return state


def plaintext(cluster):
    for n in cluster.nodes.values():
        n.phase = Phase.PLAINTEXT


def test_the_stand_in_rolls_and_the_server_step_finishes_on_evidence(cluster, standin):
    plaintext(cluster)
    world, calls = console_roll(cluster, standin, ["updating", "restarting", "restarting", "running"],
                                "accept-encrypted")
    c = ctx(CreateContext)
    new = ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01))
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"server-1": "accept-encrypted"}
    text = "\n".join(cluster.lines)
    assert "found: consul-lab, type consul, running" in text
    assert "statuses seen: running -> updating -> restarting -> running" in text
    assert text.index("found: consul-lab") < text.index("System parameters")
    assert "tsegossip tse-parameters accept-encrypted --key-env TSEGOSSIP_KEY" in text
    assert TEST_KEY not in text and TEST_SECRET_KEY not in text


@pytest.mark.parametrize("changes, code", [
    ({"TENCENTCLOUD_SECRET_KEY": "not-the-key"}, "AuthFailure.SignatureFailure"),
    ({"TENCENTCLOUD_SECRET_ID": "AKIDUNKNOWN0000000000000000000000000"}, "AuthFailure.SecretIdNotFound"),
    ({"TENCENTCLOUD_SECRET_KEY": ""}, "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY must be set"),
    ({"TSEGOSSIP_TSE_ENDPOINT": "127.0.0.1:1"}, "TSEGOSSIP_TSE_ENDPOINT: '127.0.0.1:1' is not an endpoint URL"),
])
def test_wrong_credentials_are_refused_before_any_instruction(cluster, standin, changes, code):
    plaintext(cluster)
    world = cluster.world(sdk_env(standin, **changes))
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster)) is None
    (err,) = errors(c)
    assert err.summary == "Cannot ask TSE about instance ins-abc123" and code in err.detail
    assert not any("System parameters" in line for line in cluster.lines)
    assert "not-the-key" not in err.detail + "\n".join(cluster.lines)


def test_an_instance_not_listed_is_refused_before_any_instruction(cluster, standin):
    plaintext(cluster)
    world = cluster.world(sdk_env(standin))
    c = ctx(CreateContext)
    state = tse_state(cluster)
    state["instance_id"] = "ins-00000000"
    assert ServerParams(world=world).create(c, state) is None
    (err,) = errors(c)
    assert "ins-00000000 is not listed in region ap-guangzhou" in err.summary and "empty Content" in err.detail
    assert not any("System parameters" in line for line in cluster.lines)


def test_a_status_stuck_past_the_maximum_wait_stops_with_what_was_seen(cluster, standin):
    plaintext(cluster)
    world, _ = console_roll(cluster, standin, ["updating"], "accept-encrypted")
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, timeout_seconds=3, poll_seconds=0.5)) is None
    (err,) = errors(c)
    assert "did not reach accept-encrypted within 3s" in err.summary
    assert "Last seen: status updating (statuses seen: running -> updating)" in err.detail
    assert "servers: plaintext" in err.detail


@pytest.mark.parametrize("failed", ["update_fail", "restart_fail"])
def test_a_failed_task_is_refused_naming_the_status(cluster, standin, failed):
    plaintext(cluster)
    world, _ = console_roll(cluster, standin, ["updating", failed], "accept-encrypted")
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01)) is None
    (err,) = errors(c)
    assert err.summary == f"TSE instance ins-abc123 reports {failed}"


def test_servers_rolled_with_the_wrong_parameters_are_refused_before_any_client(cluster, standin):
    # Step 1 asks for both verify flags false; the operator saved verify_outgoing on.
    plaintext(cluster)
    world, _ = console_roll(cluster, standin, ["updating", "restarting", "running"], "send-encrypted")
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01)) is None
    (err,) = errors(c)
    assert "rolled with the wrong parameters: send-encrypted, not accept-encrypted" in err.summary
    assert "No client was restarted" in err.detail and KEY.redacted in err.detail and TEST_KEY not in err.detail


def test_a_roll_that_changed_nothing_is_refused_once_the_instance_runs_again(cluster, standin):
    plaintext(cluster)
    world, _ = console_roll(cluster, standin, ["updating", "restarting", "running"], "plaintext")
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01)) is None
    (err,) = errors(c)
    assert "TSE rolled instance ins-abc123 but the servers are not in accept-encrypted" in err.summary
    assert "running -> updating -> restarting -> running" in err.detail


def test_an_instance_busy_with_another_task_is_refused_before_any_instruction(cluster, standin):
    plaintext(cluster)
    tse_standin.update_instance(standin.workdir, status="restarting")
    world = cluster.world(sdk_env(standin))
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster)) is None
    (err,) = errors(c)
    assert "is restarting, not running" in err.summary


def test_interactive_mode_asks_once_after_the_instructions_and_q_stops_before_anything(cluster, standin):
    plaintext(cluster)
    world, calls = console_roll(cluster, standin, ["updating", "restarting", "running"], "accept-encrypted")
    world.environ["TSEGOSSIP_TSE_INTERACTIVE"] = "1"
    asked = []
    world.ask = lambda prompt: asked.append((prompt, list(cluster.lines))) or "q\n"
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01)) is None
    (err,) = errors(c)
    assert err.summary == "Stopped by the operator before the console save" and "Nothing was changed" in err.detail
    (prompt, lines_before), = asked
    assert "press Enter" in prompt and any("System parameters" in line for line in lines_before)
    assert len(calls) == 1  # only the credentials check: no wait began
    assert tse_standin.read_instance(standin.workdir)["status"] == "running"


@pytest.mark.parametrize("answer, note", [("\n", "the operator says the console is saved"),
                                          (None, "no terminal to ask on")])
def test_interactive_mode_then_watches_the_roll_on_evidence(cluster, standin, answer, note):
    plaintext(cluster)
    world, _ = console_roll(cluster, standin, ["updating", "restarting", "running"], "accept-encrypted")
    world.environ["TSEGOSSIP_TSE_INTERACTIVE"] = "1"
    world.ask = lambda prompt: answer
    c = ctx(CreateContext)
    new = ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01))
    assert not errors(c), c.diagnostics
    assert new["observed"] == {"server-1": "accept-encrypted"}
    assert any(note in line for line in cluster.lines)


def test_without_interactive_mode_nothing_is_asked(cluster, standin):
    plaintext(cluster)
    world, _ = console_roll(cluster, standin, ["updating", "restarting", "running"], "accept-encrypted")
    world.ask = lambda prompt: pytest.fail("asked in a pipeline")
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01)) is not None


def test_an_sdk_timeout_on_the_first_call_is_refused_before_any_instruction(cluster, standin, monkeypatch):
    monkeypatch.setattr(tse, "RETRY_ATTEMPTS", 1)
    plaintext(cluster)
    tse_standin.update_instance(standin.workdir, faults={"delay_seconds": 2.5})
    world = cluster.world(sdk_env(standin, TSEGOSSIP_TSE_REQUEST_TIMEOUT="1"))
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster)) is None
    (err,) = errors(c)
    assert err.summary == "Cannot ask TSE about instance ins-abc123" and "ClientNetworkError" in err.detail
    assert not any("System parameters" in line for line in cluster.lines)


def test_request_limit_exceeded_while_waiting_is_retried_and_the_roll_still_finishes(cluster, standin, monkeypatch):
    monkeypatch.setattr(tse, "RETRY_BASE_SECONDS", 0.01)
    plaintext(cluster)
    world, calls = console_roll(cluster, standin, ["updating", "restarting", "running"], "accept-encrypted")
    real = world.describe_tse

    def limited(instance_id, region):
        if len(calls) == 2:
            tse_standin.update_instance(standin.workdir, faults={"rate_limit": 2})
        return real(instance_id, region)

    world.describe_tse = limited
    c = ctx(CreateContext)
    assert ServerParams(world=world).create(c, tse_at(cluster, poll_seconds=0.01)) is not None, c.diagnostics
    assert [x.code for x in standin.calls()].count("RequestLimitExceeded") == 2
