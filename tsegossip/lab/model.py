"""What a lab is: its nodes, their files, and the lab.json that lets any process find them again.

Each node lives in ``<workdir>/<node>/``::

    config/00-base.json     identity, ports, bootstrap_expect, retry_join (configs.py)
    config/50-gossip.json   the gossip fragment ("config_path"): written by the rollout code
    data/                   Consul's data_dir (serf/local.keyring once a key is used, raft/ on servers)
    agent.log               stdout+stderr of the agent (appended across restarts)
    pid                     pid of the running agent

``<workdir>/lab.json`` describes the whole cluster so that later calls (and the ``tsegossip lab``
CLI in another process, e.g. a spec's restart_command) can find the nodes again. Every other lab
module works from these values; only `load` and `save` here touch lab.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Mapping

from ..atomicfile import write_json
from ..errors import UserError
from ..phases import Phase

LAB_FILE = "lab.json"
GOSSIP_FRAGMENT = "50-gossip.json"
BASE_FRAGMENT = "00-base.json"
PHASES = tuple(Phase.names())

# The source checkout this package runs from: .tools/bin/consul (./bootstrap's build) sits beside tsegossip/.
REPO_ROOT = Path(__file__).resolve().parents[2]


class LabError(UserError, RuntimeError):
    """Any failure of the lab manager; the message is meant for a human."""


@dataclasses.dataclass(frozen=True)
class LabNode:
    """One agent of the lab: its identity, its three loopback ports and its directory."""

    name: str
    role: str  # "server" | "client"
    group: str | None  # client group name, None for servers
    serf_port: int
    http_port: int
    server_port: int
    dir: str  # <workdir>/<name>
    # A secure lab (ACLs on, HTTPS API): the CA that signed the agents' certificates and the file
    # holding the lab's management token (both inside the lab dir; see secure.py).
    ca_file: str | None = None
    token_file: str | None = None

    @property
    def secure(self) -> bool:
        return self.ca_file is not None

    @property
    def http_addr(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.http_port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifying the agent's certificate against the lab's CA; None (plain HTTP) on a lab without it."""
        return ssl.create_default_context(cafile=self.ca_file) if self.secure else None

    def token(self) -> str | None:
        """The lab's management token (read at each use: the file is the only copy)."""
        if not self.token_file:
            return None
        with open(self.token_file) as f:
            return f.read().strip()

    @property
    def serf_addr(self) -> str:
        return f"127.0.0.1:{self.serf_port}"

    @property
    def config_dir(self) -> str:
        return os.path.join(self.dir, "config")

    @property
    def config_path(self) -> str:
        return os.path.join(self.dir, "config", GOSSIP_FRAGMENT)

    @property
    def data_dir(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "agent.log")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.dir, "pid")

    @property
    def keyring_path(self) -> str:
        return os.path.join(self.dir, "data", "serf", "local.keyring")


@dataclasses.dataclass(frozen=True)
class LabCluster:
    """The whole lab, as lab.json records it: where, which Consul binary, which nodes and groups."""

    workdir: str
    binary: str
    nodes: tuple[LabNode, ...]
    groups: tuple[str, ...]

    @property
    def secure(self) -> bool:
        return bool(self.nodes) and self.nodes[0].secure

    @property
    def ca_file(self) -> str | None:
        return self.nodes[0].ca_file if self.nodes else None

    @property
    def servers(self) -> tuple[LabNode, ...]:
        return tuple(n for n in self.nodes if n.role == "server")

    @property
    def clients(self) -> tuple[LabNode, ...]:
        return tuple(n for n in self.nodes if n.role == "client")

    def group(self, name: str) -> tuple[LabNode, ...]:
        return tuple(n for n in self.nodes if n.group == name)

    def node(self, name: str) -> LabNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"no node {name!r} in the lab at {self.workdir} "
                       f"(nodes: {', '.join(n.name for n in self.nodes)})")

    def to_json(self) -> dict:
        return {
            "workdir": self.workdir,
            "binary": self.binary,
            "groups": list(self.groups),
            "nodes": [dataclasses.asdict(n) for n in self.nodes],
        }

    @classmethod
    def from_json(cls, d: Mapping) -> "LabCluster":
        return cls(
            workdir=d["workdir"],
            binary=d["binary"],
            groups=tuple(d.get("groups", ())),
            nodes=tuple(LabNode(**n) for n in d["nodes"]),
        )


@dataclasses.dataclass(frozen=True)
class NodeStatus:
    """One row of `status`: the process, and (when it answers) what the agent says it sees."""

    name: str
    role: str
    group: str | None
    pid: int | None
    running: bool
    http_addr: str
    members_alive: int | None = None
    members_failed: int | None = None
    members_left: int | None = None
    members: Mapping[str, str] | None = None  # member name -> alive/leaving/left/failed
    encrypted: bool | None = None
    verify_incoming: bool | None = None
    verify_outgoing: bool | None = None
    error: str | None = None


def group_names(groups: int) -> list[str]:
    base = ["web", "api"]
    return [base[i] if i < len(base) else f"group-{i + 1}" for i in range(groups)]


def layout(workdir: str, binary: str, servers: int, clients: int, groups: int, ports: list[int],
           ca_file: str | None = None, token_file: str | None = None) -> LabCluster:
    """The lab's nodes: server-1.., then the clients spread over the groups (3 ports per node, in order)."""
    names: list[tuple[str, str, str | None]] = [(f"server-{i + 1}", "server", None) for i in range(servers)]
    gnames = group_names(groups) if clients else []
    for gi, g in enumerate(gnames):
        count = clients // groups + (1 if gi < clients % groups else 0)
        names += [(f"{g}-{j + 1}", "client", g) for j in range(count)]
    nodes = tuple(
        LabNode(name=n, role=r, group=g, serf_port=ports[3 * i], http_port=ports[3 * i + 1],
                server_port=ports[3 * i + 2], dir=os.path.join(workdir, n), ca_file=ca_file, token_file=token_file)
        for i, (n, r, g) in enumerate(names))
    return LabCluster(workdir=workdir, binary=binary, nodes=nodes, groups=tuple(gnames))


def exists(workdir: str | os.PathLike) -> bool:
    """Whether `workdir` holds a lab (its lab.json)."""
    return (Path(os.fspath(workdir)) / LAB_FILE).exists()


def load(workdir: str | os.PathLike) -> LabCluster:
    """Read <workdir>/lab.json."""
    path = Path(workdir) / LAB_FILE
    try:
        with open(path) as f:
            return LabCluster.from_json(json.load(f))
    except FileNotFoundError:
        raise LabError(f"no lab in {workdir} ({path} not found); run `tsegossip lab up --dir {workdir}` first") from None
    except (ValueError, KeyError, TypeError) as e:
        raise LabError(f"{path} is not a valid lab description: {e}") from None


def save(cluster: LabCluster) -> None:
    """Write <workdir>/lab.json."""
    write_json(os.path.join(cluster.workdir, LAB_FILE), cluster.to_json())


def cluster_of(c: LabCluster | str | os.PathLike) -> LabCluster:
    """The cluster itself, or the one described in that workdir: every public call takes either."""
    return c if isinstance(c, LabCluster) else load(c)


def note(msg: str) -> None:
    """A progress line for the person running the lab (stderr: stdout stays for command output)."""
    print(msg, file=sys.stderr, flush=True)
