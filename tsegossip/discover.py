"""`tsegossip discover ADDR`: a spec skeleton from a live cluster.

From one agent's member list (python-consul2 over HTTP): servers are the members tagged as servers
(self-managed, or TSE when --tse names the instance), clients are grouped by a node-meta key (read
from the catalog) or by a name pattern, and each node's phase is read from its own API at
<scheme>://<member address>:<--http-port> (Consul does not gossip HTTP ports; agents that serve
HTTP on 127.0.0.1 only are shown unreachable and need their http_addr filled in). A group's phase is
the one its nodes show; a group whose nodes differ gets the lowest and a comment naming the rest.
What it cannot know (how configs reach the hosts: delivery's known_hosts and identity, the restart
command) is left for the operator: `tsegossip validate` names each missing field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import observe
from .errors import UserError
from .phases import Phase

DEFAULT_PATTERN = r"^(?P<group>.+?)-?\d+$"
_NAME = re.compile(r"[^a-z0-9-]+")


class DiscoverError(UserError):
    """The cluster could not be read, or the options do not fit it."""


@dataclass(frozen=True)
class Found:
    name: str
    http_addr: str
    server: bool
    group: str | None
    phase: Phase | None  # None: its API did not answer
    why: str = ""


def group_name(text: str) -> str:
    """A client group name the spec accepts: ^[a-z][a-z0-9-]{0,39}$."""
    g = _NAME.sub("-", text.lower()).strip("-")[:40] or "clients"
    return g if g[0].isalpha() else f"g-{g}"[:40]


def discover(addr: str, access: observe.Access, group_by: str = f"pattern:{DEFAULT_PATTERN}",
             http_port: int = 8500, timeout: float = observe.DEFAULT_TIMEOUT) -> list[Found]:
    try:
        roster = observe.roster(addr, access, timeout)
    except observe.ObserveError as err:
        raise DiscoverError(f"cannot list the members of {addr}: {err}") from None
    scheme = urlsplit(addr).scheme or "http"
    alive = [m for m in roster if m.status == "alive"]
    meta = _node_meta(addr, access, timeout) if group_by.startswith("meta:") else {}
    kind, _, how = group_by.partition(":")
    if kind not in ("meta", "pattern") or not how:
        raise DiscoverError(f"--group-by {group_by!r} is not allowed; allowed: meta:KEY or pattern:REGEX "
                            f"(a regex with a named group `group`)")
    pattern = None
    if kind == "pattern":
        try:
            pattern = re.compile(how)
        except re.error as err:
            raise DiscoverError(f"--group-by pattern {how!r} is not a regex: {err}") from None
        if "group" not in pattern.groupindex:
            raise DiscoverError(f"--group-by pattern {how!r} has no named group `group`, e.g. {DEFAULT_PATTERN}")
    addrs = {m.name: f"{scheme}://{m.addr}:{http_port}" for m in alive}
    views = observe.node_settings_many(addrs, access, timeout)
    out = []
    for m in sorted(alive, key=lambda m: (not m.server, m.name)):
        group = None
        if not m.server:
            if pattern is not None:
                hit = pattern.match(m.name)
                group = group_name(hit.group("group")) if hit and hit.group("group") else "clients"
            else:
                group = group_name(meta.get(m.name, {}).get(how) or "clients")
        v = views[m.name]
        out.append(Found(m.name, addrs[m.name], m.server, group, v.phase if v.reachable else None,
                         "" if v.reachable else v.describe()))
    return out


def _node_meta(addr: str, access: observe.Access, timeout: float) -> dict[str, dict[str, str]]:
    import consul
    import requests

    try:
        _, nodes = observe.client_for(addr, access, timeout).catalog.nodes()
    except (consul.ConsulException, requests.exceptions.RequestException, ValueError) as err:
        raise DiscoverError(f"cannot read node meta from {addr}'s catalog: {err}") from None
    return {n["Node"]: dict(n.get("Meta") or {}) for n in nodes}


def _phase_of(nodes: list[Found]) -> tuple[str, str]:
    seen = sorted({n.phase for n in nodes if n.phase is not None}, key=lambda p: p.rank)
    if not seen:
        return "plaintext", "no node answered: phase unknown, plaintext assumed; check it"
    note = "" if len(seen) == 1 else f"nodes differ ({', '.join(p.value for p in seen)}): the lowest is given"
    return seen[0].value, note


def skeleton(found: list[Found], addr: str, name: str, tse: tuple[str, str] | None = None) -> tuple[dict, list[str]]:
    """(the spec, notes for the header). Delivery is ssh with the fields only the operator knows left out."""
    notes: list[str] = []
    delivery = {"method": "ssh", "host": "{http_host}", "user": "root"}
    servers = [f for f in found if f.server]
    for f in found:
        if f.phase is None:
            notes.append(f"{f.name}: its API at {f.http_addr} did not answer ({f.why}); fill in its http_addr")
    s_phase, s_note = _phase_of(servers) if servers else ("plaintext", "no server member found")
    if s_note:
        notes.append(f"servers: {s_note}")
    if tse:
        srv: dict[str, Any] = {"type": "tse", "phase": s_phase, "http_addr": addr, "instance_id": tse[0],
                               "region": tse[1]}
    else:
        srv = {"type": "self-managed", "phase": s_phase, "http_addr": addr,
               "nodes": [{"name": f.name, "http_addr": f.http_addr} for f in servers],
               "config_path": "/etc/consul.d/50-gossip.json", "restart_command": "systemctl restart consul",
               "delivery": dict(delivery)}
    groups: dict[str, list[Found]] = {}
    for f in found:
        if not f.server:
            groups.setdefault(f.group or "clients", []).append(f)
    client_groups = []
    for g, nodes in groups.items():
        phase, note = _phase_of(nodes)
        if note:
            notes.append(f"group {g}: {note}")
        client_groups.append({"name": g, "phase": phase, "config_path": "/etc/consul.d/50-gossip.json",
                              "restart_command": "systemctl restart consul", "batch_size": 1,
                              "delivery": dict(delivery),
                              "nodes": [{"name": f.name, "http_addr": f.http_addr} for f in nodes]})
    doc = {"name": name, "strategy": "smooth", "key_env": "TSEGOSSIP_KEY", "servers": srv,
           "client_groups": client_groups}
    return doc, notes


def render(doc: dict, notes: list[str], addr: str, count: int) -> str:
    import yaml

    head = [f"# tsegossip spec skeleton discovered from {addr} ({count} alive member(s)).",
            "# Fill in what tsegossip cannot know, then `tsegossip validate` it:",
            "#   - each delivery's known_hosts (and identity_env, or run ssh-agent); host/user if not {http_host}/root",
            "#   - restart_command, if the agents are not the systemd unit `consul`",
            "#   - key_env: the variable that will hold the gossip key"]
    head += [f"# note: {n}" for n in notes]
    return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120)
