"""The TSE stand-in: TC3 signatures as Tencent Cloud checks them, and the real SDK talking to it over HTTP."""

from __future__ import annotations

import json

import pytest

from tsegossip.backends import tse
from tsegossip.lab import tse_console, tse_lab, tse_standin
from tsegossip.lab.tse_signing import canonical_request, signature, verify
from tsegossip.lab.tse_standin import TEST_SECRET_ID, TEST_SECRET_KEY, TSEStandIn

CAPTURED_BODY = b'{"Filters": [{"Name": "InstanceId", "Values": ["ins-0a1b2c3d"]}], "Limit": 10, "Offset": 0}'
CAPTURED_AUTH = ("TC3-HMAC-SHA256 Credential=AKIDTESTONLY000000000000000000000000/2026-12-02/tse/tc3_request, "
                 "SignedHeaders=content-type;host, "
                 "Signature=83623ebf2b7485b61c0460bddddabd370f28f94a0130245a4dde6931c9b75a2e")
CAPTURED_HEADERS = {"Content-Type": "application/json", "Host": "127.0.0.1:18765", "X-TC-Timestamp": "1796221301",
                    "Authorization": CAPTURED_AUTH}


def test_the_sdk_request_captured_in_the_facts_verifies_and_a_tampered_one_does_not():
    secrets = {TEST_SECRET_ID: TEST_SECRET_KEY}
    assert verify("POST", "", CAPTURED_HEADERS, CAPTURED_BODY, secrets, "tse", now=1796221301 + 10) is None
    tampered = CAPTURED_BODY.replace(b"0a1b2c3d", b"0a1b2c3e")
    assert verify("POST", "", CAPTURED_HEADERS, tampered, secrets, "tse", 1796221301).code == \
        "AuthFailure.SignatureFailure"
    assert verify("POST", "", CAPTURED_HEADERS, CAPTURED_BODY, {TEST_SECRET_ID: "other"}, "tse", 1796221301).code == \
        "AuthFailure.SignatureFailure"
    assert verify("POST", "", CAPTURED_HEADERS, CAPTURED_BODY, {}, "tse", 1796221301).code == \
        "AuthFailure.SecretIdNotFound"
    assert verify("POST", "", CAPTURED_HEADERS, CAPTURED_BODY, secrets, "tse", 1796221301 + 301).code == \
        "AuthFailure.SignatureExpire"
    assert verify("POST", "", CAPTURED_HEADERS, CAPTURED_BODY, secrets, "cvm", 1796221301).code == \
        "AuthFailure.SignatureFailure"
    no_auth = {k: v for k, v in CAPTURED_HEADERS.items() if k != "Authorization"}
    assert verify("POST", "", no_auth, CAPTURED_BODY, secrets, "tse", 1796221301).code == \
        "AuthFailure.InvalidAuthorization"


def test_the_official_documentation_example_signature_is_reproduced():
    body = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    canonical = canonical_request("POST", "", "application/json; charset=utf-8", "cvm.tencentcloudapi.com", body)
    assert canonical.endswith("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", 1551113065, "cvm", canonical) == \
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


@pytest.fixture
def standin(tmp_path):
    tse_standin.new_instance(tmp_path / "tse", str(tmp_path / "lab"), "ins-1ab0c0de", "ap-guangzhou")
    with TSEStandIn(tmp_path / "tse") as s:
        yield s


def env_for(standin, secret_key=TEST_SECRET_KEY, secret_id=TEST_SECRET_ID):
    return {"TENCENTCLOUD_SECRET_ID": secret_id, "TENCENTCLOUD_SECRET_KEY": secret_key,
            tse.ENDPOINT_ENV: standin.endpoint, tse.TIMEOUT_ENV: "2"}


def test_the_real_sdk_describes_the_instance_through_the_endpoint_override(standin):
    st = tse.describe_instance("ins-1ab0c0de", "ap-guangzhou", environ=env_for(standin))
    assert (st.status, st.engine_type, st.name) == ("running", "consul", "consul-lab")
    assert tse.describe_instance("ins-00000000", "ap-guangzhou", environ=env_for(standin)).status is None
    assert [c.code for c in standin.calls()] == ["ok", "ok"]
    logged = (standin.workdir + "/" + tse_standin.REQUEST_LOG)
    text = open(logged).read()
    assert TEST_SECRET_KEY not in text and TEST_SECRET_ID not in text and "ins-00000000" in text


