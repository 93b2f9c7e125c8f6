"""What the TSE console's save does, for the stand-in's instance: System parameters -> Gossip encryption.

The console takes the three parameters as JSON, checks them, and rolls the instance's servers one
at a time with the new config while DescribeSREInstances says `updating`, then `restarting`, then
`running` again (3-8 minutes on Tencent Cloud, seconds here; both durations are arguments). The key
comes from an environment variable, so it is never an argument; on disk it lands only in the lab
servers' own config files, as it would on TSE's servers.

Faults for tests: fail="update" stops in update_fail with nothing rolled; fail="restart" rolls the
first server and stops in restart_fail.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

from ..agentconfig import fragment, phase_of_fragment
from ..keys import GossipKey, InvalidKey
from ..phases import Phase
from . import cluster as lab_cluster
from .configs import write_fragment
from .model import LabError, load
from .tse_standin import read_instance, update_instance

PARAMETERS = ("encrypt", "encrypt_verify_incoming", "encrypt_verify_outgoing")


class ConsoleError(LabError):
    """The console refused the parameters (nothing was saved)."""


def check_parameters(params: Mapping) -> Phase:
    """The console's own checks of the JSON; the phase the servers will be in. Names the field."""
    if not isinstance(params, Mapping):
        raise ConsoleError(f"the parameters must be a JSON object, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ConsoleError(f"unknown parameter(s) {', '.join(unknown)}; the console edits only {', '.join(PARAMETERS)}")
    for flag in PARAMETERS[1:]:
        if not isinstance(params.get(flag, False), bool):
            raise ConsoleError(f"{flag}: {params[flag]!r} is not a boolean (true or false)")
    encrypt = params.get("encrypt", "")
    if not isinstance(encrypt, str):
        raise ConsoleError("encrypt: must be a string (a key from `consul keygen`, or empty)")
    if encrypt:
        try:
            GossipKey(encrypt)
        except InvalidKey:
            raise ConsoleError("encrypt: not a gossip key (base64 of 16, 24 or 32 bytes); value not shown") from None
    phase = phase_of_fragment(dict(params))
    if phase is None or (not encrypt and any(params.get(f) for f in PARAMETERS[1:])):
        raise ConsoleError("encrypt is empty but a verify flag is true: no agent can gossip like that")
    return phase


def server_fragment(params: Mapping, phase: Phase) -> dict:
    """What each server's config gets: the provider's own fragment for that phase and key (no key: no
    `encrypt` at all, as a TSE instance with encryption off)."""
    if not params.get("encrypt"):
        return {}
    return fragment(phase, GossipKey(params["encrypt"]), reveal=True)


def save(workdir: str, params: Mapping, update_seconds: float = 1.0, server_seconds: float = 0.5,
         fail: str | None = None, progress: Callable[[str], None] = print) -> float:
    """Save the parameters and roll the servers; returns seconds taken. Raises ConsoleError/LabError."""
    phase = check_parameters(params)
    doc = read_instance(workdir)
    if doc.get("status") != "running":
        raise ConsoleError(f"instance {doc['instance_id']} is {doc.get('status')}, not running: the console "
                           "accepts a save only when the last task is done")
    cluster = load(doc["lab_dir"])
    before = Phase(doc.get("phase", "plaintext"))
    t0 = time.monotonic()
    progress(f"console: {doc['instance_id']}: saving gossip parameters ({before} -> {phase}); status updating")
    update_instance(workdir, status="updating")
    time.sleep(update_seconds)
    if fail == "update":
        update_instance(workdir, status="update_fail")
        progress(f"console: {doc['instance_id']}: update_fail (nothing rolled)")
        return time.monotonic() - t0
    update_instance(workdir, status="restarting")
    # A jump over a phase (scenario 1: accept-encrypted straight to enforced) splits the first server
    # restarted from the others until they follow, by design: it cannot wait to rejoin on its own.
    jump = abs(phase.rank - before.rank) > 1
    server_config = server_fragment(params, phase)
    for i, server in enumerate(cluster.servers, 1):
        progress(f"console: {doc['instance_id']}: restarting {server.name} ({i}/{len(cluster.servers)})")
        write_fragment(cluster, server.name, server_config)
        lab_cluster.restart(cluster, server.name, wait_join=not jump)
        if fail == "restart":
            update_instance(workdir, status="restart_fail")
            progress(f"console: {doc['instance_id']}: restart_fail after {server.name}")
            return time.monotonic() - t0
        time.sleep(server_seconds)
    if jump:
        lab_cluster.wait_leader(cluster, timeout=60)
    update_instance(workdir, status="running", phase=str(phase))
    took = time.monotonic() - t0
    progress(f"console: {doc['instance_id']}: running, servers in {phase} ({took:.1f}s)")
    return took
