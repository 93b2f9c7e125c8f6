"""The rollout spec: read, checked against schemas/rollout.schema.json, and turned into
plain frozen dataclasses. No I/O beyond reading the file; no planning here."""

from __future__ import annotations

import enum
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml

from . import schemas
from .errors import Problem, SpecError
from . import keys
from .keys import looks_like_key
from .phases import Phase


class Strategy(enum.Enum):
    SMOOTH = "smooth"
    DIRECT = "direct"

    def __str__(self) -> str:
        return self.value


class ServerType(enum.Enum):
    TSE = "tse"
    SELF_MANAGED = "self-managed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Node:
    name: str
    http_addr: str


@dataclass(frozen=True)
class Servers:
    type: ServerType
    phase: Phase
    http_addr: str
    instance_id: str | None = None
    region: str | None = None
    nodes: tuple[Node, ...] = ()
    config_path: str | None = None
    restart_command: str | None = None


@dataclass(frozen=True)
class ClientGroup:
    name: str
    phase: Phase
    joined: bool
    config_path: str
    restart_command: str
    batch_size: int
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class ConsulAccess:
    """Names of the environment variables holding Consul API credentials (never values)."""

    token_env: str = "CONSUL_HTTP_TOKEN"
    cacert_env: str = "CONSUL_CACERT"
    client_cert_env: str = "CONSUL_CLIENT_CERT"
    client_key_env: str = "CONSUL_CLIENT_KEY"
    datacenter: str | None = None


@dataclass(frozen=True)
class Timeouts:
    batch_seconds: int = 120
    tse_seconds: int = 900
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class Rollout:
    name: str
    strategy: Strategy
    target: Phase
    key_env: str
    servers: Servers
    client_groups: tuple[ClientGroup, ...]
    consul: ConsulAccess = ConsulAccess()
    timeouts: Timeouts = Timeouts()

    def group(self, name: str) -> ClientGroup:
        for g in self.client_groups:
            if g.name == name:
                return g
        raise KeyError(name)


# Field names people reach for when they paste a secret into the spec.
_KEY_FIELDS = {"encrypt", "key", "gossip_key", "encrypt_key", "encryption_key"}
_TOKEN_FIELDS = {"token", "acl_token", "consul_token", "http_token", "secret_id", "secret_key"}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_KEY_ADVICE = "the key never goes in the spec: put it in an environment variable and name that variable in key_env"


def _secret_problems(doc: Any, path: list) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            here = [*path, k]
            if isinstance(k, str) and k.lower() in _KEY_FIELDS:
                out.append(Problem(schemas.json_path(here),
                    "a literal gossip key does not belong in the spec; put it in an environment "
                    "variable and name that variable in key_env"))
            elif isinstance(k, str) and k.lower() in _TOKEN_FIELDS:
                out.append(Problem(schemas.json_path(here),
                    "a literal ACL token does not belong in the spec; export CONSUL_HTTP_TOKEN or "
                    "name another variable in consul.token_env"))
            elif isinstance(k, str) and (why := keys.key_problem(k)):
                out.append(Problem(schemas.json_path(here), f"this field name {why}; {_KEY_ADVICE}"))
            else:
                out.extend(_secret_problems(v, here))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_secret_problems(v, [*path, i]))
    elif isinstance(doc, str):
        if looks_like_key(doc):
            out.append(Problem(schemas.json_path(path),
                "this value looks like a literal gossip key (base64 of 16, 24 or 32 bytes); the key "
                "never goes in the spec: put it in an environment variable and name that variable in key_env"))
        elif _UUID.match(doc):
            out.append(Problem(schemas.json_path(path),
                "this value looks like a literal ACL token (a UUID); name the environment variable "
                "that holds it instead (consul.token_env, default CONSUL_HTTP_TOKEN)"))
        elif why := keys.key_problem(doc):
            out.append(Problem(schemas.json_path(path), f"this value {why}; {_KEY_ADVICE}"))
    return out


def _names_unique(doc: dict) -> bool:
    """The duplicate check's fast answer for a schema-valid spec (its shape is known)."""
    name = itemgetter("name")
    groups = doc["client_groups"]
    nodes = list(map(name, doc["servers"].get("nodes", ())))
    for g in groups:
        nodes.extend(map(name, g["nodes"]))
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
    return out


# ---- reading: data only, bounded -------------------------------------------------------------

