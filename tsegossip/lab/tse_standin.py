"""A local TSE control plane: the Tencent Cloud API shapes tencentcloud-sdk-python-tse sends and parses,
over real HTTP on loopback, for one Consul instance whose servers are a lab's real Consul servers.

What comes from where (../shared/facts/tse-api.md, SDK 3.1.195, API version 2020-12-07):
- documented (API 3.0 docs, the SDK, api.json/examples.json): POST / with the action in X-TC-Action,
  X-TC-Version 2020-12-07, TC3-HMAC-SHA256 signing (tse_signing.py), the success and error envelopes,
  the common error codes (AuthFailure.SignatureFailure / SecretIdNotFound / SignatureExpire /
  InvalidAuthorization, RequestLimitExceeded, InvalidAction, NoSuchVersion), the request model of
  DescribeSREInstances and every SREInstance field, the Status values;
- measured with the real SDK: HTTP 200 with `Content-Type: application/json` exactly on every reply,
  errors included (any other content type makes the SDK ignore an error envelope);
- assumed: an unknown InstanceId answers success with TotalCount 0 and an empty Content (the
  Terraform provider treats it so; no ResourceNotFound code is listed for this action); the InstanceId
  filter is the only one honoured; the Status sequence of a parameter save (running -> updating ->
  restarting -> running) and its timing; the Message texts other than SignatureFailure's.

The instance lives in <dir>/instance.json, written by `tsegossip lab tse up` and by the console
(tse_console.py) as it rolls the servers; the server reads it on every request, so the console can
run in another process. Requests are logged to <dir>/requests.jsonl: action, instance ids asked
for, answer code; never a header or a secret.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

from ..atomicfile import write_json
from .model import LabError
from .tse_signing import Refusal, verify

API_VERSION = "2020-12-07"
SERVICE = "tse"
INSTANCE_FILE = "instance.json"
REQUEST_LOG = "requests.jsonl"
# The throw-away test pair of ../shared/facts/tse-api.md: it signs nothing outside the stand-in.
TEST_SECRET_ID = "AKIDTESTONLY000000000000000000000000"
TEST_SECRET_KEY = "testsecretkey0000000000000000000"
STATUSES = ("creating", "create_fail", "running", "updating", "update_fail", "restarting", "restart_fail",
            "destroying", "destroy_fail")


class StandInError(LabError):
    """The stand-in's instance file is missing or unusable."""


def instance_path(workdir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(workdir), INSTANCE_FILE)


def read_instance(workdir: str | os.PathLike) -> dict:
    path = instance_path(workdir)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise StandInError(f"no TSE stand-in instance in {workdir} (run `tsegossip lab tse up` first)") from None


def write_instance(workdir: str | os.PathLike, doc: Mapping) -> None:
    write_json(instance_path(workdir), dict(doc), private=True)


def update_instance(workdir: str | os.PathLike, **changes: Any) -> dict:
    """Change fields of the instance; a status change is appended to its history (for tests and the bench)."""
    doc = read_instance(workdir)
    if "status" in changes and changes["status"] != doc.get("status"):
        doc.setdefault("history", []).append({"t": time.time(), "status": changes["status"]})
    doc.update(changes)
    write_instance(workdir, doc)
    return doc


def new_instance(workdir: str | os.PathLike, lab_dir: str, instance_id: str, region: str,
                 secrets: Mapping[str, str] | None = None, name: str = "consul-lab") -> dict:
    doc = {
        "instance_id": instance_id, "region": region, "name": name, "lab_dir": os.path.abspath(lab_dir),
        "status": "running", "history": [{"t": time.time(), "status": "running"}],
        "secrets": dict(secrets or {TEST_SECRET_ID: TEST_SECRET_KEY}),
        "faults": {},
    }
    os.makedirs(os.fspath(workdir), exist_ok=True)
    write_instance(workdir, doc)
    return doc


def sre_instance(doc: Mapping) -> dict:
    """One SREInstance with every output_required field (values of a plausible 3-server Consul instance)."""
    return {
        "InstanceId": doc["instance_id"], "Name": doc.get("name", "consul-lab"), "Edition": "1.14.11",
        "Status": doc["status"], "SpecId": "spec-lab00001", "Replica": 3, "Type": "consul",
        "VpcId": "vpc-lab00001", "SubnetIds": ["subnet-lab00001"], "EnableStorage": True,
        "StorageType": "CLOUD_PREMIUM", "StorageCapacity": 50, "Paymode": "POSTPAID", "EKSClusterID": "cls-lab0001",
        "CreateTime": "2026-12-01 00:00:00", "EnvInfos": [], "EngineRegion": doc["region"], "EnableInternet": False,
        "VpcInfos": [{"VpcId": "vpc-lab00001", "SubnetId": "subnet-lab00001", "IntranetAddress": "127.0.0.1"}],
        "ServiceGovernanceInfos": [], "Tags": [], "EnableConsoleInternet": False, "EnableConsoleIntranet": True,
        "ConfigInfoVisible": True, "ConsoleDefaultPwd": "", "TradeType": 0, "AutoRenewFlag": 0, "CurDeadline": "",
        "IsolateTime": "", "RegionInfos": [], "EKSType": "common", "FeatureVersion": "STANDARD",
        "EnableClientIntranet": False, "StorageOption": [],
    }


