"""The lab agents as processes: the Consul binary, free ports, starting one, its pid file, stopping them.

Every lab agent is a real `consul agent` (v1.14.11, built by ./bootstrap from tools/go/consul into
.tools/bin/). Everything that knows how that program is found and launched lives here (its config
files are configs.py's), so a different Consul behind the lab is a change to this module.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Mapping

from ..waiting import wait_until
from .model import REPO_ROOT, LabCluster, LabError, LabNode, cluster_of

AGENT_NAME = "consul"

# Where Consul is looked for when no binary is given: $TSEGOSSIP_CONSUL (set by .tsegossip.env),
# then the build ./bootstrap makes. Never a `consul` found on PATH: a different release there would
# quietly change what the lab proves.
DEFAULT_BINARY = REPO_ROOT / ".tools" / "bin" / AGENT_NAME

POLL = 0.05  # seconds between looks at a process that is expected to exit


def ensure_binary(binary: str | os.PathLike | None = None) -> str:
    """Path of the Consul binary: explicit, $TSEGOSSIP_CONSUL, or .tools/bin/consul."""
    if binary:
        p = Path(binary)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise LabError(f"Consul binary {p} does not exist or is not executable")
        return str(p.resolve())
    env = os.environ.get("TSEGOSSIP_CONSUL")
    if env:
        return ensure_binary(env)
    if DEFAULT_BINARY.is_file() and os.access(DEFAULT_BINARY, os.X_OK):
        return str(DEFAULT_BINARY)
    raise LabError(f"Consul not found at {DEFAULT_BINARY}; run ./bootstrap (or tools/build-go-tools consul), "
                   f"or set TSEGOSSIP_CONSUL to a consul binary")


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


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def allocate_ports(count: int, base_port: int | None) -> list[int]:
    """`count` distinct loopback ports free for both TCP and UDP (serf gossips over both).

    Chosen below the kernel's ephemeral range: Consul agents open many outgoing connections
    (RPC, push/pull), and a port handed out by bind(0) is an ephemeral one that such a connection
    can take between allocation and the agent's start (seen: `bind: address already in use` for
    the 22nd client of a 33-agent lab).
    """
    if base_port is not None:
        ports = list(range(base_port, base_port + count))
        busy = [p for p in ports if not _port_free(p)]
        if busy:
            raise LabError(f"ports already in use on 127.0.0.1: {busy[:10]}")
        return ports
    lo, _ = _ephemeral_range()
    first = 10000 if lo > 10000 + 4 * count else 1024
    candidates = list(range(first, lo))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:  # bounded by the range
        if _port_free(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise LabError(f"found only {len(ports)} of {count} free ports on 127.0.0.1 in {first}-{lo - 1}")


# Agents this process started: polling them is the only way to reap them (no zombies left behind).
_children: dict[int, subprocess.Popen] = {}


def read_pid(node: LabNode) -> int | None:
    try:
        return int(Path(node.pid_path).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int | None, node: LabNode | None = None) -> bool:
    """Whether `pid` is a running agent (of `node`, when given: a pid file can outlive its process)."""
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
    except OSError:  # not our child (ChildProcessError) or no such process
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
    n = cluster_of(workdir).node(node)
    pid = read_pid(n)
    return pid if pid_alive(pid, n) else None


def running_pids(cluster: LabCluster) -> dict[str, int]:
    """node name -> pid of every agent of the lab that is running."""
    pids = {}
    for n in cluster.nodes:
        pid = read_pid(n)
        if pid_alive(pid, n):
            pids[n.name] = pid
    return pids


def forget_pids(cluster: LabCluster) -> None:
    """Remove every node's pid file (after its agent has stopped)."""
    for n in cluster.nodes:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(n.pid_path)


def log_tail(node: LabNode, lines: int = 15) -> str:
    try:
        with open(node.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def spawn(cluster: LabCluster, node: LabNode) -> int:
    """Start the agent of `node` in its own session (log appended, pid file written); returns its pid."""
    os.makedirs(node.data_dir, exist_ok=True)
    argv = [cluster.binary, "agent", "-config-dir", node.config_dir]
    with open(node.log_path, "ab") as log:
        log.write(f"=== tsegossip lab: starting {node.name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
        log.flush()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True)
    _children[p.pid] = p
    Path(node.pid_path).write_text(f"{p.pid}\n")
    return p.pid


def _wait_gone(pending: dict[str, int], timeout: float) -> list[str]:
    """Wait up to `timeout` s for the pids in `pending` to exit; removes and returns the names that did."""
    gone: list[str] = []

    def all_gone() -> tuple[bool, None]:
        for name, pid in list(pending.items()):
            if not pid_alive(pid):
                gone.append(name)
                del pending[name]
        return not pending, None

    if pending:
        wait_until(all_gone, timeout=timeout, interval=POLL)
    return gone


def signal_and_wait(pids: Mapping[str, int], grace: float) -> dict[str, str]:
    """SIGTERM every pid, wait up to `grace` s, SIGKILL leftovers. Returns name -> how it ended."""
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pending = dict(pids)
    how = {name: "stopped" for name in _wait_gone(pending, grace)}
    for name, pid in pending.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        how[name] = "killed"
    _wait_gone(pending, 5.0)  # SIGKILL is not refused; 5 s is only a bound
    return how
