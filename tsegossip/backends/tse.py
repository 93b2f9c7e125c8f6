"""Tencent Cloud TSE: is the instance running again after its parameters were saved?

TSE has no API for the gossip parameters (shared/facts/tse.md): they are saved in the
console, after which the servers roll for 3-8 minutes. What the API does offer is
DescribeSREInstances, whose Status goes back to `running` when the roll is done. This
module asks exactly that, with the official SDK (tencentcloud-sdk-python-tse,
module tencentcloud.tse.v20201207): credentials from TENCENTCLOUD_SECRET_ID /
TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SECRET_TOKEN when set), region from the spec.

NO REAL TSE INSTANCE HAS ANSWERED THESE CALLS: Tencent Cloud cannot be reached from where
this was written. The same code runs against the local stand-in (tsegossip/lab/tse_standin.py:
TC3 signatures verified, the documented shapes, real lab servers rolled by its console) and
against recorded replies (tests/provider/test_backends.py), selected only by the endpoint.

The endpoint: Tencent Cloud's tse.tencentcloudapi.com unless TSEGOSSIP_TSE_ENDPOINT names another
as a URL (`http://127.0.0.1:8765` for the stand-in, `https://tse.ap-guangzhou.tencentcloudapi.com`
for a regional one). The SDK wants scheme and host apart (a scheme inside its endpoint is sent as
the Host header and signed so), hence the split here. TSEGOSSIP_TSE_REQUEST_TIMEOUT (seconds,
default 10) bounds each call; RequestLimitExceeded and network errors are retried with exponential
backoff (RETRY_ATTEMPTS calls in all) by the SDK's StandardRetryer, its loop fixed (see _retryer).
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit
from dataclasses import dataclass
from typing import Callable, Mapping

RUNNING = "running"
FAILED = ("create_fail", "update_fail", "restart_fail", "destroy_fail")
DEFAULT_ENDPOINT = "tse.tencentcloudapi.com"
ENDPOINT_ENV = "TSEGOSSIP_TSE_ENDPOINT"
TIMEOUT_ENV = "TSEGOSSIP_TSE_REQUEST_TIMEOUT"
DEFAULT_REQUEST_TIMEOUT = 10.0
RETRY_ATTEMPTS = 4          # RequestLimitExceeded / network errors: 1 + 3 retries
RETRY_BASE_SECONDS = 0.5    # backoff 0.5 s, 1 s, 2 s


class TSEError(RuntimeError):
    """Describing the instance failed; the message is meant for a person (no secrets in it)."""


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    status: str | None  # None when the instance is not listed
    name: str | None = None
    engine_type: str | None = None
    request_id: str | None = None

    @property
    def running(self) -> bool:
        return self.status == RUNNING


def endpoint_of(environ: Mapping[str, str]) -> tuple[str, str]:
    """(scheme, host[:port]) of TSEGOSSIP_TSE_ENDPOINT, or Tencent Cloud's; TSEError naming the variable."""
    text = (environ.get(ENDPOINT_ENV) or "").strip()
    if not text:
        return "https", DEFAULT_ENDPOINT
    parts = urlsplit(text)
    try:
        parts.port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        raise TSEError(f"{ENDPOINT_ENV}: {text!r} is not an endpoint URL; expected http(s)://host[:port] with no "
                       f"path, e.g. https://{DEFAULT_ENDPOINT} or http://127.0.0.1:8765 (the local stand-in)")
    return parts.scheme, parts.netloc


def request_timeout(environ: Mapping[str, str]) -> float:
    text = (environ.get(TIMEOUT_ENV) or "").strip()
    if not text:
        return DEFAULT_REQUEST_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 300:
        raise TSEError(f"{TIMEOUT_ENV}: {text!r} is not a number of seconds between 1 and 300")
    return value