@dataclass(frozen=True)
class Logged:
    t: float
    action: str
    instance_ids: tuple[str, ...]
    code: str  # "ok" or the error code answered


class TSEStandIn:
    """The HTTP server; `with TSEStandIn(dir) as tse:` serves on 127.0.0.1:<free port> in a thread."""

    def __init__(self, workdir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time):
        self.workdir = os.path.abspath(os.fspath(workdir))
        read_instance(self.workdir)  # refuse to serve nothing
        self.clock = clock
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # the access log would carry nothing useful; requests.jsonl does
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = self.path.partition("?")[2]
                status, reply = standin.answer("POST", query, dict(self.headers), body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="tse-standin", daemon=True)

    # ------------------------------------------------------------------ serving
    @property
    def endpoint(self) -> str:
        """The override to give tsegossip (TSEGOSSIP_TSE_ENDPOINT): a URL."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "TSEStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "TSEStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def calls(self, action: str = "DescribeSREInstances") -> list[Logged]:
        with self._lock:
            return [c for c in self.log if c.action == action]

    # ------------------------------------------------------------------ answering
    def answer(self, method: str, query: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict]:
        request_id = str(uuid.uuid4())
        lower = {k.lower(): v for k, v in headers.items()}
        action = lower.get("x-tc-action", "")
        doc = read_instance(self.workdir)
        ids: tuple[str, ...] = ()
        refusal = verify(method, query, headers, body, doc.get("secrets") or {}, SERVICE, self.clock())
        if refusal is None and lower.get("x-tc-version") != API_VERSION:
            refusal = Refusal("NoSuchVersion", f"The API version `{lower.get('x-tc-version')}` does not exist.")
        if refusal is None:
            refusal = self._fault(doc)
        reply: dict
        if refusal is None:
            if action == "DescribeSREInstances":
                try:
                    params = json.loads(body or b"{}")
                except ValueError:
                    params = None
                if not isinstance(params, dict):
                    refusal = Refusal("InvalidParameterValue.BadRequestFormat", "The request body is not JSON.")
                else:
                    ids = _instance_ids(params)
                    listed = [sre_instance(doc)] if (not ids or doc["instance_id"] in ids) else []
                    reply = {"Response": {"TotalCount": len(listed), "Content": listed, "RequestId": request_id}}
            else:
                refusal = Refusal("InvalidAction", f"The action `{action}` is not supported by the stand-in.")
        if refusal is not None:
            reply = {"Response": {"Error": {"Code": refusal.code, "Message": refusal.message},
                                  "RequestId": request_id}}
        self._record(Logged(self.clock(), action, ids, refusal.code if refusal else "ok"))
        return 200, reply

    def _fault(self, doc: Mapping) -> Refusal | None:
        """Faults a test asked for in instance.json: {"rate_limit": N} answers the next N requests
        RequestLimitExceeded; {"delay_seconds": s} answers every request s seconds late (an SDK timeout)."""
        faults = dict(doc.get("faults") or {})
        delay = float(faults.get("delay_seconds") or 0)
        if delay:
            time.sleep(min(delay, 60.0))
        if int(faults.get("rate_limit") or 0) > 0:
            with self._lock:
                faults["rate_limit"] = int(faults["rate_limit"]) - 1
                update_instance(self.workdir, faults=faults)
            return Refusal("RequestLimitExceeded", "Your request frequency has exceeded the limit.")
        return None

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)
            with open(os.path.join(self.workdir, REQUEST_LOG), "a") as f:
                f.write(json.dumps({"t": entry.t, "action": entry.action, "instance_ids": list(entry.instance_ids),
                                    "code": entry.code}) + "\n")


def _instance_ids(params: Mapping) -> tuple[str, ...]:
    ids: list[str] = []
    for flt in params.get("Filters") or []:
        if isinstance(flt, dict) and flt.get("Name") == "InstanceId":
            ids.extend(str(v) for v in flt.get("Values") or [])
    return tuple(ids)
