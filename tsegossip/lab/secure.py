"""A secure lab: ACLs on (default deny) and HTTPS on every agent's HTTP API.

Made with Consul's own tools, as an operator would: `consul tls ca create` and `consul tls cert
create -server|-client` in <workdir>/tls, and a management token generated here and kept only in
<workdir>/acl-management.token (0600) and the agents' own base configs (0600). It is the servers'
`initial_management` token and every agent's `agent` token: the lab harness's own. tsegossip gets
a token of its own with the least privilege it needs (`create_token(cluster, TSEGOSSIP_RULES)`),
as a platform team would issue it.
"""
from __future__ import annotations

import os
import subprocess
import urllib.error
import uuid

from ..atomicfile import write_text
from ..waiting import wait_until
from . import agentapi
from .model import LabError, LabNode

TLS_DIR = "tls"
CA_FILE = "consul-agent-ca.pem"
TOKEN_FILE = "acl-management.token"
DATACENTER = "dc1"

# What a phase rollout reads, and nothing more: members (filtered by node:read, silently), each
# agent's /v1/agent/self (agent:read) and the keyring listing (keyring:read).
TSEGOSSIP_RULES = """\
agent_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
keyring = "read"
"""
# A key rotation also installs, uses and removes keys (POST, PUT, DELETE /v1/operator/keyring).
ROTATION_RULES = TSEGOSSIP_RULES.replace('keyring = "read"', 'keyring = "write"')


def _consul(binary: str, tls_dir: str, *args: str) -> None:
    r = subprocess.run([binary, "tls", *args], cwd=tls_dir, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise LabError(f"`consul tls {' '.join(args)}` failed in {tls_dir}: {(r.stderr or r.stdout).strip()}")


def paths(workdir: str) -> tuple[str, str]:
    """(CA file, management token file) of a secure lab in workdir, made or not."""
    return os.path.join(workdir, TLS_DIR, CA_FILE), os.path.join(workdir, TOKEN_FILE)


def prepare(workdir: str, binary: str) -> tuple[str, str]:
    """The CA, the server and client certificates and the management token (made once; reused).
    Returns (CA file, management token file)."""
    tls_dir = os.path.join(workdir, TLS_DIR)
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    ca, token_file = paths(workdir)
    if not os.path.exists(ca):
        _consul(binary, tls_dir, "ca", "create")
    for role in ("server", "client"):
        if not os.path.exists(cert_files(workdir, role)[0]):
            _consul(binary, tls_dir, "cert", "create", f"-{role}", "-dc", DATACENTER)
    if not os.path.exists(token_file):
        write_text(token_file, f"{uuid.uuid4()}\n", private=True)
    return ca, token_file


def cert_files(workdir: str, role: str) -> tuple[str, str]:
    """(certificate, key) of `consul tls cert create -server|-client` for the lab's datacenter."""
    base = os.path.join(workdir, TLS_DIR, f"{DATACENTER}-{role}-consul-0")
    return f"{base}.pem", f"{base}-key.pem"


def agent_config(workdir: str, n: LabNode) -> dict:
    """What a secure node's base config adds: HTTPS instead of HTTP on its API port, ACLs on."""
    cert, key = cert_files(workdir, n.role)
    token = n.token()
    tokens = {"agent": token}
    if n.role == "server":
        tokens["initial_management"] = token
    return {
        "ports": {"http": -1, "https": n.http_port},
        # HTTPS only: the server RPC and gossip stay as they are (gossip has its own encryption).
        "tls": {"https": {"ca_file": n.ca_file, "cert_file": cert, "key_file": key, "verify_incoming": False}},
        "acl": {"enabled": True, "default_policy": "deny", "down_policy": "extend-cache",
                "enable_token_persistence": False, "tokens": tokens},
    }


def create_token(cluster, rules: str = TSEGOSSIP_RULES, name: str = "tsegossip") -> str:
    """A token holding one new policy with `rules`, made with the lab's management token.

    Returns the token's SecretID in clear: the caller is a test or the lab CLI, which hands it to
    the environment variable the spec's consul.token_env names.
    """
    server = cluster.servers[0]
    if not server.secure:
        raise LabError("the lab was started without --secure: it has no ACLs to make a token for")
    try:
        policy = agentapi.request(server, "/v1/acl/policy", "PUT",
                                  {"Name": f"{name}-{uuid.uuid4().hex[:8]}", "Rules": rules}, timeout=10)
        token = agentapi.request(server, "/v1/acl/token", "PUT",
                                 {"Description": f"{name} (lab)", "Policies": [{"ID": policy["ID"]}]},
                                 timeout=10)["SecretID"]
    except urllib.error.HTTPError as e:
        raise LabError(f"{e.url}: {e.code} {e.read().decode(errors='replace')[:300]}") from None
    except OSError as e:
        raise LabError(f"creating a token through {server.http_addr} failed: {e}") from None
    # Agents resolve a token through a server with a stale read allowed: right after creation a
    # follower may not have it yet ("ACL not found"). Ready once every agent resolves it.
    waited = wait_until(lambda: (all(_resolves(n, token) for n in cluster.nodes), None), timeout=15, interval=0.1)
    if not waited.ok:
        raise LabError("the new token was not known to every agent within 15s")
    return token


def _resolves(node: LabNode, token: str) -> bool:
    try:
        agentapi.request(node, "/v1/acl/token/self", token=token, timeout=2)
        return True
    except OSError:  # HTTPError (403 ACL not found) included
        return False
