"""A multi-host test fleet: each host a network namespace with its own address, its own view of
/etc/consul.d, /var/lib/consul, /etc/ssh and /root, a real sshd and a real Consul agent.

The runner (this machine's root namespace, holding the bridge address 198.18.0.1) reaches the hosts
only over SSH (port 22) and Consul's HTTP API (port 8500 on the host's address): a file the runner
writes to its own /etc/consul.d never reaches an agent. Where things live:

  on the runner   <workdir>/fleet.json (the record), <workdir>/runner/{id_ed25519,known_hosts,ssh_config}
                  (the runner's identity and the hosts' keys), <workdir>/ns/ (namespace files)
  on host h       <workdir>/hosts/h/{consul.d,consul,ssh,root}, seen by h (only) as /etc/consul.d,
                  /var/lib/consul, /etc/ssh, /root; its agent's data, log and pid file and its
                  `consulctl` (start/stop/restart: the fleet has no systemd) under /var/lib/consul

`up` is idempotent per host and `down` removes whatever a crashed run left (it also finds
namespaces and mounts without a fleet.json). Real Consul and Debian's openssh-server only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..agentconfig import fragment
from ..atomicfile import write_json, write_text
from ..keys import GossipKey
from ..phases import Phase
from . import fleetnet as net
from .agentapi import REANNOUNCE_EVERY, STALE_LEAVING_AFTER
from .model import LabError, note
from .process import ensure_binary

DEFAULT_WORKDIR = Path("/tmp/tsegossip-fleet")
# The one fleet this machine has (its addresses and interface names are fixed): where it lives, so that
# `up` elsewhere removes it first and `down` finds it. In /run: gone on reboot, like the namespaces.
CURRENT = Path("/run/tsegossip-fleet")
FIRST_HOST = 11
HTTP_PORT = 8500
SERF_LAN_PORT = 8301  # Consul's default, as 00-base.json leaves it
SSHD = "/usr/sbin/sshd"
CONFIG_PATH = "/etc/consul.d/50-gossip.json"
CONSULCTL = "/var/lib/consul/consulctl"
RESTART_COMMAND = f"{CONSULCTL} restart"
IDENTITY_ENV = "TSEGOSSIP_FLEET_IDENTITY"
_DIRS = {"/etc/consul.d": "consul.d", "/var/lib/consul": "consul", "/etc/ssh": "ssh", "/root": "root",
         "/home": "home", "/etc/sudoers.d": "sudoers.d"}
_FILES = {"/etc/passwd": "etc/passwd", "/etc/group": "etc/group", "/etc/shadow": "etc/shadow",
          "/etc/hosts": "etc/hosts"}
# Users every host has besides the runner's: `consul` owns /etc/consul.d (as Debian/HashiCorp packages
# make it), `deploy` logs in with the runner's key and may sudo (without a password unless a test
# changes /etc/sudoers.d/deploy on that host).
CONSUL_UID = 9100
DEPLOY_UID = 9101
DEPLOY_USER = "deploy"


@dataclass(frozen=True)
class FleetHost:
    name: str
    role: str            # server | client
    group: str | None    # a client's group
    addr: str
    started: bool = True  # False: a client that has not joined yet (its agent is not running)

    @property
    def http_addr(self) -> str:
        return f"http://{self.addr}:{HTTP_PORT}"


@dataclass(frozen=True)
class Fleet:
    workdir: str
    binary: str
    hosts: tuple[FleetHost, ...]

    @property
    def root(self) -> Path:
        return Path(self.workdir)

    @property
    def ns_dir(self) -> Path:
        return self.root / "ns"

    @property
    def runner_dir(self) -> Path:
        return self.root / "runner"

    @property
    def identity(self) -> Path:
        return self.runner_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.runner_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.runner_dir / "ssh_config"

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def private(self, host: str, path: str) -> Path:
        """Where the runner finds `path` of `host` (e.g. /etc/consul.d/50-gossip.json): for tests only;
        tsegossip itself never uses it."""
        if path in _FILES:
            return self.host_dir(host) / _FILES[path]
        for dst, sub in _DIRS.items():
            if path == dst or path.startswith(dst + "/"):
                return self.host_dir(host) / sub / path[len(dst):].lstrip("/")
        raise LabError(f"{path} is not one of a fleet host's own paths ({', '.join([*_DIRS, *_FILES])})")

    def host(self, name: str) -> FleetHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in the fleet at {self.workdir}")

    @property
    def servers(self) -> list[FleetHost]:
        return [h for h in self.hosts if h.role == "server"]

    @property
    def clients(self) -> list[FleetHost]:
        return [h for h in self.hosts if h.role == "client"]

    def groups(self) -> dict[str, list[FleetHost]]:
        out: dict[str, list[FleetHost]] = {}
        for h in self.clients:
            out.setdefault(h.group or "clients", []).append(h)
        return out

    def enter(self, host: str) -> list[str]:
        return net.enter(self.ns_dir, host)

    def save(self) -> None:
        write_json(self.root / "fleet.json", {"workdir": self.workdir, "binary": self.binary,
                                              "hosts": [asdict(h) for h in self.hosts]})


def load(workdir: str | os.PathLike = DEFAULT_WORKDIR) -> Fleet:
    path = Path(workdir) / "fleet.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no fleet at {workdir} (no fleet.json); make one with `tsegossip lab fleet up`") from None
    return Fleet(doc["workdir"], doc["binary"], tuple(FleetHost(**h) for h in doc["hosts"]))


# ------------------------------------------------------------------ the fleet's shape

def plan_hosts(servers: int, groups: Mapping[str, int], not_started: Sequence[str] = ()) -> tuple[FleetHost, ...]:
    """server-1..N then <group>-1..M, addresses from 198.18.0.11 up."""
    if servers < 1:
        raise LabError("a fleet needs at least 1 server")
    names: list[tuple[str, str, str | None]] = [(f"server-{i}", "server", None) for i in range(1, servers + 1)]
    for g, n in groups.items():
        names += [(f"{g}-{i}", "client", g) for i in range(1, n + 1)]
    if FIRST_HOST + len(names) > 250:
        raise LabError(f"{len(names)} hosts do not fit in 198.18.0.{FIRST_HOST}-250")
    unknown = set(not_started) - set(groups)
    if unknown:
        raise LabError(f"--not-started names no group: {', '.join(sorted(unknown))}")
    return tuple(FleetHost(name, role, group, f"{net.SUBNET_PREFIX}{FIRST_HOST + i}",
                           started=not (group in not_started))
                 for i, (name, role, group) in enumerate(names))


def base_config(fleet: Fleet, h: FleetHost) -> dict:
    """00-base.json: Consul's default ports on the host's own address; servers join the other servers."""
    others = [s.addr for s in fleet.servers if s.addr != h.addr]
    if h.role == "server" and not others:
        others = [c.addr for c in fleet.clients]
    cfg = {
        "node_name": h.name, "datacenter": "dc1", "data_dir": "/var/lib/consul/data",
        "server": h.role == "server", "bind_addr": h.addr, "client_addr": h.addr,
        "ports": {"dns": -1, "grpc": -1, "grpc_tls": -1, "https": -1, "serf_wan": -1},
        "retry_join": others, "retry_interval": "1s", "disable_update_check": True, "log_level": "info",
        "performance": {"raft_multiplier": 1}, "connect": {"enabled": False}, "ui_config": {"enabled": False},
    }
    if h.role == "server":
        cfg["bootstrap_expect"] = len(fleet.servers)
    return cfg


CONSULCTL_SCRIPT = r'''#!/bin/sh
# consulctl start|stop|restart|status: this fleet host's Consul agent (the fleet has no systemd).
# Written by `tsegossip lab fleet up`; runs on the host (over ssh), never on the runner.
CONSUL='@CONSUL@'
PIDF=/var/lib/consul/agent.pid
LOG=/var/lib/consul/agent.log
alive() {
  pid=$(cat "$PIDF" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
  [ "$st" != Z ] && [ "$st" != X ] || return 1
  # pid reuse: it must be an agent of this host (same mount namespace)
  [ "$(readlink /proc/$pid/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- '-config-dir /etc/consul.d'
}
stop() {
  if alive; then
    kill -TERM "$pid"
    i=0
    while alive && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    alive && kill -KILL "$pid"
  fi
  rm -f "$PIDF"
}
start() {
  alive && return 0
  echo "=== consulctl: starting at $(date -u +%FT%TZ) ===" >> "$LOG"
  setsid "$CONSUL" agent -config-dir /etc/consul.d >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDF"
}
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if alive; then echo "running $pid"; else echo stopped; exit 3; fi ;;
  *) echo "usage: consulctl start|stop|restart|status" >&2; exit 2 ;;
esac
'''

SSHD_CONFIG = """# sshd of fleet host {name} (tsegossip lab fleet); runs inside the host's namespaces.
ListenAddress {addr}:22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /etc/ssh/sshd.pid
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
UseDNS no
PrintMotd no
AcceptEnv none
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


