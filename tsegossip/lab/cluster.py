"""Running a lab: up, down, start, stop, restart, status, and the waits that make each one finished.

The public calls take a LabCluster or its workdir (see model.py for the layout on disk). Each
returns only once the lab is in the state it promises: agents answering, joined, converged, or
gone; what "answering" means is asked through agentapi.py, processes are handled by process.py,
their config files written by configs.py.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import Iterable, Iterator, Mapping

from ..waiting import wait_until
from . import agentapi, configs, process
from . import secure as secure_files
from .agentapi import ALIVE
from .model import LabCluster, LabError, LabNode, NodeStatus, cluster_of, exists, layout, load, note, save

POLL = 0.05  # seconds between looks at one agent coming up, joining or leaving
CONVERGE_POLL = 0.1  # seconds between looks at the whole lab (one HTTP call per node)


def up(workdir: str | os.PathLike, servers: int = 3, clients: int = 6, groups: int = 2,
       base_port: int | None = None, binary: str | os.PathLike | None = None,
       initial_fragments: Mapping[str, Mapping] | None = None, timeout: float = 75.0,
       wait: bool = True, fresh: bool = False,
       leave_on_terminate: bool | None = None, secure: bool = False) -> LabCluster:
    """Create (or re-create) and start a lab cluster; wait until every agent answers on its HTTP API
    and, with wait=True, until everyone sees everyone alive. On any failure the lab is stopped again.

    leave_on_terminate is Consul's setting: None (the default) keeps Consul's own per role: clients
    leave gracefully, servers do not (a server that leaves is removed from the raft peer set, and
    servers leaving one after another faster than autopilot re-promotes them lose quorum). True
    or False is written into every agent's base config: True makes every restart a graceful
    leave and a rejoin; False a stop and start that the peers never see as a leave: memberlist
    only suspects the agent while it is down and it refutes on rejoin.

    secure=True turns ACLs on (default deny) and serves every agent's API over HTTPS only, with a
    CA and certificates made by `consul tls` and a management token kept in the lab dir (secure.py).

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
    workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(workdir, exist_ok=True)
    if exists(workdir):
        old = load(workdir)
        running = [n.name for n in old.nodes if process.node_pid(old, n.name)]
        if running:
            raise LabError(f"a lab is already running in {workdir} ({', '.join(running)}); "
                           f"run `tsegossip lab down --dir {workdir}` first")
    binary = process.ensure_binary(binary)
    old_nodes = [n.dir for n in load(workdir).nodes] if exists(workdir) else []

    ports = process.allocate_ports(3 * (servers + clients), base_port)
    ca_file, token_file = secure_files.paths(workdir) if secure else (None, None)
    cluster = layout(workdir, binary, servers, clients, groups, ports, ca_file, token_file)
    frags = dict(initial_fragments or {})
    unknown = set(frags) - {n.name for n in cluster.nodes} - set(cluster.groups) - {"servers", "clients"}
    if unknown:
        raise LabError(f"initial_fragments for unknown nodes: {', '.join(sorted(unknown))}")

    if fresh:
        tls_dir = os.path.join(workdir, secure_files.TLS_DIR)
        for d in set(old_nodes) | {n.dir for n in cluster.nodes} | {tls_dir}:
            if os.path.dirname(os.path.abspath(d)) == workdir:  # never outside the lab dir
                shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(workdir, secure_files.TOKEN_FILE))
    if secure:
        secure_files.prepare(workdir, binary)
    configs.write_configs(cluster, frags, leave_on_terminate)
    save(cluster)

    deadline = time.monotonic() + timeout
    try:
        for n in cluster.nodes:
            pid = process.spawn(cluster, n)
            note(f"lab: started {n.name} (pid {pid}, serf {n.serf_addr}, http {n.http_addr})")
        for n in cluster.nodes:
            _wait_http(n, process.read_pid(n), deadline)
        if wait:
            wait_converged(cluster, timeout=max(1.0, deadline - time.monotonic()))
            wait_leader(cluster, timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        down(cluster, quiet=True)
        raise
    return cluster


def wait_converged(cluster: LabCluster | str | os.PathLike, timeout: float = 20.0,
                   nodes: Iterable[str] | None = None) -> float:
    """Wait until every (given) running agent sees all (given) nodes alive. Returns seconds waited.

    Raises LabError after `timeout` s, naming for each node what it does not see alive.
    """
    cluster = cluster_of(cluster)
    names = list(nodes) if nodes is not None else [n.name for n in cluster.nodes]
    want = set(names)

    def alive(m: Mapping[str, int]) -> set[str]:
        return {k for k, v in m.items() if v == ALIVE}

    stale = StaleLeaves(cluster)

    def converged() -> tuple[bool, dict[str, dict[str, int] | None]]:
        views = {name: agentapi.members(cluster.node(name)) for name in names}
        stale.mend(views)
        return all(m is not None and want <= alive(m) for m in views.values()), views

    waited = wait_until(converged, timeout=timeout, interval=CONVERGE_POLL)
    if waited.ok:
        return waited.seconds
    lines = []
    for name, m in waited.value.items():
        if m is None:
            lines.append(f"  {name}: no answer from its HTTP API")
        elif want - alive(m):
            # the status says which serf race it is: "leaving"/"left" is a leave that outran the
            # rejoin, "failed" a probe that timed out, "not listed" a join that never reached it
            seen = ", ".join(f"{k} ({agentapi.STATUS_NAMES.get(m[k], m[k]) if k in m else 'not listed'})"
                             for k in sorted(want - alive(m)))
            lines.append(f"  {name}: does not see alive: {seen}")
    raise LabError(f"lab did not converge within {timeout:.0f}s:\n" + "\n".join(lines))


class StaleLeaves:
    """Ends a peer's stale leave: a running agent it still lists `leaving` or `left` after the rejoin.

    Two races of a restart with a graceful leave, both seen in this lab under load:
    - `leaving` (serf v0.10.1, serf.go handleNodeJoin / handleNodeLeaveIntent, as vendored by Consul
      1.14): the rejoin makes the peer mark the agent alive whatever its status was; a copy of the
      agent's earlier leave intent, relayed late by a third member, then carries a Lamport time newer
      than anything the peer has for it, so the peer sets it `leaving`, and nothing memberlist sees
      (the agent is alive) ever moves it back. The agent's own join intent cannot help when it was
      stamped before its clock had witnessed that leave.
    - `left` (memberlist): the peer ignored the new agent's alive message while it still held the old
      one as alive, then took the old agent's leave; only a push/pull (every 30 s or so) corrects it.
    The remedy for both is Consul's own API: the agent joins that peer (PUT /v1/agent/join on the
    agent), a push/pull with it, after which serf stamps a join intent newer than the leave.

    Only agents that answer their own API and list themselves alive are re-announced, and only after
    agentapi.STALE_LEAVING_AFTER s (an agent really leaving is gone from its own API well before: the
    lab only stops agents itself). An agent cut off by its phase stays cut off: its join fails for
    the same reason its gossip does. Each re-announcement is noted on stderr.
    """

    STATUSES = {agentapi.LEAVING: "leaving", agentapi.LEFT: "left"}

    def __init__(self, cluster: LabCluster, clock=time.monotonic):
        self.cluster = cluster
        self.clock = clock
        self.since: dict[tuple[str, str], float] = {}   # (peer, agent) -> first seen with a stale leave
        self.last: dict[tuple[str, str], float] = {}    # (peer, agent) -> last re-announced
        self.mended: list[tuple[str, str]] = []

    def mend(self, views: Mapping[str, Mapping[str, int] | None]) -> None:
        now = self.clock()
        stale = {(peer, agent): status for peer, m in views.items() if m is not None
                 for agent, status in m.items() if status in self.STATUSES and agent != peer}
        for pair in list(self.since):
            if pair not in stale:
                del self.since[pair]
        for (peer, agent), status in sorted(stale.items()):
            first = self.since.setdefault((peer, agent), now)
            own = views.get(agent)
            if (now - first < agentapi.STALE_LEAVING_AFTER or own is None or own.get(agent) != ALIVE
                    or now - self.last.get((peer, agent), -agentapi.REANNOUNCE_EVERY) < agentapi.REANNOUNCE_EVERY):
                continue
            again = (peer, agent) in self.last
            self.last[(peer, agent)] = now
            target = self.cluster.node(peer)
            ok = agentapi.join(self.cluster.node(agent), target.serf_addr)
            self.mended.append((peer, agent))
            if not again or ok:
                note(f"lab: {peer} has listed {agent} as {self.STATUSES[status]} for {now - first:.1f}s although "
                     f"{agent} is running and alive: a leave from before its restart that outran the rejoin; "
                     f"{agent} joins {peer} ({target.serf_addr}) again"
                     + ("" if ok else " (the join failed: cut off, or not up yet; asked again every "
                        f"{agentapi.REANNOUNCE_EVERY:.0f}s, noted only when it works)"))


def wait_leader(cluster: LabCluster | str | os.PathLike, timeout: float = 20.0) -> float:
    """Wait until every running server names the same raft leader. Returns seconds waited.

    The keyring API is an RPC that a server answers only once the cluster has a leader, so a lab
    is ready for a rollout only then, not as soon as gossip has converged.
    """
    cluster = cluster_of(cluster)
    servers = [n for n in cluster.servers if process.node_pid(cluster, n.name)]

    def elected() -> tuple[bool, dict[str, str | None]]:
        seen = {n.name: agentapi.leader(n) for n in servers}
        values = set(seen.values())
        return len(values) == 1 and bool(values.pop()), seen

    waited = wait_until(elected, timeout=timeout, interval=CONVERGE_POLL)
    if waited.ok:
        return waited.seconds
    seen = ", ".join(f"{k}: {v or 'no leader'}" for k, v in (waited.value or {}).items())
    raise LabError(f"the lab's servers did not agree on a raft leader within {timeout:.0f}s ({seen})")


def start(workdir: str | os.PathLike | LabCluster, node: str, timeout: float = 30.0,
          wait_join: bool = True) -> int:
    """Start one stopped agent; wait for its HTTP API and (if wait_join) for it to see a peer."""
    cluster = cluster_of(workdir)
    n = cluster.node(node)
    pid = process.node_pid(cluster, node)
    if pid:
        raise LabError(f"agent {node} is already running (pid {pid})")
    deadline = time.monotonic() + timeout
    pid = process.spawn(cluster, n)
    _wait_http(n, pid, deadline)
    if wait_join:
        _wait_joined(cluster, n, pid, deadline, timeout)
    return pid


def stop(workdir: str | os.PathLike | LabCluster, node: str, grace: float = 10.0) -> str:
    """SIGTERM one agent (a graceful leave unless its config says leave_on_terminate: false), SIGKILL
    after `grace` s. Returns 'stopped', 'killed' or 'not running'."""
    cluster = cluster_of(workdir)
    cluster.node(node)
    pid = process.node_pid(cluster, node)
    if not pid:
        return "not running"
    return process.signal_and_wait({node: pid}, grace)[node]


def restart(workdir: str | os.PathLike | LabCluster, node: str, timeout: float = 30.0,
            wait_join: bool = True) -> float:
    """Stop and start one agent with its current config; returns seconds taken.

    An agent that leaves on terminate is started again only once the servers have dropped it
    (see `_wait_left`). Raises LabError with the agent's last log lines if it does not come back
    (or, with wait_join, does not see itself alive with at least one other alive member).
    """
    cluster = cluster_of(workdir)
    n = cluster.node(node)
    t0 = time.monotonic()
    how = stop(cluster, node, grace=min(10.0, timeout / 2))
    if configs.leaves_on_terminate(n):  # an agent that does not leave stays listed alive: nothing to wait for
        _wait_left(cluster, n, timeout=5.0)
    pid = process.spawn(cluster, n)
    deadline = t0 + timeout
    _wait_http(n, pid, deadline)
    if wait_join:
        _wait_joined(cluster, n, pid, deadline, timeout)
    took = time.monotonic() - t0
    note(f"lab: restarted {node} (pid {pid}, previous agent {how}) in {took:.1f}s")
    return took


def down(workdir: str | os.PathLike | LabCluster, grace: float = 2.0, quiet: bool = False) -> dict[str, str]:
    """Stop every agent (SIGTERM, SIGKILL after `grace` s) and remove the pid files. Idempotent;
    configs, data and logs are kept. Returns node -> 'stopped' or 'killed' for the agents that ran."""
    if not isinstance(workdir, LabCluster) and not exists(workdir):
        return {}
    cluster = cluster_of(workdir)
    pids = process.running_pids(cluster)
    how = process.signal_and_wait(pids, grace) if pids else {}
    process.forget_pids(cluster)
    if not quiet:
        for name, h in how.items():
            note(f"lab: {h} {name}")
    return how


def status(workdir: str | os.PathLike | LabCluster, timeout: float = 2.0) -> list[NodeStatus]:
    """One row per node, from each agent's own /v1/agent/members and /v1/agent/self (python-consul2)."""
    cluster = cluster_of(workdir)
    rows = []
    for n in cluster.nodes:
        pid = process.read_pid(n)
        running = process.pid_alive(pid, n)
        row = dict(name=n.name, role=n.role, group=n.group, pid=pid if running else None,
                   running=running, http_addr=n.http_addr)
        if not running:
            rows.append(NodeStatus(**row, error="not running"))
            continue
        try:
            member_list, me = agentapi.answers(n, timeout)
        except Exception as e:  # requests / consul exceptions
            rows.append(NodeStatus(**row, error=f"HTTP API: {e}"))
            continue
        rows.append(NodeStatus(**row, **agentapi.gossip_view(member_list, me)))
    return rows


@contextlib.contextmanager
def running_lab(tmp_path: str | os.PathLike, **kw) -> Iterator[LabCluster]:
    """`with running_lab(tmp_path, servers=3, clients=2) as lab:` ... always downs the lab."""
    workdir = kw.pop("workdir", None) or os.path.join(os.fspath(tmp_path), "lab")
    try:
        yield up(workdir, **kw)
    finally:
        down(workdir, quiet=True)


# ---------------------------------------------------------------- waits

def _wait_http(node: LabNode, pid: int, deadline: float) -> None:
    """Until the agent answers on its HTTP API; LabError with its log if it exits or `deadline` passes."""
    def answering() -> tuple[bool, None]:
        if not process.pid_alive(pid):
            raise LabError(f"agent {node.name} exited during start-up; last lines of {node.log_path}:\n"
                           f"{process.log_tail(node)}")
        return agentapi.members(node, timeout=0.5) is not None, None

    if not wait_until(answering, timeout=deadline - time.monotonic(), interval=POLL).ok:
        raise LabError(f"agent {node.name} (pid {pid}) did not answer on {node.http_addr}; "
                       f"last lines of {node.log_path}:\n{process.log_tail(node)}")


def _wait_joined(cluster: LabCluster, n: LabNode, pid: int, deadline: float, timeout: float) -> None:
    """Until `n` sees itself and another member alive; LabError with its log if it exits or `deadline` passes."""
    if len(cluster.nodes) == 1:
        return

    def joined() -> tuple[bool, None]:
        m = agentapi.members(n)
        if m and m.get(n.name) == ALIVE and any(v == ALIVE for k, v in m.items() if k != n.name):
            return True, None
        if not process.pid_alive(pid):
            raise LabError(f"agent {n.name} exited after start; last lines of {n.log_path}:\n"
                           f"{process.log_tail(n)}")
        return False, None

    if not wait_until(joined, timeout=deadline - time.monotonic(), interval=POLL).ok:
        raise LabError(f"agent {n.name} (pid {pid}) is running but did not rejoin the cluster within "
                       f"{timeout:.0f}s (it sees no other alive member); last lines of {n.log_path}:\n"
                       f"{process.log_tail(n)}")


def _wait_left(cluster: LabCluster, n: LabNode, timeout: float) -> None:
    """Wait until the servers no longer list `n` as alive (bounded by `timeout`; best effort).

    memberlist ignores the new agent's alive message (incarnation 0) while a peer still holds the
    old one as alive; if the old agent's leave reaches that peer afterwards, the peer marks the new
    agent left, and only a push/pull (every 30 s on the LAN profile) lets it refute. Starting the new
    agent after the servers (its join targets) have processed the leave makes its join's push/pull
    carry the leave, so it refutes at once. Seen as 30-60 s stalls on a loaded 33-agent lab.
    """
    peers = [s for s in cluster.servers if s.name != n.name]

    def dropped() -> tuple[bool, None]:
        views = [agentapi.members(peer, timeout=0.5) for peer in peers]
        return all(v is None or v.get(n.name) != ALIVE for v in views), None

    wait_until(dropped, timeout=timeout, interval=POLL)
