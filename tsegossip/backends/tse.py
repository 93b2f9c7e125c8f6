"""Tencent Cloud TSE: is the instance running again after its parameters were saved?

TSE has no API for the gossip parameters (shared/facts/tse.md): they are saved in the
console, after which the servers roll for 3-8 minutes. What the API does offer is
DescribeSREInstances, whose Status goes back to `running` when the roll is done. This
module asks exactly that, with the official SDK (tencentcloud-sdk-python-tse,
module tencentcloud.tse.v20201207): credentials from TENCENTCLOUD_SECRET_ID /
TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SECRET_TOKEN when set), region from the spec.

TESTED ONLY AGAINST RECORDED SHAPES. Tencent Cloud cannot be reached from where this
was written; tests/provider/test_tse_backend.py points the SDK's HttpProfile at a local
HTTP server that returns recorded response JSON (tests/provider/fixtures/), so the real
SDK path runs (TC3 signing, request building, response parsing), but no real TSE
instance has answered these calls.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Mapping

RUNNING = "running"
FAILED = ("create_fail", "update_fail", "restart_fail", "destroy_fail")
DEFAULT_ENDPOINT = "tse.tencentcloudapi.com"


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


def _client(region: str, environ: Mapping[str, str], endpoint: str | None, scheme: str | None, timeout: float):
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
    http = HttpProfile(endpoint=endpoint or environ.get("TSEGOSSIP_TSE_ENDPOINT") or DEFAULT_ENDPOINT,
                       protocol=scheme or environ.get("TSEGOSSIP_TSE_SCHEME") or "https", reqTimeout=int(timeout))
    return tse_client.TseClient(cred, region, ClientProfile(httpProfile=http))


def describe_instance(instance_id: str, region: str, environ: Mapping[str, str] | None = None,
                      endpoint: str | None = None, scheme: str | None = None, timeout: float = 10) -> InstanceStatus:
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