def _users(d: Path, h: FleetHost, runner_pub: str) -> None:
    """The host's own passwd/group/shadow (the runner's plus consul and deploy), hosts, sudoers.d."""
    (d / "etc").mkdir(exist_ok=True)
    extra = {"passwd": [f"consul:x:{CONSUL_UID}:{CONSUL_UID}:Consul:/var/lib/consul:/usr/sbin/nologin",
                        f"{DEPLOY_USER}:x:{DEPLOY_UID}:{DEPLOY_UID}:deploy:/home/{DEPLOY_USER}:/bin/sh"],
             "group": [f"consul:x:{CONSUL_UID}:", f"{DEPLOY_USER}:x:{DEPLOY_UID}:"],
             # `*`: no password, but not locked (sshd refuses a locked account's key login)
             "shadow": ["consul:*:19000:0:99999:7:::", f"{DEPLOY_USER}:*:19000:0:99999:7:::"]}
    for name, lines in extra.items():
        own = [ln for ln in Path(f"/etc/{name}").read_text().splitlines()
               if ln.split(":")[0] not in ("consul", DEPLOY_USER)]
        write_text(d / "etc" / name, "\n".join(own + lines) + "\n")
    os.chmod(d / "etc" / "shadow", 0o640)
    write_text(d / "etc" / "hosts", f"127.0.0.1 localhost\n127.0.1.1 {h.name}\n{h.addr} {h.name}\n")
    set_sudo(d / "sudoers.d", password=False)
    home = d / "home" / DEPLOY_USER / ".ssh"
    home.mkdir(parents=True, exist_ok=True)
    write_text(home / "authorized_keys", runner_pub, private=True)
    for p in (home.parent, home, home / "authorized_keys"):
        os.chown(p, DEPLOY_UID, DEPLOY_UID)
    os.chmod(home.parent, 0o755)


