"""The spec checks that are not the JSON Schema: plain bounded data first, unique names last.

Its own module because these checks run on any document handed to `parse` (built in Python, not
only read from a file): `_gather`/`_shape_ok` is the one fast pass that proves the document is plain
JSON data within the reading limits (and collects the strings the secret scan needs),
`_shape_problems` says what it refused, with paths; `_names_unique`/`_duplicate_problems` enforce
what a schema cannot say: node names unique across the cluster, group names unique.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any

from .. import schemas
from ..errors import Problem
from .reading import MAX_DEPTH, MAX_INT_DIGITS, _DATA_ONLY


# ---- the shape every spec document must have, whoever built it --------------------------------

_INT_LIMIT = 10 ** MAX_INT_DIGITS


def _gather(doc: Any) -> tuple[list[str], set, bool]:
    """One pass over the document: its strings, its field names, and whether it is plain JSON data
    (str field names, finite numbers, at most MAX_DEPTH deep). type() checks only, no per-node calls:
    on a 300,000-node spec this and one regex over the strings cost ~0.4 s."""
    texts: list[str] = []
    fields: set = set()
    stack = [(doc, 1)]
    isfinite = math.isfinite
    limit = _INT_LIMIT
    append = texts.append
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return texts, fields, False
        if type(value) is dict:
            fields.update(value)
            items = value.values()
        else:
            items = value
        for v in items:
            t = type(v)
            if t is str:
                append(v)
            elif t is dict:
                fields.update(v)
                for x in v.values():
                    tx = type(x)
                    if tx is str:
                        append(x)
                    elif tx is dict or tx is list:
                        stack.append((x, depth + 2))
                    elif not (tx is bool or x is None or (tx is int and -limit < x < limit)
                              or (tx is float and isfinite(x))):
                        return texts, fields, False
            elif t is list:
                stack.append((v, depth + 1))
            elif not (t is bool or v is None or (t is int and -limit < v < limit) or (t is float and isfinite(v))):
                return texts, fields, False
    for f in fields:
        if type(f) is not str:
            return texts, fields, False
    return texts, fields, True


def _shape_ok(doc: Any) -> bool:
    return _gather(doc)[2]


def _shape_problems(doc: Any) -> list[Problem]:
    """What `_shape_ok` refused, with paths (runs only when it did)."""
    out: list[Problem] = []
    stack: list[tuple[Any, list]] = [(doc, [])]
    while stack:
        value, path = stack.pop()
        where = schemas.json_path(path)
        if type(value) in (dict, list) and len(path) >= MAX_DEPTH:
            out.append(Problem(where, f"nested deeper than {MAX_DEPTH} levels of lists and mappings"))
        elif type(value) is dict:
            for k, v in value.items():
                if type(k) is str:
                    stack.append((v, [*path, k]))
                else:
                    out.append(Problem(where, f"field name {schemas.show(k)} is not a string ({type(k).__name__}); quote it"))
        elif type(value) is list:
            stack += [(v, [*path, i]) for i, v in enumerate(value)]
        elif type(value) is int and not -_INT_LIMIT < value < _INT_LIMIT:
            out.append(Problem(where, f"an integer of more than {MAX_INT_DIGITS} digits; at most {MAX_INT_DIGITS}"))
        elif type(value) is float and not math.isfinite(value):
            out.append(Problem(where, f"{value} is not a finite number"))
        elif type(value) not in (str, bool, int, float) and value is not None:
            out.append(Problem(where, f"a {type(value).__name__} value has the wrong type; {_DATA_ONLY}"))
    return sorted(out, key=lambda q: q.path)


# ---- what the schema cannot say: names unique ------------------------------------------------


def _names_unique(doc: dict) -> bool:
    """The duplicate check's fast answer for a schema-valid spec (its shape is known)."""
    name = itemgetter("name")
    groups = doc["client_groups"]
    nodes = list(map(name, doc["servers"].get("nodes", ())))
    for g in groups:
        nodes.extend(map(name, g["nodes"]))
    nodes.extend(map(name, doc.get("unmanaged", ())))
    return len(set(nodes)) == len(nodes) and len({g["name"] for g in groups}) == len(groups)


def _duplicate_problems(doc: dict) -> list[Problem]:
    out: list[Problem] = []
    groups = doc.get("client_groups") or []
    seen_groups: dict[str, int] = {}
    seen_nodes: dict[str, str] = {}

    def nodes_of(where: str, nodes: Any) -> None:
        for i, n in enumerate(nodes or []):
            name = n.get("name") if isinstance(n, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen_nodes:
                out.append(Problem(f"{where}.nodes[{i}].name",
                    f"duplicate node name {name!r}; already used at {seen_nodes[name]}; node names are unique across the cluster"))
            else:
                seen_nodes[name] = f"{where}.nodes[{i}]"

    servers = doc.get("servers")
    if isinstance(servers, dict):
        nodes_of("servers", servers.get("nodes"))
    for gi, g in enumerate(groups):
        if not isinstance(g, dict):
            continue
        name = g.get("name")
        if isinstance(name, str):
            if name in seen_groups:
                out.append(Problem(f"client_groups[{gi}].name",
                    f"duplicate group name {name!r}; already used by client_groups[{seen_groups[name]}]; group names are unique"))
            else:
                seen_groups[name] = gi
        nodes_of(f"client_groups[{gi}]", g.get("nodes"))
    for ui, u in enumerate(doc.get("unmanaged") or []):
        name = u.get("name") if isinstance(u, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen_nodes:
            out.append(Problem(f"unmanaged[{ui}].name",
                f"{name!r} is also listed at {seen_nodes[name]}; a member is either in a group (tsegossip moves it) "
                "or unmanaged (handled elsewhere), not both"))
        else:
            seen_nodes[name] = f"unmanaged[{ui}]"
    return out