def _retryer():
    import logging

    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.retry import StandardRetryer

    class Retryer(StandardRetryer):
        """The SDK's StandardRetryer with its loop fixed.

        Its codes are the right ones (ClientNetworkError, ServerNetworkError, RequestLimitExceeded*),
        but in 3.1.195 `send_request` keeps the previous attempt's exception across iterations: a
        retry that succeeds is taken for a failure, retried again and finally raised (measured
        against the stand-in: 2 x RequestLimitExceeded, then 2 x ok, then the SDK raised
        RequestLimitExceeded). This one forgets each attempt's error before the next.
        """

        def send_request(self, fn):
            err = None
            for n in range(self._max_attempts):
                try:
                    return fn()
                except TencentCloudSDKException as e:
                    err = e
                if not self.should_retry(None, err) or n + 1 >= self._max_attempts:
                    raise err
                sleep = self._backoff_fn(n)
                self.on_retry(n, sleep, None, err)
                time.sleep(sleep)
            raise err  # max_attempts < 1

    # Quiet logger: ours say what a person needs; the SDK's would print request ids on each retry.
    return Retryer(max_attempts=RETRY_ATTEMPTS, backoff_fn=lambda n: RETRY_BASE_SECONDS * (2 ** n),
                   logger=logging.getLogger("tsegossip.tse.retry"))


def _client(region: str, environ: Mapping[str, str], endpoint: str | None, scheme: str | None,
            timeout: float | None):
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.tse.v20201207 import tse_client

    sid = environ.get("TENCENTCLOUD_SECRET_ID")
    skey = environ.get("TENCENTCLOUD_SECRET_KEY")
    if not sid or not skey:
        raise TSEError("TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY must be set to ask TSE about the instance")
    try:
        cred = credential.Credential(sid, skey, environ.get("TENCENTCLOUD_SECRET_TOKEN") or None)
    except TencentCloudSDKException as err:
        raise TSEError(f"Tencent Cloud credentials rejected: {err.get_message()}") from None
    if endpoint is None:
        scheme, endpoint = endpoint_of(environ)
    seconds = timeout if timeout is not None else request_timeout(environ)
    http = HttpProfile(endpoint=endpoint, protocol=scheme or "https", reqTimeout=max(1, int(seconds)))
    return tse_client.TseClient(cred, region, ClientProfile(httpProfile=http, retryer=_retryer()))


def describe_instance(instance_id: str, region: str, environ: Mapping[str, str] | None = None,
                      endpoint: str | None = None, scheme: str | None = None,
                      timeout: float | None = None) -> InstanceStatus:
    """DescribeSREInstances filtered by InstanceId; raises TSEError with the API's code and message."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.tse.v20201207 import models

    env = os.environ if environ is None else environ
    client = _client(region, env, endpoint, scheme, timeout)
    req = models.DescribeSREInstancesRequest()
    req.from_json_string(
        '{"Filters": [{"Name": "InstanceId", "Values": [%s]}], "Limit": 10, "Offset": 0}'
        % _json_str(instance_id)
    )
    try:
        resp = client.DescribeSREInstances(req)
    except TencentCloudSDKException as err:
        raise TSEError(f"DescribeSREInstances({instance_id}, {region}) failed: {err.get_code()}: "
                       f"{err.get_message()} (RequestId {err.get_request_id()})") from None
    for inst in resp.Content or []:
        if inst.InstanceId == instance_id:
            return InstanceStatus(instance_id=instance_id, status=inst.Status, name=inst.Name,
                                  engine_type=inst.Type, request_id=resp.RequestId)
    return InstanceStatus(instance_id=instance_id, status=None, request_id=resp.RequestId)


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


def wait_running(instance_id: str, region: str, timeout: float, poll: float,
                 describe: Callable[[str, str], InstanceStatus] | None = None,
                 on_poll: Callable[[InstanceStatus], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> InstanceStatus:
    """Poll until the instance reports `running`; TSEError on a *_fail status, a missing instance or timeout."""
    from ..waiting import wait_until

    describe = describe or describe_instance

    def look() -> tuple[bool, InstanceStatus]:
        st = describe(instance_id, region)
        if on_poll:
            on_poll(st)
        if st.status is None:
            raise TSEError(f"TSE instance {instance_id} is not listed in region {region}")
        if st.status in FAILED:
            raise TSEError(f"TSE instance {instance_id} reports {st.status}; look at the console's task log")
        return st.running, st

    waited = wait_until(look, timeout=timeout, interval=poll, clock=clock, sleep=sleep)
    if not waited.ok:
        raise TSEError(f"TSE instance {instance_id} still reports {waited.value.status} after {timeout:.0f}s")
    return waited.value
