"""A lab whose servers are a TSE instance's: real Consul servers owned by the stand-in, real clients.

`up` starts the lab (servers in the instance's phase, with the instance's own key when it has one)
and writes the stand-in's instance.json in <lab>/tse; `write_spec` writes the spec a TSE user
writes (servers: type tse, instance_id, region, http_addr) with the lab's clients; `Operator` is the
person at the console in the demo and the tests: each time deploy shows what to save, it saves the
next phase's parameters through the console, with the key from the environment.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Sequence

from ..agentconfig import tse_parameters
from ..atomicfile import write_json
from ..keys import GossipKey
from ..phases import Phase
from . import cluster as lab_cluster
from . import specgen, tse_console
from .configs import phase_fragment
from .model import LabCluster, cluster_of
from .tse_standin import new_instance, read_instance, update_instance

TSE_DIR = "tse"
ENDPOINT_ENV = "TSEGOSSIP_TSE_ENDPOINT"   # read by backends/tse.py (the lab may not import it; a test ties them)
INSTANCE_ID = "ins-1ab0c0de"
REGION = "ap-guangzhou"


def standin_dir(cluster: LabCluster | str | os.PathLike) -> str:
    return os.path.join(cluster_of(cluster).workdir, TSE_DIR)


def up(workdir: str | os.PathLike, servers_phase: str = "plaintext", instance_key: str | None = None,
       instance_id: str = INSTANCE_ID, region: str = REGION, **lab_kw) -> LabCluster:
    """Start the lab with the servers as the instance has them; returns the lab (stand-in files in <lab>/tse)."""
    frags = dict(lab_kw.pop("initial_fragments", None) or {})
    frags["servers"] = phase_fragment(servers_phase, instance_key)
    cluster = lab_cluster.up(workdir, initial_fragments=frags, **lab_kw)
    new_instance(standin_dir(cluster), cluster.workdir, instance_id, region)
    update_instance(standin_dir(cluster), phase=servers_phase)
    return cluster


def write_spec(cluster: LabCluster | str | os.PathLike, path: str | os.PathLike, servers_phase: str,
               instance_id: str = INSTANCE_ID, region: str = REGION, **spec_kw) -> dict:
    """The lab's spec with TSE servers: no server nodes, config paths or restart commands (TSE's to run)."""
    doc = specgen.write_spec(cluster, path, servers_phase=servers_phase, **spec_kw)
    doc["servers"] = {"type": "tse", "phase": servers_phase, "http_addr": cluster_of(cluster).servers[0].http_addr,
                      "instance_id": instance_id, "region": region}
    write_json(os.fspath(path), doc)
    return doc


INSTRUCTIONS = "TSE has no API for these parameters"   # the provider's server step, as deploy echoes it


class Operator(threading.Thread):
    """The person at the console: reads what deploy prints (`watch()` returns the text so far) and,
    each time the provider shows what to save, saves the next of `phases` with the real key."""

    def __init__(self, standin_workdir: str, key: GossipKey | None, phases: Sequence[Phase],
                 watch: Callable[[], str], update_seconds: float = 1.0, server_seconds: float = 0.3,
                 timeout: float = 900.0, fail: str | None = None, progress: Callable[[str], None] = print):
        super().__init__(daemon=True, name="tse-operator")
        self.workdir, self.key, self.phases, self.watch = standin_workdir, key, list(phases), watch
        self.update_seconds, self.server_seconds, self.timeout = update_seconds, server_seconds, timeout
        self.fail, self.progress = fail, progress
        self.saved: list[tuple[str, float]] = []   # (phase, seconds the roll took)
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            for i, phase in enumerate(self.phases, 1):
                while self.watch().count(INSTRUCTIONS) < i:
                    if self._halt.is_set() or time.monotonic() > deadline:
                        return
                    time.sleep(0.1)
                params = tse_parameters(phase, self.key, reveal=True)
                self.progress(f"operator: saving the parameters for {phase} in the console")
                took = tse_console.save(self.workdir, params, self.update_seconds, self.server_seconds,
                                        fail=self.fail, progress=self.progress)
                self.saved.append((str(phase), took))
        except BaseException as err:  # reported by the caller; a thread's traceback would reach nobody
            self.error = err

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def instance_phase(cluster: LabCluster | str | os.PathLike) -> str:
    return read_instance(standin_dir(cluster)).get("phase", "plaintext")
