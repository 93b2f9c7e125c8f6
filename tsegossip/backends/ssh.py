"""SSH delivery: the node's own host writes its fragment and runs its restart command.

Why asyncssh (README "Delivery"): host keys are checked in-process against the one known_hosts file
the spec names, with no accept-new path and no ssh_config or ControlMaster that could let a changed
key through (an open OpenSSH master still connects after the host key changed); one connection
per host per step carries the checks, the write and the restart; the hosts of a batch are served
concurrently from one event loop; the content goes only into the channel's stdin.

Side effects, all on the node's host (the runner only opens connections): a temp file beside
config_path, filled from stdin, owned and moded, checked by sha256, fsynced and renamed over
config_path (the old file stays intact on any failure), then the restart command. With sudo, both
run under `sudo -n`, which never prompts.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import shlex
import threading
import time
from typing import Any, Coroutine, Iterable, Mapping, TypeVar

import asyncssh

from ..delivery import Delivery
from . import commands, files
from .session import Context, DeliveryFailed, Session, Target

T = TypeVar("T")

MAX_PARALLEL_CONNECTS = 64  # preflight of a large step: bounded, like the batch itself
KEEPALIVE_SECONDS = 15

# Runs on the host under sh. $1 path, $2 mode, $3 owner, $4 group, $5 sha256 of the content expected.
# Exit codes name the stage that failed; every failure removes the temp file and leaves $1 as it was.
WRITE_SCRIPT = r'''
p=$1; mode=$2; owner=$3; group=$4; want=$5
d=$(dirname -- "$p")
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 10; }
t=$(mktemp "$d/.tsegossip.XXXXXX" 2>/dev/null) || { echo "cannot create a file in $d (read-only or no permission)" >&2; exit 11; }
trap 'rm -f -- "$t"' EXIT HUP INT TERM
cat > "$t" || { echo "writing $t failed (disk full?)" >&2; exit 12; }
if [ -n "$owner$group" ]; then chown -- "$owner:$group" "$t" || exit 14
elif [ -e "$p" ]; then chown --reference="$p" -- "$t" || exit 14
else chown --reference="$d" -- "$t" || exit 14
fi
chmod "$mode" "$t" || exit 14
got=$(sha256sum < "$t") || exit 13
[ "${got%% *}" = "$want" ] || { echo "the written file's sha256 ${got%% *} is not the content's" >&2; exit 13; }
sync -- "$t" 2>/dev/null || sync
mv -f -- "$t" "$p" || { echo "renaming over $p failed" >&2; exit 15; }
trap - EXIT HUP INT TERM
sync -- "$d" 2>/dev/null || true
got=$(sha256sum < "$p") && echo "${got%% *}"
'''

# Preflight, before anything is written anywhere: sudo works without a password, the directory is there
# and writable. $1 the config directory.
CHECK_SCRIPT = r'''
d=$1
[ -d "$d" ] || { echo "directory $d does not exist" >&2; exit 10; }
[ -w "$d" ] || { echo "directory $d is not writable (read-only or no permission)" >&2; exit 11; }
echo ok
'''


# An agent's serf/local.keyring read on its own host: $1 the file. Prints the sha256 of each key (a JSON list of
# base64 strings, primary first), one per line, so that no key leaves the host; exit 3 when it cannot be read.
KEYRING_SCRIPT = r'''
f=$1
[ -r "$f" ] || exit 3
{ tr -d '[]" \t\r\n' < "$f" | tr ',' '\n'; echo; } | while IFS= read -r k; do
  [ -n "$k" ] || continue
  got=$(printf %s "$k" | base64 -d 2>/dev/null | sha256sum) || exit 4
  echo "${got%% *}"
done
'''


class SshSession(Session):
    """One step's connections: opened by preflight, reused for every write and restart, closed at the end."""

    def __init__(self, delivery: Delivery, ctx: Context) -> None:
        super().__init__(delivery, ctx)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tsegossip-ssh", daemon=True)
        self._thread.start()
        self._conns: dict[str, asyncssh.SSHClientConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._jump: asyncssh.SSHClientConnection | None = None
        self._jump_lock: asyncio.Lock | None = None
        self._keys: list[Any] | None = None
        self._addrs: dict[str, str] = {}  # node -> http_addr, for host_of

    # ------------------------------------------------------------------ the session's interface

    def host_of(self, target: Target) -> str:
        return self.delivery.host_for(target.node, target.http_addr)

    def preflight(self, targets: Iterable[Target]) -> None:
        """Connect to every host (host keys verified), check sudo and the config directory."""
        targets = list(targets)

        async def every() -> list[tuple[Target, str | None]]:
            sem = asyncio.Semaphore(MAX_PARALLEL_CONNECTS)  # made on the session's loop

            async def one(t: Target) -> tuple[Target, str | None]:
                async with sem:
                    try:
                        await self._check(t)
                        return t, None
                    except DeliveryFailed as err:
                        return t, str(err)

            return await asyncio.gather(*(one(t) for t in targets))

        results = self._call(every(), timeout=None)
        bad = [(t, why) for t, why in results if why]
        if bad:
            lines = "; ".join(f"{t.node} ({self.host_of(t)}): {why}" for t, why in bad[:10])
            more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DeliveryFailed(f"{len(bad)} of {len(targets)} host(s) failed the check before any write, so "
                                 f"nothing was written anywhere: {lines}{more}", "delivery")

    def write(self, target: Target, fragment: Mapping, timeout: float) -> None:
        try:
            text = files.fragment_text(target.config_path, fragment)
        except files.FragmentError as err:
            raise DeliveryFailed(str(err), "config_path") from None
        data = text.encode()
        want = hashlib.sha256(data).hexdigest()
        d = self.delivery
        argv = ["sh", "-c", WRITE_SCRIPT, "tsegossip-write", target.config_path, d.mode, d.owner or "",
                d.group or "", want]
        host = self.host_of(target)
        result = self._call(self._run(target, argv, text, "writing its config"), timeout=None)
        if result.exit_status != 0:
            raise DeliveryFailed(f"writing {target.config_path} on {host} failed: {_why(result)}; the old file is "
                                 f"intact and the agent was not restarted", "delivery")
        if result.stdout.strip() != want:
            raise DeliveryFailed(f"{target.config_path} on {host} does not read back as written (sha256 "
                                 f"{result.stdout.strip()[:64]!r}); the agent was not restarted", "delivery")

    def restart(self, target: Target, timeout: float) -> commands.CommandResult:
        host = self.host_of(target)
        t0 = time.monotonic()
        argv = ["sh", "-c", target.restart_command]
        result = self._call(self._run(target, argv, None, "its restart command", timeout=timeout), timeout=None)
        out = commands.redact((result.stdout or "") + (result.stderr or ""), self.ctx.secrets)
        res = commands.CommandResult(target.restart_command, result.exit_status, out[-commands.OUTPUT_LIMIT:],
                                     time.monotonic() - t0)
        if not res.ok:
            raise DeliveryFailed(f"its restart command failed on {host}: {res.describe()}", "restart_command")
        return res

    def keyring_fingerprints(self, target: Target, path: str, timeout: float) -> tuple[str, ...] | None:
        """Read on the node's own host over this session's connection; only each key's sha256 comes back."""
        argv = ["sh", "-c", KEYRING_SCRIPT, "tsegossip-keyring", path]
        try:
            result = self._call(self._run(target, argv, None, "reading its keyring", timeout=timeout), timeout=None)
        except DeliveryFailed:
            return None
        if result.exit_status != 0:
            return None
        out = tuple(line.strip()[:12] for line in (result.stdout or "").splitlines() if line.strip())
        return out if out and all(len(f) == 12 for f in out) else None

    def close(self) -> None:
        async def shut() -> None:
            for conn in list(self._conns.values()) + ([self._jump] if self._jump else []):
                conn.close()
            for conn in list(self._conns.values()) + ([self._jump] if self._jump else []):
                try:
                    await asyncio.wait_for(conn.wait_closed(), 5)
                except (asyncio.TimeoutError, OSError):
                    pass

        if self._loop.is_running():
            try:
                self._call(shut(), timeout=10)
            except DeliveryFailed:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._conns.clear()
        self._loop.close()

    # ------------------------------------------------------------------ the work, on the event loop

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise DeliveryFailed(f"no answer within {timeout:.0f}s", "delivery") from None

    async def _check(self, t: Target) -> None:
        d = self.delivery
        argv = ["sh", "-c", CHECK_SCRIPT, "tsegossip-check", posixpath.dirname(t.config_path)]
        result = await self._run(t, argv, None, "the check", timeout=d.timeout_seconds)
        if result.exit_status != 0:
            raise DeliveryFailed(_why(result), "delivery")

    async def _run(self, t: Target, argv: list[str], data: str | None, what: str,
                         timeout: float | None = None) -> asyncssh.SSHCompletedProcess:
        d = self.delivery
        host = self.host_of(t)
        limit = min(float(timeout), d.timeout_seconds) if timeout else float(d.timeout_seconds)
        conn = await self._connection(host)
        if d.sudo:
            argv = ["sudo", "-n", "--", *argv]
        command = " ".join(shlex.quote(a) for a in argv)
        try:
            return await asyncio.wait_for(
                conn.run(command, input=data, check=False), limit)
        except asyncio.TimeoutError:
            raise DeliveryFailed(f"{what} on {host} did not finish within {limit:.0f}s (delivery.timeout_seconds); "
                                 f"the host may be cut off", "delivery") from None
        except (OSError, asyncssh.Error) as err:
            raise DeliveryFailed(f"{what} on {host}: the connection failed ({_short(err)})", "delivery") from None

    async def _identity(self) -> list[Any]:
        """The keys to log in with: the file $identity_env names, else ssh-agent's."""
        if self._keys is not None:
            return self._keys
        d, env = self.delivery, self.ctx.environ
        if d.identity_env:
            path = env.get(d.identity_env)
            if not path:
                raise DeliveryFailed(f"delivery.identity_env: ${d.identity_env} is not set; it must hold the path "
                                     f"of the private key file to log in with", "delivery")
            try:
                self._keys = asyncssh.load_keypairs([path])
            except (OSError, ValueError, asyncssh.KeyImportError) as err:
                raise DeliveryFailed(f"delivery.identity_env: the key file in ${d.identity_env} ({path}) cannot be "
                                     f"read: {_short(err)} (a key with a passphrase goes through ssh-agent instead)",
                                     "delivery") from None
            return self._keys
        sock = env.get("SSH_AUTH_SOCK")
        if not sock:
            raise DeliveryFailed("no identity to log in with: set delivery.identity_env to a variable holding a "
                                 "private key file's path, or run ssh-agent (SSH_AUTH_SOCK is not set)", "delivery")
        try:
            async with asyncssh.connect_agent(sock) as agent:
                self._keys = list(await agent.get_keys())
        except (OSError, asyncssh.Error) as err:
            raise DeliveryFailed(f"ssh-agent at $SSH_AUTH_SOCK ({sock}) did not answer: {_short(err)}",
                                 "delivery") from None
        if not self._keys:
            raise DeliveryFailed("ssh-agent holds no keys (ssh-add one, or set delivery.identity_env)", "delivery")
        return self._keys

    def _options(self, keys: list[Any], user: str) -> dict[str, Any]:
        d = self.delivery
        known = d.known_hosts or ""
        if not os.path.isfile(known):
            raise DeliveryFailed(f"delivery.known_hosts: {known} does not exist or is not a file; it must hold "
                                 f"the hosts' keys (ssh-keyscan them, then check each fingerprint on its host)",
                                 "delivery")
        return dict(username=user, known_hosts=known, client_keys=keys, agent_path=None, config=[],
                    gss_auth=False, gss_kex=False, connect_timeout=d.connect_timeout_seconds,
                    login_timeout=d.connect_timeout_seconds, keepalive_interval=KEEPALIVE_SECONDS,
                    preferred_auth="publickey")

    async def _connection(self, host: str) -> asyncssh.SSHClientConnection:
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            conn = self._conns.get(host)
            if conn is not None and not conn.is_closed():
                return conn
            d = self.delivery
            keys = await self._identity()
            tunnel = await self._jump_connection(keys) if d.jump_host else ()
            self.connections[host] = self.connections.get(host, 0) + 1
            conn = await self._connect(host, d.port, d.user, keys, tunnel)
            self._conns[host] = conn
            return conn

    async def _jump_connection(self, keys: list[Any]) -> asyncssh.SSHClientConnection:
        if self._jump_lock is None:
            self._jump_lock = asyncio.Lock()
        async with self._jump_lock:
            if self._jump is None or self._jump.is_closed():
                j = self.delivery.jump_host
                self.connections[f"{j.host} (jump host)"] = self.connections.get(f"{j.host} (jump host)", 0) + 1
                self._jump = await self._connect(j.host, j.port, j.user or self.delivery.user, keys, ())
            return self._jump

    async def _connect(self, host: str, port: int, user: str, keys: list[Any], tunnel: Any):
        options = self._options(keys, user)
        try:
            return await asyncssh.connect(host, port, tunnel=tunnel, **options)
        except asyncssh.HostKeyNotVerifiable:
            raise DeliveryFailed(await self._host_key_problem(host, port, tunnel), "delivery") from None
        except asyncssh.PermissionDenied:
            raise DeliveryFailed(f"{user}@{host}:{port} refused the key(s) offered (wrong identity, or the key is "
                                 f"not in {user}'s authorized_keys there)", "delivery") from None
        except asyncio.TimeoutError:
            raise DeliveryFailed(f"no SSH answer from {host}:{port} within {self.delivery.connect_timeout_seconds}s "
                                 f"(delivery.connect_timeout_seconds): the host is down or cut off", "delivery") from None
        except (OSError, asyncssh.Error) as err:
            raise DeliveryFailed(f"cannot connect to {host}:{port}: {_short(err)} (is sshd running there?)",
                                 "delivery") from None

    async def _host_key_problem(self, host: str, port: int, tunnel: Any) -> str:
        """Unknown or changed: what the known_hosts file holds, what the host offered, how to trust it."""
        known = self.delivery.known_hosts or ""
        entry = host if port == 22 else f"[{host}]:{port}"
        try:
            offered = await asyncssh.get_server_host_key(host, port, tunnel=tunnel, config=[])
        except (OSError, asyncssh.Error):
            offered = None
        seen = f"{offered.get_algorithm()} {offered.get_fingerprint('sha256')}" if offered else "(could not read it)"
        try:
            trusted = asyncssh.read_known_hosts(known).match(host, "", port)[0]
        except (OSError, ValueError, asyncssh.Error):
            trusted = []
        if trusted:
            held = ", ".join(f"{k.get_algorithm()} {k.get_fingerprint('sha256')}" for k in trusted)
            return (f"HOST KEY CHANGED for {entry}: {known} holds {held}, the host offered {seen}. Someone may be "
                    f"intercepting the connection, or the host was reinstalled. Once you have checked the new key on "
                    f"the host itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), replace the entry: "
                    f"ssh-keygen -R '{entry}' -f {known}, then add the new key")
        return (f"host key of {entry} is unknown: {known} has no entry for it; the host offered {seen}. Check that "
                f"fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it: "
                f"ssh-keyscan -p {port} {host} >> {known}")


def _why(result: asyncssh.SSHCompletedProcess) -> str:
    err = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else (result.stderr or "")
    out = err.strip().splitlines()[-3:]
    text = " | ".join(out) or f"exit {result.exit_status}"
    if "a password is required" in text or "sudo: a terminal is required" in text:
        return (f"sudo -n refused ({text}): give the delivery user passwordless sudo for sh, or log in as root "
                f"(delivery.user)")
    if "sudo: command not found" in text or "sudo: not found" in text:
        return f"delivery.sudo is set but the host has no sudo ({text})"
    return f"{text} (exit {result.exit_status})"


def _short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]
