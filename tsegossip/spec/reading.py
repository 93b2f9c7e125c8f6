"""Reading a spec file: bytes to plain data, refusing anything that is not a bounded data document.

Its own module because this is where untrusted input meets the process: the file checks (a regular
file, at most MAX_SPEC_BYTES, UTF-8, no NUL), the JSON loader (duplicate fields, huge integers) and
the YAML builder straight from libyaml's events (YAML 1.2 core schema; no aliases, custom tags or
Python objects; at most MAX_DEPTH deep). Nothing here knows the rollout schema.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .. import schemas
from ..errors import Problem, SpecError


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
