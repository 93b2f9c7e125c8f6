"""What Terraform hands the resources in these tests: contexts, attribute dicts as it sends them
(every attribute, unset ones None, computed ones Unknown), and the diagnostics that come back."""

from __future__ import annotations

from tf.types import Unknown
from tf.utils import Diagnostics

from tests.provider.fakeworld import SERVER, addr
from tests.support import TEST_KEY, OTHER_KEY
from tsegossip.keys import GossipKey


KEY = GossipKey(TEST_KEY)
OTHER = OTHER_KEY
ENV = {"TSEGOSSIP_KEY": TEST_KEY}


def ctx(kind):
    return kind(Diagnostics(), "tsegossip_test")


def errors(c):
    return [d for d in c.diagnostics.diagnostics if d.severity == "error"]


def warnings(c):
    return [d for d in c.diagnostics.diagnostics if d.severity == "warning"]


def client_state(cluster, names, **kw):
    state = {
        "id": Unknown, "rollout": "lab", "stack": "02-web-accept", "previous_stack": "01-servers-accept",
        "role": "web", "phase": "accept-encrypted", "from_phase": "plaintext", "allow_jump": None,
        "key_env": "TSEGOSSIP_KEY", "key_fingerprint": KEY.fingerprint, "http_addr": SERVER,
        "token_env": None, "cacert_env": None, "client_cert_env": None, "client_key_env": None,
        "timeout_seconds": 10, "poll_seconds": 1, "batch_size": 1, "joining": None,
        "nodes": cluster.addresses(names), "config_path": cluster.config_path,
        "restart_command": cluster.restart_command, "observed": Unknown,
    }
    state.update(kw)
    return state


def server_state(cluster, **kw):
    state = client_state(cluster, ["server-1", "server-2"], role="servers", stack="01-servers-send",
                         previous_stack="00-servers-accept", from_phase="accept-encrypted", phase="send-encrypted",
                         server_type="self-managed", instance_id=None, region=None)
    state.pop("batch_size"), state.pop("joining")
    state.update(kw)
    return state


def tse_state(cluster, **kw):
    return server_state(cluster, server_type="tse", instance_id="ins-abc123", region="ap-guangzhou", nodes=None,
                        config_path=None, restart_command=None, http_addr=addr("server-1"), from_phase="plaintext",
                        phase="accept-encrypted", timeout_seconds=None, **kw)


def gate_state(cluster, expected, **kw):
    state = {"id": Unknown, "rollout": "lab", "stack": "02-web-accept", "when": "before",
             "previous_stack": "01-servers-accept", "http_addr": SERVER, "expected": expected,
             "addresses": cluster.addresses(), "key_env": "TSEGOSSIP_KEY", "key_fingerprint": KEY.fingerprint,
             "token_env": None, "cacert_env": None, "client_cert_env": None, "client_key_env": None,
             "timeout_seconds": 3, "verdict": Unknown}
    state.update(kw)
    return state
