"""A rollout spec for a lab: the same input a real cluster's spec is, pointing at the lab's agents.

Its config_path is each node's 50-gossip.json and its restart_command is `tsegossip lab restart`,
so the provider writes and restarts the lab's Consul agents exactly as it would a fleet's.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys

from ..atomicfile import write_json
from .model import GOSSIP_FRAGMENT, REPO_ROOT, LabCluster, cluster_of


def default_tsegossip_cmd() -> str:
    """The console script if installed, else `python -m tsegossip` (with PYTHONPATH for a source checkout)."""
    exe = shutil.which("tsegossip")
    if exe:
        return shlex.quote(os.path.abspath(exe))
    cmd = f"{shlex.quote(sys.executable)} -m tsegossip"
    if (REPO_ROOT / "tsegossip").is_dir():
        # restart commands run under /bin/sh from any cwd: make the checkout importable
        cmd = f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} {cmd}"
    return cmd


def write_spec(cluster: LabCluster | str | os.PathLike, path: str | os.PathLike, name: str = "lab",
               strategy: str = "smooth", key_env: str = "TSEGOSSIP_KEY",
               servers_phase: str = "plaintext", clients_phase: str = "plaintext",
               joined: bool = True, tsegossip_cmd: str | None = None, batch_size: int = 1,
               token_env: str = "CONSUL_HTTP_TOKEN", cacert_env: str = "CONSUL_CACERT") -> dict:
    """Write a rollout spec for this lab to `path` (JSON) and return it.

    A secure lab's spec names token_env and cacert_env in its `consul` block: the variables the
    operator fills with tsegossip's token (`tsegossip lab token`) and the lab's CA file.
    """
    cluster = cluster_of(cluster)
    cmd = tsegossip_cmd or default_tsegossip_cmd()
    wd = cluster.workdir
    config_path = os.path.join(wd, "{node}", "config", GOSSIP_FRAGMENT)
    restart_cmd = f"{cmd} lab restart --dir {shlex.quote(wd)} {{node}}"
    # direct jumps the servers over a phase: the first one restarted is split from the rest
    # by design until they follow, so its restart must not wait to rejoin (the provider's
    # own wait, which knows about the jump, decides when the step is done).
    server_restart = restart_cmd.replace(" lab restart ", " lab restart --no-wait-join ") \
        if strategy == "direct" else restart_cmd

    def node_list(nodes):
        return [{"name": n.name, "http_addr": n.http_addr} for n in nodes]

    spec = {
        "name": name,
        "strategy": strategy,
        "target": "enforced",
        "key_env": key_env,
        "servers": {
            "type": "self-managed",
            "phase": servers_phase,
            "http_addr": cluster.servers[0].http_addr,
            "config_path": config_path,
            "restart_command": server_restart,
            "nodes": node_list(cluster.servers),
        },
        "client_groups": [
            {
                "name": g,
                "phase": clients_phase,
                "joined": joined,
                "batch_size": batch_size,
                "config_path": config_path,
                "restart_command": restart_cmd,
                "nodes": node_list(cluster.group(g)),
            }
            for g in cluster.groups
        ],
    }
    if cluster.secure:
        spec["consul"] = {"token_env": token_env, "cacert_env": cacert_env}
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, spec)
    return spec
