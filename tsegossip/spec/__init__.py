"""The rollout spec: read, checked against schemas/rollout.schema.json, and turned into
plain frozen dataclasses. No I/O beyond reading the file; no planning here.

The package: `parse` (document → Rollout, every problem listed), `load` (file → Rollout) and the
model's construction. The work is in its modules, one job each: `model` (the dataclasses and enums),
`reading` (file → plain data, bounded), `checks` (shape and unique names), `secrets` (literal keys and
tokens). Their names are re-exported here, so `spec.X` keeps working; a monkeypatch must target the
module that uses the name (`spec.reading.MAX_SPEC_BYTES`), except for what `parse` itself calls
(`spec._may_hold_secrets`, `schemas.is_valid`), which it looks up here at call time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import keys, schemas
from ..delivery import Delivery
from ..errors import Problem, SpecError
from ..phases import Phase
from .checks import _duplicate_problems, _gather, _names_unique, _shape_ok, _shape_problems
from .model import ClientGroup, ConsulAccess, Node, Rollout, Servers, ServerType, Strategy, Timeouts, Unmanaged
from .reading import MAX_DEPTH, MAX_INT_DIGITS, MAX_SPEC_BYTES, read_document
from .secrets import _may_hold_secrets, _secret_problems

__all__ = [
    "ClientGroup", "ConsulAccess", "Node", "Rollout", "Servers", "ServerType", "Strategy", "Timeouts", "Unmanaged",
    "MAX_DEPTH", "MAX_INT_DIGITS", "MAX_PROBLEMS", "MAX_SPEC_BYTES",
    "load", "parse", "read_document",
]


# The most problems one run reports: a spec with every node wrong gets a screenful, in well under a second.
MAX_PROBLEMS = 50


def _at_most(found: list[Problem]) -> list[Problem]:
    if len(found) <= MAX_PROBLEMS:
        return found
    return found[:MAX_PROBLEMS] + [Problem("", f"stopped after {MAX_PROBLEMS} problems; fix these and run again")]


def parse(doc: Any, source: str = "") -> Rollout:
    """Validate a spec document and build the model; raises SpecError listing every problem.

    A valid spec takes the fast path (a superset test for secrets, the compiled validator); any
    doubt sends it down the detailed path, which alone writes messages, so they never depend on
    which path ran. First of all the document must be plain, bounded data (`_shape_ok`).
    """
    if not isinstance(doc, dict):
        raise SpecError([Problem("", f"the spec must be a mapping (object) at the top, got {type(doc).__name__}")], source)
    gathered = _gather(doc)
    if not gathered[2]:
        raise SpecError(_at_most(_shape_problems(doc)), source)
    key_env = doc.get("key_env")
    if isinstance(key_env, str) and key_env:
        keys.remember(os.environ.get(key_env))  # the key itself: refused in the spec, redacted from output
    rotate_to_env = doc.get("rotate_to_env")
    if isinstance(rotate_to_env, str) and rotate_to_env:
        keys.remember(os.environ.get(rotate_to_env))  # the new key of a rotation, the same way
    found = _secret_problems(doc, []) if _may_hold_secrets(doc, gathered) else []
    if not found and schemas.is_valid("rollout", doc):
        found = [] if _names_unique(doc) else _duplicate_problems(doc)
    else:
        # A secret field would also be an unknown field: say it once, the useful way.
        secret_paths = {p.path for p in found}
        found += [p for p in schemas.problems("rollout", doc, limit=MAX_PROBLEMS + 1) if p.path not in secret_paths]
        if not found:
            found += _duplicate_problems(doc)
    if found:
        raise SpecError(_at_most(found), source)
    return _build(schemas.apply_defaults("rollout", doc))


def load(path: str | Path) -> Rollout:
    return parse(read_document(path), source=str(path))


def _nodes(items: list[dict]) -> tuple[Node, ...]:
    return tuple(Node(n["name"], n["http_addr"]) for n in items)


def _build(d: dict) -> Rollout:
    s = d["servers"]
    servers = Servers(
        type=ServerType(s["type"]),
        phase=Phase(s["phase"]),
        http_addr=s["http_addr"],
        instance_id=s.get("instance_id"),
        region=s.get("region"),
        nodes=_nodes(s.get("nodes", [])),
        config_path=s.get("config_path"),
        restart_command=s.get("restart_command"),
        delivery=Delivery.from_doc(s.get("delivery"), "servers.delivery"),
        down_nodes=s.get("down_nodes", "refuse"),
        data_dir=s.get("data_dir"),
    )
    groups = tuple(
        ClientGroup(
            name=g["name"],
            phase=Phase(g["phase"]),
            joined=g["joined"],
            config_path=g["config_path"],
            restart_command=g["restart_command"],
            batch_size=g["batch_size"],
            nodes=_nodes(g["nodes"]),
            delivery=Delivery.from_doc(g.get("delivery"), f"client_groups[{i}].delivery"),
            down_nodes=g["down_nodes"],
            data_dir=g.get("data_dir"),
        )
        for i, g in enumerate(d["client_groups"])
    )
    consul = ConsulAccess(**d.get("consul", {}))
    timeouts = Timeouts(**d.get("timeouts", {}))
    return Rollout(
        name=d["name"],
        strategy=Strategy(d["strategy"]),
        target=Phase(d["target"]),
        key_env=d["key_env"],
        servers=servers,
        client_groups=groups,
        consul=consul,
        timeouts=timeouts,
        unmanaged=tuple(Unmanaged(u["name"], None if u["phase"] == "observe" else Phase(u["phase"]), u.get("http_addr"))
                        for u in d.get("unmanaged", [])),
        client_groups_restart=d.get("client_groups_restart", "parallel"),
        key_fingerprint=d.get("key_fingerprint"),
        rotate_to_env=d.get("rotate_to_env"),
        rotate_to_fingerprint=d.get("rotate_to_fingerprint"),
    )
