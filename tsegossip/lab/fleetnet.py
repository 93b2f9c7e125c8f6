"""The fleet's plumbing on this machine: network namespaces, a bridge, and a filesystem view per host.

Everything here runs on the runner, as root (../shared/facts/fleet-lab.md has the measured recipe):
  - network: netns `tsgf-<host>` with a veth enslaved to bridge `tsgfleet0` (198.18.0.1/24, the
    benchmarking range), behind a guard route `unreachable 198.18.0.0/15` added first, so that with
    the bridge gone the addresses answer "No route to host" instead of following the default route.
    No default route, no NAT, IPv6 off: a host reaches only the bridge and the other hosts.
  - filesystem: a persistent mount namespace per host (`unshare --mount=FILE`, FILE on a private bind
    mount), in which a per-host directory is bind-mounted over each of HOST_PATHS. `ip netns exec`
    would make a fresh mount namespace per call and lose the binds, so commands enter with nsenter.
Names never go to DNS: everything is addressed by IP.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

from .model import LabError

BRIDGE = "tsgfleet0"
NETNS_PREFIX = "tsgf-"
SUBNET_PREFIX = "198.18.0."
BRIDGE_ADDR = SUBNET_PREFIX + "1"
GUARD = "198.18.0.0/15"
PREFIX_LEN = 24

# Paths each host sees as its own (bind-mounted from its private directory or file). /root too:
# without it every ssh session would run the runner's shell start-up files (measured 2-10x slower).
# Its own user database, sudoers.d and /home give it users the runner does not have (`consul`, the
# owner of /etc/consul.d as packages make it; `deploy`, a sudo user); its own /etc/hosts names the
# host, so that sudo's look-up of the host name never goes to DNS.
HOST_DIRS = ("/etc/consul.d", "/var/lib/consul", "/etc/ssh", "/root", "/home", "/etc/sudoers.d")
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts")
HOST_PATHS = HOST_DIRS + HOST_FILES


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, input: bytes | None = None,
        ) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed (needed for the fleet)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s") from None
    if check and done.returncode != 0:
        err = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise LabError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {err}")
    return done


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the fleet needs root (network and mount namespaces, a bridge, sshd on port 22)")


def netns_name(host: str) -> str:
    return NETNS_PREFIX + host


def veth_name(host: str) -> str:
    return (NETNS_PREFIX + host)[:15]  # IFNAMSIZ


def existing_netns() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(NETNS_PREFIX))
    except FileNotFoundError:
        return []


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", name], check=False).returncode == 0


# ------------------------------------------------------------------ network

def make_bridge() -> None:
    run(["ip", "route", "replace", "unreachable", GUARD])  # first: nothing leaks if the rest fails
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["sysctl", "-q", "-w", f"net.ipv6.conf.{BRIDGE}.disable_ipv6=1"])
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE]).stdout.decode()
    if f"{BRIDGE_ADDR}/{PREFIX_LEN}" not in addrs:
        run(["ip", "addr", "add", f"{BRIDGE_ADDR}/{PREFIX_LEN}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def make_host_network(host: str, addr: str) -> None:
    ns, veth = netns_name(host), veth_name(host)
    if ns not in existing_netns():
        run(["ip", "netns", "add", ns])
    if not link_exists(veth):
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", BRIDGE])
    run(["sysctl", "-q", "-w", f"net.ipv6.conf.{veth}.disable_ipv6=1"], check=False)
    run(["ip", "link", "set", veth, "up"])
    inside = ["ip", "netns", "exec", ns]
    run([*inside, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"], check=False)
    run([*inside, "ip", "link", "set", "lo", "up"])
    have = run([*inside, "ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout.decode()
    if f"{addr}/{PREFIX_LEN}" not in have:
        run([*inside, "ip", "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", "eth0"])
    run([*inside, "ip", "link", "set", "eth0", "up"])


def set_link(host: str, up: bool) -> None:
    """Cut a host off (or reconnect it) by taking its veth on the bridge side down."""
    run(["ip", "link", "set", veth_name(host), "up" if up else "down"])


def remove_network(hosts: Iterable[str]) -> None:
    for host in hosts:
        if link_exists(veth_name(host)):
            run(["ip", "link", "del", veth_name(host)], check=False)
        if netns_name(host) in existing_netns():
            run(["ip", "netns", "del", netns_name(host)], check=False)
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)
    # The guard route stays: it only ever makes 198.18.0.0/15 unreachable.


def netns_pids(host: str) -> list[int]:
    if netns_name(host) not in existing_netns():
        return []
    out = run(["ip", "netns", "pids", netns_name(host)], check=False).stdout.decode().split()
    return [int(p) for p in out if p.isdigit()]


# ------------------------------------------------------------------ filesystems

def _is_mount_point(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return any(line.split()[4] == target for line in fh)


def make_ns_dir(ns_dir: Path) -> None:
    """A private bind mount to hold the namespace files (a namespace file on a shared mount is refused)."""
    ns_dir.mkdir(parents=True, exist_ok=True)
    if not _is_mount_point(ns_dir):
        run(["mount", "--bind", str(ns_dir), str(ns_dir)])
        run(["mount", "--make-private", str(ns_dir)])


def make_host_mounts(ns_dir: Path, host: str, sources: dict[str, Path]) -> None:
    """The host's mount and UTS namespaces, with its directories bound over HOST_PATHS."""
    mnt, uts = ns_dir / f"{host}.mnt", ns_dir / f"{host}.uts"
    if _is_mount_point(mnt):
        return
    for target in HOST_DIRS:  # mount points must exist on the runner: empty directories
        os.makedirs(target, exist_ok=True)
    for target in HOST_FILES:
        if not os.path.exists(target):
            raise LabError(f"{target} does not exist on the runner; the fleet binds a host's own copy over it")
    mnt.touch()
    uts.touch()
    binds = " && ".join(f"mount --bind {src} {dst}" for dst, src in sources.items())
    run(["unshare", f"--mount={mnt}", f"--uts={uts}", "--propagation", "private",
         "sh", "-c", f"{binds} && hostname {host}"])


def remove_host_mounts(ns_dir: Path, hosts: Iterable[str]) -> None:
    for host in hosts:
        for suffix in ("mnt", "uts"):
            f = ns_dir / f"{host}.{suffix}"
            if f.exists() and _is_mount_point(f):
                run(["umount", str(f)], check=False)
    if ns_dir.exists() and _is_mount_point(ns_dir):
        run(["umount", str(ns_dir)], check=False)


def enter(ns_dir: Path, host: str) -> list[str]:
    """The argv prefix that runs a command on `host`: its network, mounts and host name."""
    return ["nsenter", f"--net=/run/netns/{netns_name(host)}", f"--mount={ns_dir / (host + '.mnt')}",
            f"--uts={ns_dir / (host + '.uts')}", "--"]
