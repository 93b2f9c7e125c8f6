"""Local lab of real gossip agents (serf + memberlist, Consul's stack) on 127.0.0.1.

Each node lives in ``<workdir>/<node>/``::

    config/00-base.json     written by up(): identity, ports, retry_join
    config/50-gossip.json   the gossip fragment ("config_path"): written by the rollout code
    data/                   data_dir (serf/local.keyring lives here once a key is used)
    agent.log               stdout+stderr of the agent (appended across restarts)
    pid                     pid of the running agent

``<workdir>/lab.json`` describes the whole cluster so that later calls (and the
``tsegossip lab`` CLI in another process) can find the nodes again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..agentconfig import fragment
from ..errors import UserError
from ..keys import GossipKey
from ..agentshape import verify_flags
from ..phases import Phase

LAB_FILE = "lab.json"
GOSSIP_FRAGMENT = "50-gossip.json"
BASE_FRAGMENT = "00-base.json"
AGENT_NAME = "tsegossip-lab-agent"
PHASES = tuple(Phase.names())

# Where the agent binary is looked for when no binary is given.
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / "lab" / "bin" / AGENT_NAME
BUILD_SCRIPT = REPO_ROOT / "lab" / "build.sh"


class LabError(UserError, RuntimeError):
    """Any failure of the lab manager; the message is meant for a human."""


@dataclasses.dataclass(frozen=True)
class LabNode:
    name: str
    role: str  # "server" | "client"
    group: str | None  # client group name, None for servers
    serf_port: int
    http_port: int
    server_port: int
    dir: str  # <workdir>/<name>

    @property
    def http_addr(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

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
    workdir: str
    binary: str
    nodes: tuple[LabNode, ...]
    groups: tuple[str, ...]
    api_shape: str = "1.15"

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
            "api_shape": self.api_shape,
            "groups": list(self.groups),
            "nodes": [dataclasses.asdict(n) for n in self.nodes],
        }

    @classmethod
    def from_json(cls, d: Mapping) -> "LabCluster":
        return cls(
            workdir=d["workdir"],
            binary=d["binary"],
            api_shape=d.get("api_shape", "1.15"),
            groups=tuple(d.get("groups", ())),
            nodes=tuple(LabNode(**n) for n in d["nodes"]),
        )


@dataclasses.dataclass(frozen=True)
class NodeStatus:
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


# ---------------------------------------------------------------- helpers

def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate_key() -> str:
    """A key like `consul keygen` (base64 of 32 random bytes), in clear: the lab is a test harness."""
    return GossipKey.generate().reveal()


def phase_fragment(phase: str, key: str | None) -> dict:
    """The 50-gossip.json content for one of the four phases: exactly what the provider writes."""
    try:
        p = Phase(phase)
    except ValueError:
        raise LabError(f"unknown phase {phase!r} (expected one of {', '.join(Phase.names())})") from None
    if p.has_key and not key:
        raise LabError(f"phase {phase} needs a gossip key")
    return fragment(p, GossipKey(key) if key else None, reveal=True)


def write_fragment(cluster: LabCluster, node: str, fragment: Mapping) -> str:
    """Write <node>/config/50-gossip.json (what the rollout code would do)."""
    path = cluster.node(node).config_path
    _write_json(path, dict(fragment))
    return path


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def group_names(groups: int) -> list[str]:
    base = ["web", "api"]
    return [base[i] if i < len(base) else f"group-{i + 1}" for i in range(groups)]


def ensure_binary(binary: str | os.PathLike | None = None, build: bool = True) -> str:
    """Path of the agent binary: explicit, $TSEGOSSIP_LAB_AGENT, or lab/bin (built on demand)."""
    if binary:
        p = Path(binary)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise LabError(f"lab agent binary {p} does not exist or is not executable")
        return str(p.resolve())
    env = os.environ.get("TSEGOSSIP_LAB_AGENT")
    if env:
        return ensure_binary(env, build=False)
    if DEFAULT_BINARY.is_file():
        return str(DEFAULT_BINARY)
    if build and BUILD_SCRIPT.is_file():
        _log(f"lab: building {DEFAULT_BINARY} with {BUILD_SCRIPT}")
        r = subprocess.run(["sh", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if r.returncode != 0 or not DEFAULT_BINARY.is_file():
            tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
            raise LabError(f"building the lab agent failed: {' | '.join(tail)}")
        return str(DEFAULT_BINARY)
    raise LabError(f"lab agent binary not found at {DEFAULT_BINARY}; run lab/build.sh "
                   f"or set TSEGOSSIP_LAB_AGENT")


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _allocate_ports(count: int, base_port: int | None) -> list[int]:
    """`count` distinct loopback ports free for both TCP and UDP."""
    if base_port is not None:
        ports = list(range(base_port, base_port + count))
        busy = [p for p in ports if not _port_free(p)]
        if busy:
            raise LabError(f"ports already in use on 127.0.0.1: {busy[:10]}")
        return ports
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                t.close()
                u.close()
                continue
            held += [t, u]
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


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


def _cluster_of(c: LabCluster | str | os.PathLike) -> LabCluster:
    return c if isinstance(c, LabCluster) else load(c)


# ---------------------------------------------------------------- processes

_children: dict[int, subprocess.Popen] = {}


def _read_pid(node: LabNode) -> int | None:
    try:
        return int(Path(node.pid_path).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _pid_alive(pid: int | None, node: LabNode | None = None) -> bool:
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap if it is our child
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        # guard against pid reuse: the agent of this node runs with its config dir
        marker = node.config_dir if node is not None else "-config-dir"
        return marker.encode() in cmd
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except PermissionError:
        return True


def node_pid(workdir: str | os.PathLike | LabCluster, node: str) -> int | None:
    """Pid of the running agent of `node`, or None."""
    n = _cluster_of(workdir).node(node)
    pid = _read_pid(n)
    return pid if _pid_alive(pid, n) else None


def log_tail(node: LabNode, lines: int = 15) -> str:
    try:
        with open(node.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def _http_get(node: LabNode, path: str, timeout: float = 1.0):
    with urllib.request.urlopen(node.http_addr + path, timeout=timeout) as r:
        return json.loads(r.read().decode())


def _members(node: LabNode, timeout: float = 1.0) -> dict[str, int] | None:
    try:
        return {m["Name"]: m["Status"] for m in _http_get(node, "/v1/agent/members", timeout)}
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _spawn(cluster: LabCluster, node: LabNode) -> int:
    os.makedirs(node.data_dir, exist_ok=True)
    argv = [cluster.binary, "-config-dir", node.config_dir]
    if cluster.api_shape != "1.15":
        argv += ["-api-shape", cluster.api_shape]
    with open(node.log_path, "ab") as log:
        log.write(f"=== tsegossip lab: starting {node.name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
        log.flush()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True)
    _children[p.pid] = p
    Path(node.pid_path).write_text(f"{p.pid}\n")
    return p.pid


def _wait_http(node: LabNode, pid: int, deadline: float) -> None:
    while True:
        if not _pid_alive(pid):
            raise LabError(f"agent {node.name} exited during start-up; last lines of {node.log_path}:\n"
                           f"{log_tail(node)}")
        if _members(node, timeout=0.5) is not None:
            return
        if time.monotonic() > deadline:
            raise LabError(f"agent {node.name} (pid {pid}) did not answer on {node.http_addr}; "
                           f"last lines of {node.log_path}:\n{log_tail(node)}")
        time.sleep(0.05)


def _signal_and_wait(pids: Mapping[str, int], grace: float) -> dict[str, str]:
    """SIGTERM every pid, wait up to `grace` s, SIGKILL leftovers. Returns name -> how it ended."""
    how: dict[str, str] = {}
    for name, pid in pids.items():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    pending = dict(pids)
    while pending and time.monotonic() < deadline:
        for name, pid in list(pending.items()):
            if not _pid_alive(pid):
                how[name] = "stopped"
                del pending[name]
        time.sleep(0.05)
    for name, pid in pending.items():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        how[name] = "killed"
    kill_deadline = time.monotonic() + 5
    while pending and time.monotonic() < kill_deadline:
        for name, pid in list(pending.items()):
            if not _pid_alive(pid):
                del pending[name]
        time.sleep(0.05)
    return how


# ---------------------------------------------------------------- public API

def up(workdir: str | os.PathLike, servers: int = 3, clients: int = 6, groups: int = 2,
       base_port: int | None = None, binary: str | os.PathLike | None = None,
       initial_fragments: Mapping[str, Mapping] | None = None, timeout: float = 75.0,
       api_shape: str = "1.15", wait: bool = True, fresh: bool = False,
       leave_on_terminate: bool = True) -> LabCluster:
    """Create (or re-create) and start a lab cluster; wait until everyone sees everyone alive.

    leave_on_terminate is Consul's setting, written into every agent's base config: True (the
    lab's default, Consul's for clients) makes a restart a graceful leave and a rejoin; False
    (Consul's default for servers) makes it a stop and start that the peers never see as a
    leave: memberlist only suspects the agent while it is down and it refutes on rejoin.

    initial_fragments maps a node name (or a group name, or "servers"/"clients") to the
    content of its 50-gossip.json, written before start (node name wins over group over
    role). Nodes without an entry get `{}` (plaintext) unless their fragment already exists.
    An existing lab directory is reused (fragments and data dirs, hence keyrings, are kept)
    unless fresh=True, which first deletes the node directories of the old and new lab.
    """
    if servers < 1:
        raise LabError("a lab needs at least one server")
    if clients < 0 or groups < 0 or (clients > 0 and groups < 1):
        raise LabError("clients need at least one group")
    if api_shape not in ("1.15", "1.11"):
        raise LabError("api_shape must be 1.15 or 1.11")
    workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(workdir, exist_ok=True)
    if (Path(workdir) / LAB_FILE).exists():
        old = load(workdir)
        running = [n.name for n in old.nodes if node_pid(old, n.name)]
        if running:
            raise LabError(f"a lab is already running in {workdir} ({', '.join(running)}); "
                           f"run `tsegossip lab down --dir {workdir}` first")
    binary = ensure_binary(binary)
    old_nodes = [n.dir for n in load(workdir).nodes] if (Path(workdir) / LAB_FILE).exists() else []

    names: list[tuple[str, str, str | None]] = [(f"server-{i + 1}", "server", None) for i in range(servers)]
    gnames = group_names(groups) if clients else []
    for gi, g in enumerate(gnames):
        count = clients // groups + (1 if gi < clients % groups else 0)
        names += [(f"{g}-{j + 1}", "client", g) for j in range(count)]
    ports = _allocate_ports(3 * len(names), base_port)
    nodes = tuple(
        LabNode(name=n, role=r, group=g, serf_port=ports[3 * i], http_port=ports[3 * i + 1],
                server_port=ports[3 * i + 2], dir=os.path.join(workdir, n))
        for i, (n, r, g) in enumerate(names))
    cluster = LabCluster(workdir=workdir, binary=binary, nodes=nodes, groups=tuple(gnames),
                         api_shape=api_shape)
    frags = dict(initial_fragments or {})
    unknown = set(frags) - {n.name for n in nodes} - set(gnames) - {"servers", "clients"}
    if unknown:
        raise LabError(f"initial_fragments for unknown nodes: {', '.join(sorted(unknown))}")

    if fresh:
        for d in set(old_nodes) | {n.dir for n in nodes}:
            if os.path.dirname(os.path.abspath(d)) == workdir:  # never outside the lab dir
                shutil.rmtree(d, ignore_errors=True)
    server_addrs = [n.serf_addr for n in cluster.servers]
    for n in nodes:
        os.makedirs(n.config_dir, exist_ok=True)
        os.makedirs(n.data_dir, exist_ok=True)
        base = {
            "node_name": n.name,
            "datacenter": "dc1",
            "data_dir": n.data_dir,
            "server": n.role == "server",
            "bind_addr": "127.0.0.1",
            "ports": {"serf_lan": n.serf_port, "http": n.http_port, "server": n.server_port},
            # A server joining itself would count as a successful join and stop
            # retry_join, so servers only list the other servers.
            "retry_join": [a for a in server_addrs if a != n.serf_addr],
            "leave_on_terminate": bool(leave_on_terminate),
        }
        _write_json(os.path.join(n.config_dir, BASE_FRAGMENT), base)
        frag = None
        for k in (n.name, n.group, "servers" if n.role == "server" else "clients"):
            if k is not None and k in frags:
                frag = frags[k]
                break
        if frag is not None:
            _write_json(n.config_path, dict(frag))
        elif not os.path.exists(n.config_path):
            _write_json(n.config_path, {})
    _write_json(os.path.join(workdir, LAB_FILE), cluster.to_json())

    deadline = time.monotonic() + timeout
    try:
        for n in nodes:
            pid = _spawn(cluster, n)
            _log(f"lab: started {n.name} (pid {pid}, serf {n.serf_addr}, http {n.http_addr})")
        for n in nodes:
            _wait_http(n, _read_pid(n), deadline)
        if wait:
            wait_converged(cluster, timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        down(cluster, quiet=True)
        raise
    return cluster


def wait_converged(cluster: LabCluster | str | os.PathLike, timeout: float = 20.0,
                   nodes: Iterable[str] | None = None) -> float:
    """Wait until every (given) running agent sees all (given) nodes alive. Returns seconds waited."""
    cluster = _cluster_of(cluster)
    names = list(nodes) if nodes is not None else [n.name for n in cluster.nodes]
    want = set(names)
    t0 = time.monotonic()
    last: dict[str, object] = {}
    while True:
        ok = True
        for name in names:
            n = cluster.node(name)
            m = _members(n)
            last[name] = m
            if m is None or not want.issubset({k for k, v in m.items() if v == 1}):
                ok = False
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            lines = []
            for name in names:
                m = last[name]
                if m is None:
                    lines.append(f"  {name}: no answer from its HTTP API")
                else:
                    missing = sorted(want - {k for k, v in m.items() if v == 1})
                    if missing:
                        lines.append(f"  {name}: does not see alive: {', '.join(missing)}")
            raise LabError(f"lab did not converge within {timeout:.0f}s:\n" + "\n".join(lines))
        time.sleep(0.1)


def start(workdir: str | os.PathLike | LabCluster, node: str, timeout: float = 30.0,
          wait_join: bool = True) -> int:
    """Start one stopped agent; wait for its HTTP API and (if wait_join) for it to see a peer."""
    cluster = _cluster_of(workdir)
    n = cluster.node(node)
    pid = node_pid(cluster, node)
    if pid:
        raise LabError(f"agent {node} is already running (pid {pid})")
    deadline = time.monotonic() + timeout
    pid = _spawn(cluster, n)
    _wait_http(n, pid, deadline)
    if wait_join:
        _wait_joined(cluster, n, pid, deadline, timeout)
    return pid


def _wait_joined(cluster: LabCluster, n: LabNode, pid: int, deadline: float, timeout: float) -> None:
    if len(cluster.nodes) == 1:
        return
    while True:
        m = _members(n)
        if m and m.get(n.name) == 1 and any(v == 1 for k, v in m.items() if k != n.name):
            return
        if not _pid_alive(pid):
            raise LabError(f"agent {n.name} exited after start; last lines of {n.log_path}:\n{log_tail(n)}")
        if time.monotonic() > deadline:
            raise LabError(f"agent {n.name} (pid {pid}) is running but did not rejoin the cluster within "
                           f"{timeout:.0f}s (it sees no other alive member); last lines of {n.log_path}:\n"
                           f"{log_tail(n)}")
        time.sleep(0.05)


def stop(workdir: str | os.PathLike | LabCluster, node: str, grace: float = 10.0) -> str:
    """SIGTERM one agent (graceful leave), SIGKILL after `grace` s. Returns 'stopped', 'killed' or 'not running'."""
    cluster = _cluster_of(workdir)
    cluster.node(node)
    pid = node_pid(cluster, node)
    if not pid:
        return "not running"
    return _signal_and_wait({node: pid}, grace)[node]


def _leaves_on_terminate(n: LabNode) -> bool:
    """The agent's leave_on_terminate as its config dir sets it (Consul's default for a client: true)."""
    value = True
    for path in sorted(Path(n.config_dir).glob("*.json")):  # Consul merges them in name order
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("leave_on_terminate"), bool):
            value = doc["leave_on_terminate"]
    return value


def _wait_left(cluster: LabCluster, n: LabNode, deadline: float) -> None:
    """Wait until the servers no longer list `n` as alive (bounded; best effort).

    memberlist ignores the new agent's alive message (incarnation 0) while a peer still holds the
    old one as alive; if the old agent's leave reaches that peer afterwards, the peer marks the new
    agent left, and only a push/pull (every 30 s on the LAN profile) lets it refute. Starting the new
    agent after the servers (its join targets) have processed the leave makes its join's push/pull
    carry the leave, so it refutes at once. Seen as 30-60 s stalls on a loaded 33-agent lab.
    """
    peers = [s for s in cluster.servers if s.name != n.name]
    while time.monotonic() < deadline:
        views = [_members(peer, timeout=0.5) for peer in peers]
        if all(v is None or v.get(n.name) != 1 for v in views):
            return
        time.sleep(0.05)


def restart(workdir: str | os.PathLike | LabCluster, node: str, timeout: float = 30.0,
            wait_join: bool = True) -> float:
    """Stop (graceful leave) and start one agent with its current config; returns seconds taken.

    Raises LabError with the agent's last log lines if it does not come back (or, with
    wait_join, does not see itself alive with at least one other alive member).
    """
    cluster = _cluster_of(workdir)
    n = cluster.node(node)
    t0 = time.monotonic()
    how = stop(cluster, node, grace=min(10.0, timeout / 2))
    if _leaves_on_terminate(n):  # an agent that does not leave stays listed alive: nothing to wait for
        _wait_left(cluster, n, deadline=time.monotonic() + 5.0)
    pid = _spawn(cluster, n)
    deadline = t0 + timeout
    _wait_http(n, pid, deadline)
    if wait_join:
        _wait_joined(cluster, n, pid, deadline, timeout)
    took = time.monotonic() - t0
    _log(f"lab: restarted {node} (pid {pid}, previous agent {how}) in {took:.1f}s")
    return took


def down(workdir: str | os.PathLike | LabCluster, grace: float = 2.0, quiet: bool = False) -> dict[str, str]:
    """Stop every agent (SIGTERM, SIGKILL after `grace` s). Idempotent; files are kept."""
    if not isinstance(workdir, LabCluster) and not (Path(os.fspath(workdir)) / LAB_FILE).exists():
        return {}
    cluster = _cluster_of(workdir)
    pids = {}
    for n in cluster.nodes:
        pid = _read_pid(n)
        if _pid_alive(pid, n):
            pids[n.name] = pid
    how = _signal_and_wait(pids, grace) if pids else {}
    for n in cluster.nodes:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(n.pid_path)
    if not quiet:
        for name, h in how.items():
            _log(f"lab: {h} {name}")
    return how


def status(workdir: str | os.PathLike | LabCluster, timeout: float = 2.0) -> list[NodeStatus]:
    """One row per node, from each agent's own /v1/agent/members and /v1/agent/self (python-consul2)."""
    import consul  # python-consul2

    cluster = _cluster_of(workdir)
    rows = []
    for n in cluster.nodes:
        pid = _read_pid(n)
        running = _pid_alive(pid, n)
        row = dict(name=n.name, role=n.role, group=n.group, pid=pid if running else None,
                   running=running, http_addr=n.http_addr)
        if not running:
            rows.append(NodeStatus(**row, error="not running"))
            continue
        try:
            c = consul.Consul(host="127.0.0.1", port=n.http_port, timeout=timeout)
            members = c.agent.members()
            me = c.agent.self()
        except Exception as e:  # requests / consul exceptions
            rows.append(NodeStatus(**row, error=f"HTTP API: {e}"))
            continue
        names = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}
        seen = {m["Name"]: names.get(m["Status"], str(m["Status"])) for m in members}
        vi, vo = verify_flags(me)
        enc = me.get("Stats", {}).get("serf_lan", {}).get("encrypted")
        rows.append(NodeStatus(
            **row,
            members_alive=sum(1 for v in seen.values() if v == "alive"),
            members_failed=sum(1 for v in seen.values() if v == "failed"),
            members_left=sum(1 for v in seen.values() if v == "left"),
            members=seen,
            encrypted=None if enc is None else enc == "true",
            verify_incoming=vi, verify_outgoing=vo))
    return rows


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
               joined: bool = True, tsegossip_cmd: str | None = None, batch_size: int = 1) -> dict:
    """Write a rollout spec for this lab to `path` (JSON) and return it."""
    cluster = _cluster_of(cluster)
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
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _write_json(path, spec)
    return spec


@contextlib.contextmanager
def running_lab(tmp_path: str | os.PathLike, **kw) -> Iterator[LabCluster]:
    """`with running_lab(tmp_path, servers=3, clients=2) as lab:` ... always downs the lab."""
    workdir = kw.pop("workdir", None) or os.path.join(os.fspath(tmp_path), "lab")
    try:
        yield up(workdir, **kw)
    finally:
        down(workdir, quiet=True)
