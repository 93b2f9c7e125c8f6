"""TC3-HMAC-SHA256 as a Tencent Cloud API server checks it: the stand-in's side of the SDK's signature.

Written from Tencent Cloud's "签名方法 v3" (API 3.0 signature v3) and the SDK's own signer
(tencentcloud/common/sign.py, abstract_client._get_tc3_signature), as ../shared/facts/tse-api.md
records them: the canonical request covers the method, "/", the raw query, the content-type and
host headers verbatim, and the sha256 of the raw body bytes; the key is derived from the date of
the request's timestamp, the service and "tc3_request". Which check fails first, and the codes of
the fallbacks, are our choice; the codes themselves are Tencent Cloud's common error codes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

ALGORITHM = "TC3-HMAC-SHA256"
WINDOW_SECONDS = 300  # "Timestamp 和服务器时间相差不得超过五分钟"

_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z0-9]+)/tc3_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$")


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def canonical_request(method: str, query: str, content_type: str, host: str, body: bytes,
                      unsigned_payload: bool = False) -> str:
    payload = b"UNSIGNED-PAYLOAD" if unsigned_payload else body
    return "\n".join([method, "/", query, f"content-type:{content_type}\nhost:{host}\n", "content-type;host",
                      hashlib.sha256(payload).hexdigest()])


def signature(secret_key: str, timestamp: int, service: str, canonical: str) -> str:
    date = datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(method: str, query: str, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str],
           service: str, now: float) -> Refusal | None:
    """None when the request is signed by a known SecretId for this service within the window."""
    lower = {k.lower(): v for k, v in headers.items()}
    found = _AUTH.match(lower.get("authorization", ""))
    if not found:
        return Refusal("AuthFailure.InvalidAuthorization",
                       "Authorization header is not in the Tencent Cloud TC3-HMAC-SHA256 form.")
    if found["signed"] != "content-type;host":
        return Refusal("AuthFailure.InvalidAuthorization", "SignedHeaders must be content-type;host.")
    secret_key = secrets.get(found["id"])
    if secret_key is None:
        return Refusal("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your "
                       "SecretId is correct.")
    try:
        timestamp = int(lower.get("x-tc-timestamp", ""))
    except ValueError:
        return Refusal("MissingParameter", "The request is missing the X-TC-Timestamp header.")
    if abs(now - timestamp) > WINDOW_SECONDS:
        return Refusal("AuthFailure.SignatureExpire", "Signature expired, the timestamp is more than five "
                       "minutes away from the server time.")
    date = datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    if found["service"] != service or found["date"] != date:
        return Refusal("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                       "Please check your signature is correct.")
    canonical = canonical_request(method, query, lower.get("content-type", ""), lower.get("host", ""), body,
                                  lower.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD")
    if not hmac.compare_digest(signature(secret_key, timestamp, service, canonical), found["sig"]):
        return Refusal("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                       "Please check your signature is correct.")
    return None