def set_sudo(sudoers_dir: Path, password: bool) -> None:
    """deploy's sudo rule on one host: without a password (default) or wanting one (`sudo -n` then fails)."""
    rule = f"{DEPLOY_USER} ALL=(ALL) {'' if password else 'NOPASSWD: '}ALL\n"
    path = sudoers_dir / DEPLOY_USER
    write_text(path, rule)
    os.chmod(path, 0o440)


def _host_files(fleet: Fleet, h: FleetHost, runner_pub: str, frag: Mapping) -> None:
    d = fleet.host_dir(h.name)
    for sub in _DIRS.values():
        (d / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(d / "root", 0o700)
    _users(d, h, runner_pub)
    (d / "consul" / "data").mkdir(exist_ok=True)
    ssh = d / "ssh"
    key = ssh / "ssh_host_ed25519_key"
    if not key.exists():
        net.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(key)])
    write_text(ssh / "sshd_config", SSHD_CONFIG.format(name=h.name, addr=h.addr))
    dotssh = d / "root" / ".ssh"
    dotssh.mkdir(mode=0o700, exist_ok=True)
    write_text(dotssh / "authorized_keys", runner_pub, private=True)
    write_json(d / "consul.d" / "00-base.json", base_config(fleet, h))
    gossip = d / "consul.d" / "50-gossip.json"
    write_json(gossip, dict(frag), private=True)
    for p in (d / "consul.d", gossip):  # the agent's user owns its config, as packages install it
        os.chown(p, CONSUL_UID, CONSUL_UID)
    ctl = d / "consul" / "consulctl"
    write_text(ctl, CONSULCTL_SCRIPT.replace("@CONSUL@", fleet.binary))
    os.chmod(ctl, 0o755)