def test_a_wrong_secret_key_and_an_unknown_secret_id_are_refused_by_code(standin):
    with pytest.raises(tse.TSEError, match="AuthFailure.SignatureFailure") as bad_key:
        tse.describe_instance("ins-1ab0c0de", "ap-guangzhou", environ=env_for(standin, secret_key="wrong"))
    assert "wrong" not in str(bad_key.value)
    with pytest.raises(tse.TSEError, match="AuthFailure.SecretIdNotFound"):
        tse.describe_instance("ins-1ab0c0de", "ap-guangzhou",
                              environ=env_for(standin, secret_id="AKIDUNKNOWN0000000000000000000000000"))


def test_request_limit_exceeded_is_retried_with_backoff_and_then_answers(standin, monkeypatch):
    monkeypatch.setattr(tse, "RETRY_BASE_SECONDS", 0.05)
    tse_standin.update_instance(standin.workdir, faults={"rate_limit": 2})
    st = tse.describe_instance("ins-1ab0c0de", "ap-guangzhou", environ=env_for(standin))
    assert st.running
    assert [c.code for c in standin.calls()] == ["RequestLimitExceeded", "RequestLimitExceeded", "ok"]


def test_request_limit_exceeded_past_the_attempts_names_the_code(standin, monkeypatch):
    monkeypatch.setattr(tse, "RETRY_BASE_SECONDS", 0.01)
    tse_standin.update_instance(standin.workdir, faults={"rate_limit": 10})
    with pytest.raises(tse.TSEError, match="RequestLimitExceeded"):
        tse.describe_instance("ins-1ab0c0de", "ap-guangzhou", environ=env_for(standin))
    assert len(standin.calls()) == tse.RETRY_ATTEMPTS


def test_an_sdk_timeout_is_a_tse_error_naming_the_network(standin, monkeypatch):
    monkeypatch.setattr(tse, "RETRY_ATTEMPTS", 1)
    tse_standin.update_instance(standin.workdir, faults={"delay_seconds": 3})
    env = env_for(standin)
    env[tse.TIMEOUT_ENV] = "1"
    with pytest.raises(tse.TSEError, match="ClientNetworkError"):
        tse.describe_instance("ins-1ab0c0de", "ap-guangzhou", environ=env)


@pytest.mark.parametrize("value", ["127.0.0.1:8765", "ftp://127.0.0.1", "http://127.0.0.1:8765/v3", "http://",
                                   "http://127.0.0.1:99999"])
def test_an_endpoint_override_that_is_not_a_url_is_refused_naming_the_variable(value):
    with pytest.raises(tse.TSEError, match=rf"TSEGOSSIP_TSE_ENDPOINT: .* is not an endpoint URL"):
        tse.endpoint_of({tse.ENDPOINT_ENV: value})
    assert tse.endpoint_of({}) == ("https", "tse.tencentcloudapi.com")
    assert tse.ENDPOINT_ENV == tse_lab.ENDPOINT_ENV
    assert tse.endpoint_of({tse.ENDPOINT_ENV: "http://127.0.0.1:8765"}) == ("http", "127.0.0.1:8765")


@pytest.mark.parametrize("params, message", [
    ({"encrypt": "", "encrypt_verify_incoming": "yes"}, "encrypt_verify_incoming: 'yes' is not a boolean"),
    ({"encrypt": "not-a-key"}, "encrypt: not a gossip key"),
    ({"encrypt": "", "encrypt_verify_outgoing": True}, "encrypt is empty but a verify flag is true"),
    ({"encrypt": "", "acl": True}, "unknown parameter(s) acl"),
])
def test_the_console_refuses_what_the_console_would(params, message):
    with pytest.raises(tse_console.ConsoleError) as err:
        tse_console.check_parameters(params)
    assert message in str(err.value)