# The largest spec read at all (a 1,000,000-node JSON spec is ~75 MB): refused before it is read.
MAX_SPEC_BYTES = 256 * 1024 * 1024
# Lists and mappings inside each other; a spec needs 5 (client_groups[].nodes[].name).
MAX_DEPTH = 32
# Digits in an integer literal (the largest number a spec allows has 5; Python refuses > 4,300).
MAX_INT_DIGITS = 100

_DATA_ONLY = "a spec holds only strings, numbers, booleans, null, lists and mappings"


class _Refused(Exception):
    def __init__(self, path: list, message: str, mark=None) -> None:
        super().__init__(message)
        self.path, self.message, self.mark = path, message, mark


def _at(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "the end"


# YAML 1.2's core schema (what JSON also means): no dates, no sexagesimal 1:30, no yes/no/on/off.
_CORE = "tag:yaml.org,2002:"
_INT10 = re.compile(r"[-+]?[0-9]+\Z")
_INT8 = re.compile(r"0o[0-7]+\Z")
_INT16 = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULLS = {"", "~", "null", "Null", "NULL"}
_INFS = {f"{sign}{inf}": (-math.inf if sign == "-" else math.inf)
         for sign in ("", "+", "-") for inf in (".inf", ".Inf", ".INF")}
_NANS = {".nan", ".NaN", ".NAN"}
_MAYBE_NOT_STR = frozenset("0123456789-+.~tTfFnN")


def _int(text: str, base: int, digits: int) -> int:
    if digits > MAX_INT_DIGITS:
        raise _Refused([], f"an integer of {digits} digits; at most {MAX_INT_DIGITS}")
    return int(text, base)


def _resolve_plain(value: str) -> Any:
    """A plain (unquoted, untagged) YAML scalar, by YAML 1.2's core schema."""
    if value in _NULLS:
        return None
    if value in _BOOLS:
        return _BOOLS[value]
    if _INT10.match(value):
        return _int(value, 10, len(value.lstrip("+-")))
    if _INT8.match(value):
        return _int(value[2:], 8, len(value) - 2)
    if _INT16.match(value):
        return _int(value[2:], 16, len(value) - 2)
    if _FLOAT.match(value):
        return float(value)
    if value in _INFS:
        return _INFS[value]
    if value in _NANS:
        return math.nan
    return value


def _tag_refusal(tag: str) -> _Refused:
    name = tag[len(_CORE):] if tag.startswith(_CORE) else None
    shown = f"YAML tag !!{name}" if name is not None and name.isalnum() and len(name) < 16 else "a custom YAML tag"
    return _Refused([], f"{shown} is not allowed; {_DATA_ONLY}")


_TAGGED = {"int": lambda v: type(v) is int, "float": lambda v: type(v) in (int, float),
           "bool": lambda v: type(v) is bool, "null": lambda v: v is None}


def _resolve_tagged(tag: str, value: str) -> Any:
    name = tag[len(_CORE):] if tag.startswith(_CORE) else None
    if tag == "!" or name == "str":
        return value
    if name in _TAGGED:
        resolved = _resolve_plain(value)
        if not _TAGGED[name](resolved):
            raise _Refused([], f"the value tagged !!{name} is not a {name}")
        return float(resolved) if name == "float" else resolved
    raise _tag_refusal(tag)


def _compose_yaml(text: str) -> Any:
    """YAML to plain dicts, lists and scalars, straight from libyaml's events.

    No Python-level constructors (PyYAML's take ~6 s for 100,000 nodes), no aliases (an alias
    bomb under 1 KB expands to 10^9 nodes; an anchor alone is harmless and ignored), no tags beyond
    the core ones, no duplicate fields, no field name that is not a string, at most MAX_DEPTH levels.
    The loop keeps the innermost container in locals: it runs once per event (~6 per node).
    """
    from yaml import events as ev
    from yaml._yaml import CParser

    scalar, mstart, sstart = ev.ScalarEvent, ev.MappingStartEvent, ev.SequenceStartEvent
    mend, send, alias, dstart = ev.MappingEndEvent, ev.SequenceEndEvent, ev.AliasEvent, ev.DocumentStartEvent
    get = CParser(text).get_event
    maybe = _MAYBE_NOT_STR
    outer: list[tuple] = []   # the enclosing frames: (container, is a mapping, current field name)
    cur: Any = None           # the innermost container (None at the top)
    is_map = False
    expect_key = True         # in a mapping: the next node is a field name
    name: Any = None          # in a mapping: the current field name
    root: Any = None
    documents = 0
    event = None
    try:
        while True:
            event = get()
            t = type(event)
            if t is scalar:
                value = event.value
                if event.tag is not None:
                    value = _resolve_tagged(event.tag, value)
                elif (not value or value[0] in maybe) and event.implicit[0]:
                    value = _resolve_plain(value)
                if is_map:
                    if expect_key:
                        if type(value) is not str:
                            raise _Refused([], f"field name {value!r} is not a string ({type(value).__name__}); quote it")
                        name = value
                        expect_key = False
                        if value in cur:
                            raise _Refused([], "duplicate field; each field may appear once in a mapping")
                    else:
                        cur[name] = value
                        expect_key = True
                elif cur is not None:
                    cur.append(value)
                else:
                    root = value
                continue
            if t is mstart or t is sstart:
                tag = event.tag
                if tag is not None and tag != "!" and tag != _CORE + ("map" if t is mstart else "seq"):
                    raise _tag_refusal(tag)
                if len(outer) >= MAX_DEPTH - 1 and cur is not None:
                    raise _Refused([], f"nested deeper than {MAX_DEPTH} levels of lists and mappings")
                value = {} if t is mstart else []
                if is_map:
                    if expect_key:
                        raise _Refused([], "a field name must be a string, not a "
                                           f"{'mapping' if t is mstart else 'list'}")
                    cur[name] = value
                    expect_key = True
                elif cur is not None:
                    cur.append(value)
                else:
                    root = value
                if cur is not None:
                    outer.append((cur, is_map, name))
                cur, is_map, expect_key, name = value, t is mstart, True, None
                continue
            if t is mend or t is send:
                if outer:
                    cur, is_map, name = outer.pop()
                    expect_key = True
                else:
                    cur, is_map = None, False
                continue
            if event is None:
                break
            if t is alias:
                raise _Refused([], "YAML aliases (*name) are not allowed; write the value out")
            if t is dstart:
                documents += 1
                if documents > 1:
                    raise _Refused([], "a second YAML document ('---'); a spec is one document")
    except _Refused as err:
        path = _yaml_path(outer, cur, is_map, None if expect_key else name)
        raise _Refused(path, err.message, event.start_mark if event is not None else None) from None
    except Exception as err:  # the parser's own errors: remember where it was
        err.tsegossip_path = _yaml_path(outer, cur, is_map, None if expect_key else name)
        raise
    return root


def _yaml_path(outer: list[tuple], cur: Any, is_map: bool, name: Any) -> list:
    """The field path of the node being read: each enclosing container's current entry."""
    path: list = []
    for container, mapping, field in outer:
        path.append(field if mapping else len(container) - 1)
    if cur is not None:
        if is_map:
            if name is not None:
                path.append(name)
        else:
            path.append(len(cur))
    return path


def _load_yaml(text: str, p: Path) -> Any:
    import yaml

    try:
        return _compose_yaml(text)
    except _Refused as err:
        raise SpecError([Problem(schemas.json_path(err.path), f"{err.message} ({_at(err.mark)})")], str(p)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or (str(err).splitlines() or [err.__class__.__name__])[0]
        where = schemas.json_path(getattr(err, "tsegossip_path", []))
        line = f"{p} is not valid YAML: {_at(mark) if mark is not None else 'at the start'}"
        line += f" (in {where})" if where else ""
        line += f": {problem}"
        context = getattr(err, "context", None)
        if context:
            cmark = getattr(err, "context_mark", None)
            line += f" ({context}" + (f" at {_at(cmark)})" if cmark is not None else ")")
        raise SpecError([Problem("", line)]) from None


class _Duplicates(dict):
    """A JSON object in which a field appeared twice (the loader names them, then refuses)."""

    names: list


class _LongInteger:
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _load_json(text: str, p: Path) -> Any:
    flags: list[str] = []

    def pairs(items):
        d = dict(items)
        if len(d) != len(items):
            seen: set = set()
            d = _Duplicates(d)
            d.names = [k for k, _ in items if k in seen or seen.add(k)]
            flags.append("duplicate")
        return d

    def integer(literal: str):
        digits = len(literal.lstrip("-"))
        if digits > MAX_INT_DIGITS:
            flags.append("integer")
            return _LongInteger(digits)
        return int(literal)

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_int=integer)
    except json.JSONDecodeError as err:
        raise SpecError([Problem("", f"{p} is not valid JSON: {err}")]) from None
    except RecursionError:
        raise SpecError([Problem("", f"{p} is not valid JSON: nested too deep; a spec is at most "
                                     f"{MAX_DEPTH} levels of lists and mappings")]) from None
    if flags:
        found: list[Problem] = []
        stack: list[tuple[Any, list]] = [(doc, [])]
        while stack:
            value, path = stack.pop()
            if isinstance(value, _Duplicates):
                found += [Problem(schemas.json_path([*path, k]), "duplicate field; each field may appear once in an object")
                          for k in value.names]
            if isinstance(value, dict):
                stack += [(v, [*path, k]) for k, v in value.items()]
            elif isinstance(value, list):
                stack += [(v, [*path, i]) for i, v in enumerate(value)]
            elif isinstance(value, _LongInteger):
                found.append(Problem(schemas.json_path(path), f"an integer of {value.digits} digits; at most {MAX_INT_DIGITS}"))
        raise SpecError(sorted(found, key=lambda q: q.path), str(p))
    return doc


def _unreadable(p: Path, why: str) -> SpecError:
    return SpecError([Problem("", f"cannot read {p}: {why}")])


def read_document(path: str | Path) -> Any:
    """The spec file as plain data; refuses anything but a regular file of at most MAX_SPEC_BYTES."""
    p = Path(path)
    too_big = f"a spec may be at most {MAX_SPEC_BYTES:,} bytes (256 MiB, about 3,000,000 nodes in JSON)"
    try:
        # O_NONBLOCK: opening a FIFO with no writer would block; fstat then says what it is
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError([Problem("", f"no such file: {p}")]) from None
    except IsADirectoryError:
        raise _unreadable(p, "it is a directory; give the path of a YAML or JSON file") from None
    except PermissionError:
        raise _unreadable(p, "PermissionError") from None
    except OSError as err:  # a symlink loop, a name too long, an I/O error
        raise _unreadable(p, err.strerror or err.__class__.__name__) from None
    except ValueError:  # a NUL in the path
        raise _unreadable(p, "the path holds a NUL character") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _unreadable(p, "it is a directory; give the path of a YAML or JSON file")
        if not stat.S_ISREG(st.st_mode):
            # a FIFO would block forever and a device never end: only regular files are specs
            raise _unreadable(p, "not a regular file (a FIFO, socket or device); give the path of a YAML or JSON file")
        if st.st_size > MAX_SPEC_BYTES:
            raise SpecError([Problem("", f"{p} is {st.st_size:,} bytes; {too_big}")])
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise _unreadable(p, err.strerror or err.__class__.__name__) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_SPEC_BYTES:  # it grew after fstat
        raise SpecError([Problem("", f"{p} is over {MAX_SPEC_BYTES:,} bytes; {too_big}")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _unreadable(p, f"UnicodeDecodeError (not UTF-8 at byte {err.start:,})") from None
    if "\x00" in text:
        raise _unreadable(p, f"it holds a NUL character (at byte {data.index(0):,}); a spec is a text file")
    if p.suffix == ".json":
        return _load_json(text, p)
    return _load_yaml(text, p)


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


# Every string and field name that _secret_problems could flag holds a run of 22 or more base64
# (either alphabet) or hex characters, or a remembered key's form: a cheap test over all of them at
# once, so the exact walk (with paths for the messages) runs only on doubt.
_SUSPECT = re.compile(r"[A-Za-z0-9+/_-]{22}")
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_RUN_TABLE = bytes(0x61 if i in _B64_CHARS else 0x20 for i in range(256))
_RUN = b"a" * 22


def _suspect(text: str) -> bool:
    """`_SUSPECT.search(text)`, ~10x faster: bytes.translate and one substring search, both in C."""
    return _RUN in text.encode("utf-8", "surrogatepass").translate(_RUN_TABLE)


def _may_hold_secrets(doc: Any, gathered: tuple | None = None) -> bool:
    """False only when no string and no field name in `doc` could be a literal key or token.

    The strings and field names `_gather` collected, one regex over them all: on a 100,000-node
    spec ~10x faster than the exact walk, which runs only when this says yes.
    """
    texts, fields, plain = _gather(doc) if gathered is None else gathered
    if not plain:
        return True  # not plain data: the shape check refuses it first anyway
    names = "\n".join(fields)
    if any(f.lower() in _KEY_FIELDS or f.lower() in _TOKEN_FIELDS for f in fields):
        return True
    if _suspect(names):
        return True
    joined = "\n".join(texts)
    if _suspect(joined):
        return True
    forms = keys.remembered_forms()
    return any(f in names or f in joined for f in forms)


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
        )
        for g in d["client_groups"]
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
    )
