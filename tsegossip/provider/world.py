"""Every effect the resources have, in one replaceable value.

Observing the cluster, writing a file, running a command, asking TSE, the clock and sleeping all
go through a `World`, so tests pass a fake one (simulated cluster, fake time) and call the
operations directly, without Terraform.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar

from .. import observe as obs
from ..backends import commands, delivery, files, keyring, tse
from ..waiting import Waited, wait_until
from .progress import Progress

T = TypeVar("T")


def ask_on_terminal(prompt: str) -> str | None:
    """One line from the operator's terminal, or None when there is none (a pipeline, a detached run).

    Terraform owns the provider's stdin and stdout (the plugin protocol), but the provider is still
    in the operator's session, so its controlling terminal (/dev/tty) is the operator's own.
    """
    try:
        with open("/dev/tty", "r+") as tty:
            tty.write(prompt)
            tty.flush()
            return tty.readline()
    except OSError:
        return None


def change_keyring(operation: str, http_addr: str, access: obs.Access, key) -> keyring.KeyringChange:
    """A keyring change (install | use | remove): one python-consul2 call from the runner to the agent at
    http_addr, which fans it out over the LAN pool."""
    from ..observe.client import describe_failure

    agent = keyring.KeyringAgent(http_addr, obs.client_for(http_addr, access, keyring.KEYRING_CALL_TIMEOUT),
                                 describe=lambda err: describe_failure(http_addr, err, access))
    return {"install": keyring.install, "use": keyring.use, "remove": keyring.remove}[operation](agent, key)


@dataclass
class World:
    environ: Mapping[str, str]
    progress: Callable[[str], None] = field(default_factory=Progress)
    observe: Callable[..., obs.ClusterView] = obs.observe
    members: Callable[..., dict] = obs.members
    roster: Callable[..., tuple] = obs.roster
    node_settings: Callable[..., obs.NodeView] = obs.node_settings
    keyring: Callable[..., obs.KeyringView] = obs.keyring
    raft_leader: Callable[..., str] = obs.raft_leader
    write_fragment: Callable[[str, Mapping], str] = files.write_fragment
    run_command: Callable[..., commands.CommandResult] = commands.run
    open_delivery: Callable[..., delivery.Session] = delivery.open_session
    describe_tse: Callable[[str, str], tse.InstanceStatus] | None = None
    ask: Callable[[str], str | None] = ask_on_terminal
    change_keyring: Callable[..., keyring.KeyringChange] = change_keyring
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def tse_status(self, instance_id: str, region: str) -> tse.InstanceStatus:
        if self.describe_tse is not None:
            return self.describe_tse(instance_id, region)
        return tse.describe_instance(instance_id, region, environ=self.environ)

    def wait_until(self, probe: Callable[[], tuple[bool, T]], *, timeout: float, interval: float,
                   first: float | None = None, backoff: float = 1.0) -> Waited[T]:
        """waiting.wait_until on this world's clock and sleep."""
        return wait_until(probe, timeout=timeout, interval=interval, first=first, backoff=backoff,
                          clock=self.clock, sleep=self.sleep)