def _runner_files(fleet: Fleet) -> str:
    fleet.runner_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(fleet.runner_dir, 0o700)
    if not fleet.identity.exists():
        net.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tsegossip-fleet-runner",
                 "-f", str(fleet.identity)])
    return Path(str(fleet.identity) + ".pub").read_text()


def write_known_hosts(fleet: Fleet, hosts: Sequence[FleetHost] | None = None) -> None:
    """The hosts' keys, as an operator would have verified them (read from each host's own files)."""
    lines = []
    for h in (hosts if hosts is not None else fleet.hosts):
        pub = (fleet.host_dir(h.name) / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        lines.append(f"{h.addr} {pub[0]} {pub[1]}")
    write_text(fleet.known_hosts, "\n".join(lines) + "\n")
    write_text(fleet.ssh_config, "\n".join([
        "# OpenSSH client config for the fleet: ssh -F this-file root@198.18.0.N",
        "Host *", f"  IdentityFile {fleet.identity}", "  IdentitiesOnly yes", "  User root",
        f"  UserKnownHostsFile {fleet.known_hosts}", "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes", "  UpdateHostKeys no", "  GSSAPIAuthentication no",
        "  ControlMaster no", "  ControlPath none", "  BatchMode yes", ""]))


def host_run(fleet: Fleet, host: str, argv: Sequence[str], timeout: float = 60, check: bool = True,
             input: bytes | None = None):
    """Run argv on `host` (its namespaces), from the runner: the fleet's own setup and the tests' faults."""
    return net.run([*fleet.enter(host), *argv], timeout=timeout, check=check, input=input)


def start_sshd(fleet: Fleet, host: str) -> None:
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    if not sshd_running(fleet, host):
        host_run(fleet, host, [SSHD, "-f", "/etc/ssh/sshd_config", "-E", "/etc/ssh/sshd.log"])


def sshd_pid(fleet: Fleet, host: str) -> int | None:
    try:
        pid = int((fleet.host_dir(host) / "ssh" / "sshd.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return None
    except (FileNotFoundError, IndexError):
        return None
    return pid


def sshd_running(fleet: Fleet, host: str) -> bool:
    return sshd_pid(fleet, host) is not None


def stop_sshd(fleet: Fleet, host: str) -> None:
    pid = sshd_pid(fleet, host)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while sshd_running(fleet, host) and time.monotonic() < deadline:
            time.sleep(0.05)


def consulctl(fleet: Fleet, host: str, verb: str, timeout: float = 60) -> str:
    return host_run(fleet, host, [CONSULCTL, verb], timeout=timeout, check=verb != "status").stdout.decode()


def members(fleet: Fleet, via: str | None = None, timeout: float = 2.0) -> dict[str, str]:
    """name -> serf status name, as an agent of the fleet lists its LAN members (HTTP from the runner)."""
    h = fleet.host(via) if via else fleet.servers[0]
    with urllib.request.urlopen(f"{h.http_addr}/v1/agent/members", timeout=timeout) as resp:
        rows = json.load(resp)
    names = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}
    return {r["Name"]: names.get(r["Status"], str(r["Status"])) for r in rows}


def reannounce(fleet: Fleet, agent: str, peer: str, timeout: float = 5.0) -> bool:
    """`agent` joins `peer` (PUT /v1/agent/join on the agent's host, to the peer's serf LAN port):
    the fresh join intent ends the peer's stale `leaving` for it (cluster.StaleLeaves says why)."""
    req = urllib.request.Request(f"{fleet.host(agent).http_addr}/v1/agent/join/{fleet.host(peer).addr}:{SERF_LAN_PORT}",
                                 method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def wait_converged(fleet: Fleet, names: Sequence[str] | None = None, timeout: float = 90,
                   progress=note) -> dict[str, str]:
    """Wait until the first server lists every started (or named) host alive; its last listing.

    A host it keeps listing `leaving` or `left` for STALE_LEAVING_AFTER s while the host's own agent lists
    itself alive is re-announced (serf's late leave intent: cluster.StaleLeaves)."""
    want = list(names) if names is not None else [h.name for h in fleet.hosts if h.started]
    peer = fleet.servers[0].name
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    since: dict[str, float] = {}
    last: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            seen = members(fleet)
            if all(seen.get(n) == "alive" for n in want):
                return seen
        except (OSError, urllib.error.URLError, ValueError):
            pass
        now = time.monotonic()
        for n in want:
            if seen.get(n) not in ("leaving", "left"):
                since.pop(n, None)
                continue
            first = since.setdefault(n, now)
            if now - first < STALE_LEAVING_AFTER or now - last.get(n, -REANNOUNCE_EVERY) < REANNOUNCE_EVERY:
                continue
            try:
                own = members(fleet, via=n).get(n)
            except (OSError, urllib.error.URLError, ValueError):
                own = None
            if own == "alive":
                last[n] = now
                ok = reannounce(fleet, n, peer)
                progress(f"fleet: {peer} has listed {n} as {seen[n]} for {now - first:.1f}s although {n} is "
                         f"alive: a leave from before its restart that outran the rejoin; {n} joins {peer} again"
                         + ("" if ok else " (the join call failed; trying again later)"))
        time.sleep(0.2)
    missing = {n: seen.get(n, "absent") for n in want if seen.get(n) != "alive"}
    raise LabError(f"the fleet did not converge within {timeout:.0f}s: {missing}")


def fragments_for(fleet: Fleet, phases: Mapping[str, str], key: str | None) -> dict[str, dict]:
    """host -> its initial 50-gossip.json from `phases` (keys: host, group, servers or clients)."""
    out = {}
    for h in fleet.hosts:
        phase = "plaintext"
        for k in (h.name, h.group, "servers" if h.role == "server" else "clients"):
            if k is not None and k in phases:
                phase = phases[k]
                break
        p = Phase(phase)
        if p.has_key and not key:
            raise LabError(f"phase {phase} of {h.name} needs a key")
        out[h.name] = fragment(p, GossipKey(key) if p.has_key else None, reveal=True)
    return out


# ------------------------------------------------------------------ up and down

def up(workdir: str | os.PathLike = DEFAULT_WORKDIR, servers: int = 3, groups: Mapping[str, int] | None = None,
       phases: Mapping[str, str] | None = None, key: str | None = None, not_started: Sequence[str] = (),
       binary: str | None = None, progress=lambda line: None) -> Fleet:
    """Make the fleet (network, filesystems, sshd, agents) and wait until the started agents converge."""
    net.require_root()
    if not shutil.which(SSHD) and not os.path.exists(SSHD):
        raise LabError(f"{SSHD} not found: install Debian's openssh-server (./bootstrap does)")
    workdir = Path(workdir).resolve()
    try:
        earlier = Path(CURRENT.read_text().strip())
    except (FileNotFoundError, ValueError):
        earlier = None
    if earlier is not None and earlier != workdir:
        down(earlier, progress=progress)  # one fleet per machine: the earlier one goes first
    if (workdir / "fleet.json").exists() or net.existing_netns():
        down(workdir, progress=progress)  # a leftover fleet (or a crashed run's namespaces): start clean
    hosts = plan_hosts(servers, dict(groups if groups is not None else {"web": 3, "api": 3}), not_started)
    fleet = Fleet(str(workdir), ensure_binary(binary), hosts)
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    fleet.save()  # first: `down` can then clean up whatever the rest leaves half made
    write_text(CURRENT, f"{workdir}\n")
    runner_pub = _runner_files(fleet)
    frags = fragments_for(fleet, phases or {}, key)
    net.make_bridge()
    net.make_ns_dir(fleet.ns_dir)
    for h in hosts:
        _host_files(fleet, h, runner_pub, frags[h.name])
        net.make_host_network(h.name, h.addr)
        net.make_host_mounts(fleet.ns_dir, h.name, {dst: fleet.host_dir(h.name) / sub
                                                    for dst, sub in {**_DIRS, **_FILES}.items()})
        start_sshd(fleet, h.name)
    write_known_hosts(fleet)
    progress(f"fleet: {len(hosts)} host(s) with sshd up in {time.monotonic() - t0:.1f}s")
    for h in hosts:
        if h.started:
            consulctl(fleet, h.name, "start")
    wait_converged(fleet)
    progress(f"fleet: {sum(h.started for h in hosts)} agent(s) converged after {time.monotonic() - t0:.1f}s "
             f"(hosts {hosts[0].addr}-{hosts[-1].addr}, bridge {net.BRIDGE_ADDR})")
    return fleet


def down(workdir: str | os.PathLike = DEFAULT_WORKDIR, progress=lambda line: None) -> list[str]:
    """Stop every agent and sshd, remove the namespaces, mounts, bridge and files. Idempotent; also
    removes what a crashed run left (namespaces named tsgf-*, mounts under <workdir>/ns)."""
    net.require_root()
    workdir = Path(workdir).resolve()
    try:
        fleet = load(workdir)
        names = [h.name for h in fleet.hosts]
    except (LabError, ValueError, KeyError, TypeError):
        fleet = None
        names = []
    names = sorted(set(names) | {n[len(net.NETNS_PREFIX):] for n in net.existing_netns()})
    ns_dir = workdir / "ns"
    # Agents first, gracefully (clients leave), all at once; then whatever else runs in a host.
    if fleet is not None:
        def stop(n: str) -> None:
            if (ns_dir / f"{n}.mnt").exists():
                try:
                    consulctl(fleet, n, "stop", timeout=40)
                except LabError:
                    pass

        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(stop, names))
    for n in names:
        for pid in net.netns_pids(n):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    net.remove_host_mounts(ns_dir, names)
    net.remove_network(names)
    if workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        if Path(CURRENT.read_text().strip()) == workdir:
            CURRENT.unlink()
    except (FileNotFoundError, ValueError):
        pass
    if names:
        progress(f"fleet: removed {len(names)} host(s) and {workdir}")
    return names


# ------------------------------------------------------------------ a spec for the fleet

def spec(fleet: Fleet, name: str = "fleet", key_env: str = "TSEGOSSIP_FLEET_KEY",
         phases: Mapping[str, str] | None = None, strategy: str = "smooth", batch_size: int = 1,
         delivery: Mapping[str, Mapping] | None = None, not_joined: Sequence[str] = ()) -> dict:
    """A rollout spec for the fleet with ssh delivery (identity from $TSEGOSSIP_FLEET_IDENTITY).

    `delivery` overrides a role's block (keys: servers or a group name).
    """
    phases = dict(phases or {})
    ssh = {"method": "ssh", "host": "{http_host}", "user": "root", "identity_env": IDENTITY_ENV,
           "known_hosts": str(fleet.known_hosts), "connect_timeout_seconds": 5, "timeout_seconds": 60}
    delivery = dict(delivery or {})
    first = fleet.servers[0]

    def nodes(hs):
        return [{"name": h.name, "http_addr": h.http_addr} for h in hs]

    groups = []
    for g, hs in fleet.groups().items():
        groups.append({"name": g, "phase": phases.get(g, "plaintext"), "joined": g not in not_joined,
                       "config_path": CONFIG_PATH, "restart_command": RESTART_COMMAND, "batch_size": batch_size,
                       "delivery": delivery.get(g, ssh), "nodes": nodes(hs)})
    return {
        "name": name, "strategy": strategy, "key_env": key_env,
        "servers": {"type": "self-managed", "phase": phases.get("servers", "plaintext"),
                    "http_addr": first.http_addr, "nodes": nodes(fleet.servers), "config_path": CONFIG_PATH,
                    "restart_command": RESTART_COMMAND, "delivery": delivery.get("servers", ssh)},
        "client_groups": groups,
        "timeouts": {"batch_seconds": 60, "poll_seconds": 0.25},
    }
