"""A tiny stdlib HTTP server answering with recorded Consul API responses.

Shapes come from shared/facts/consul-api.md (Consul docs/source): /v1/agent/self in both
places of the verify flags, /v1/agent/members, /v1/operator/keyring JSON and its plain-text 500.
python-consul2 talks to it over real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEYRING_EMPTY_500 = (
    "4 errors occurred:\n"
    "\t* opsdc1 (LAN) error: 3/3 nodes reported failure\n"
    "\t* ops-node-1: Keyring is empty (encryption not enabled)\n"
    "\t* ops-node-2: Keyring is empty (encryption not enabled)\n"
    "\t* ops-node-3: Keyring is empty (encryption not enabled)\n\n"
)


def member(name: str, status: int = 1, role: str = "node") -> dict:
    return {"Name": name, "Addr": "127.0.0.1", "Port": 8301,
            "Tags": {"dc": "dc1", "role": role, "segment": "", "vsn": "2", "build": "1.15.2:5e08e229"},
            "Status": status, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}


def agent_self(name: str, encrypted: bool, vin: bool, vout: bool, shape: str = "1.15") -> dict:
    debug = {"EncryptKey": "hidden", "KeyFile": "hidden", "DataDir": "/consul/data"}
    flags = {"EncryptVerifyIncoming": vin, "EncryptVerifyOutgoing": vout}
    if shape == "1.15":
        debug["StaticRuntimeConfig"] = flags
    else:
        debug.update(flags)
    return {
        "Config": {"Datacenter": "dc1", "NodeName": name, "NodeID": "03f98bf7-0000", "Server": False,
                   "Revision": "5e08e229", "Version": "1.15.2"},
        "DebugConfig": debug,
        "Coord": None,
        "Member": member(name),
        "Stats": {"serf_lan": {"encrypted": "true" if encrypted else "false", "members": "3", "failed": "0",
                               "left": "0", "health_score": "0"}},
        "Meta": {"consul-network-segment": ""},
    }


def keyring_entry(keys: dict[str, int], primary: dict[str, int], num_nodes: int, wan: bool = False) -> dict:
    return {"WAN": wan, "Datacenter": "dc1", "Segment": "", "Keys": keys, "PrimaryKeys": primary,
            "NumNodes": num_nodes}


class FakeConsul:
    """routes: path -> (status, body); body str is sent as text/plain, anything else as JSON."""

    def __init__(self):
        self.routes: dict[str, tuple[int, object]] = {}
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _answer(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                fake.requests.append({"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                                      "headers": dict(self.headers), "body": self.rfile.read(length)})
                status, body = fake.routes.get(parts.path, (404, "not found"))
                if callable(body):
                    status, body = body(parts, self.headers)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeConsul:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def fake_consul():
    fc = FakeConsul().start()
    try:
        yield fc
    finally:
        fc.stop()
