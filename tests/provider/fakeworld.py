"""A simulated cluster behind the provider's World: restarts apply the written fragment, time is fake."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from tsegossip import observe as obs
from tsegossip.agentconfig import phase_of_fragment
from tsegossip.backends import files
from tsegossip.backends.commands import CommandResult
from tsegossip.keys import fingerprint_of
from tsegossip.phases import Phase
from tsegossip.provider.world import World

SERVER = "http://server-1:8500"


def addr(name: str) -> str:
    return f"http://{name}:8500"


@dataclass
class Node:
    phase: Phase
    status: str = "alive"
    reachable: bool = True
    keys: set = field(default_factory=set)
    comes_back: bool = True  # after a restart
    knows_leader: bool = True  # a server back from a restart hears from the raft leader
    listed_after_restart: str = "alive"  # serf status the observed agent lists it with once it is back


class FakeCluster:
    def __init__(self, tmp_path, phases: dict[str, str], key: str | None = None):
        self.tmp = tmp_path
        self.nodes = {n: Node(Phase.parse(p)) for n, p in phases.items()}
        for node in self.nodes.values():
            if node.phase.has_key and key:
                node.keys.add(fingerprint_of(key))
        self.now = 0.0
        self.commands: list[str] = []
        self.writes: list[str] = []
        self.lines: list[str] = []
        self.command_env_hidden: list[list[str]] = []
        self.leader_asks: list[str] = []

    # -- what a resource configures
    @property
    def config_path(self) -> str:
        return str(self.tmp / "{node}" / "50-gossip.json")

    restart_command = "restart {node} {config_path}"

    def addresses(self, names=None) -> dict[str, str]:
        return {n: addr(n) for n in (names or self.nodes)}

    # -- World
    def _view(self, name: str) -> obs.NodeView:
        n = self.nodes.get(name)
        if n is None or not n.reachable:
            return obs.NodeView(name=name, http_addr=addr(name), reachable=False, error=f"no answer from {addr(name)}")
        return obs.NodeView(name=name, http_addr=addr(name), reachable=True, encrypted=n.phase.has_key,
                            verify_incoming=n.phase.verify_incoming, verify_outgoing=n.phase.verify_outgoing,
                            phase=n.phase)

    def members(self, http_addr, access=None, timeout=None):
        return {name: n.status for name, n in self.nodes.items() if n.status != "absent"}

    def roster(self, http_addr, access=None, timeout=None):
        return tuple(obs.Member(name, f"10.0.0.{i}", 8301, n.status, name.startswith("server"))
                     for i, (name, n) in enumerate(sorted(self.nodes.items()), 1) if n.status != "absent")

    def node_settings(self, address, name=None, access=None, timeout=None):
        return self._view(name or address.split("//")[1].split(":")[0])

    def raft_leader(self, address, access=None, timeout=None):
        self.leader_asks.append(address)
        name = address.split("//")[1].split(":")[0]
        n = self.nodes.get(name)
        if n is None or not n.reachable:
            raise obs.ObserveError(f"no answer from {address}")
        return "10.0.0.1:8300" if n.knows_leader else ""

    def keyring(self, address, access=None, timeout=None, local_only=False):
        # As Consul 1.14: every agent relays the same LAN-wide listing (local-only only drops the WAN).
        keyed = {name: n for name, n in self.nodes.items() if n.status == "alive"}
        if any(not n.keys for n in keyed.values()):
            keyless = tuple(sorted(name for name, n in keyed.items() if not n.keys))
            return obs.KeyringView(error=obs.KEYRING_EMPTY, empty=True, unkeyed=keyless)
        if not keyed:
            return obs.KeyringView(error=obs.KEYRING_EMPTY, empty=True)
        counts: dict[str, int] = {}
        for n in keyed.values():
            for fp in n.keys:
                counts[fp] = counts.get(fp, 0) + 1
        return obs.KeyringView(rings=(obs.Ring(False, "dc1", "", counts, {}, len(keyed)),))

    def observe(self, http_addr, nodes, access=None, timeout=None, with_keyring=True):
        return obs.ClusterView(http_addr=http_addr, members=self.members(http_addr),
                               members_error=None, nodes={n: self._view(n) for n in sorted(nodes)},
                               keyring=self.keyring(http_addr) if with_keyring else None)

    def write_fragment(self, path, doc):
        self.writes.append(path)
        return files.write_fragment(path, doc)

    def run_command(self, command, timeout, secrets=(), hide_env=()):
        self.commands.append(command)
        self.command_env_hidden.append(list(hide_env))
        _, name, path = shlex.split(command)
        node = self.nodes.setdefault(name, Node(Phase.PLAINTEXT, status="absent", reachable=False))
        with open(path) as fh:
            doc = json.load(fh)
        if node.comes_back:
            node.phase = phase_of_fragment(doc)
            node.status, node.reachable = node.listed_after_restart, True
            if doc.get("encrypt"):
                node.keys.add(fingerprint_of(doc["encrypt"]))
        else:
            node.status, node.reachable = "failed", False
        self.now += 1.0
        return CommandResult(command=command, returncode=0, output="restarted", seconds=1.0)

    def sleep(self, seconds):
        self.now += seconds

    def clock(self):
        return self.now

    def world(self, environ) -> World:
        return World(environ=environ, progress=self.lines.append, observe=self.observe, members=self.members,
                     roster=self.roster, raft_leader=self.raft_leader,
                     node_settings=self.node_settings, keyring=self.keyring, write_fragment=self.write_fragment,
                     run_command=self.run_command, sleep=self.sleep, clock=self.clock)
