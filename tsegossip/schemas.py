"""Load the JSON Schemas in schemas/ (the single source of truth) and turn their
errors into one plain message per problem."""

from __future__ import annotations

import itertools
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the provider process needs it only when it writes a fragment
    import jsonschema
    from jsonschema import Draft202012Validator

from .errors import Problem
from .keys import redact_text, scrub


def _schema_dir() -> Path:
    """The checkout's schemas/ when this package runs from one (edited there, read there), else the copy
    the wheel carries as tsegossip/_schemas/ (setup.py copies schemas/*.json in at build time)."""
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if (checkout / "rollout.schema.json").is_file():
        return checkout
    from importlib.resources import files

    return Path(str(files(__package__) / "_schemas"))


SCHEMA_DIR = _schema_dir()


@cache
def load(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as fh:
        return json.load(fh)


@cache
def validator(name: str) -> Draft202012Validator:
    """The detailed validator: slow (one `$ref` resolution per node), used for the messages.

    A list's items that the compiled validator finds valid are not walked again (they yield no
    error either way): one bad node in a 1 MB spec costs one node's walk, not 14,000.
    """
    return _detailed(name, shortcut=True)


@cache
def reference_validator(name: str) -> Draft202012Validator:
    """`validator` without the shortcut: every item walked by jsonschema (the tests' oracle)."""
    return _detailed(name, shortcut=False)


@cache
def def_validator(name: str, definition: str) -> Draft202012Validator:
    """The detailed validator of one `$defs` entry of schemas/<name>.schema.json (the provider checks
    a resource attribute that holds a part of the spec, such as a delivery block, with it)."""
    return _detailed(name, shortcut=False, schema=_def_schema(name, definition))


def _def_schema(name: str, definition: str) -> dict[str, Any]:
    root = load(name)
    if definition not in root.get("$defs", {}):
        raise KeyError(f"{name}.schema.json has no $defs/{definition}")
    return {"$schema": root.get("$schema"), "$defs": root["$defs"], "$ref": f"#/$defs/{definition}"}


def def_problems(name: str, definition: str, instance: Any) -> list[Problem]:
    """`problems` against one `$defs` entry."""
    return problems(name, instance, using=def_validator(name, definition))


def apply_def_defaults(name: str, definition: str, instance: Any) -> Any:
    """`apply_defaults` for one `$defs` entry."""
    return _def_filler(name, definition).fill(instance)


@cache
def _def_filler(name: str, definition: str) -> _Filler:
    return _Filler.compile(load(name), _def_schema(name, definition), {})


def _detailed(name: str, shortcut: bool, schema: dict[str, Any] | None = None) -> Draft202012Validator:
    schema = load(name) if schema is None else schema
    import jsonschema
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)

    def pattern(v, patrn, instance, _schema):
        # JSON Schema patterns are ECMA-262: `$` is the end of the string. Python's `$` also matches
        # before a trailing newline, which would let "web-1\n" through where the compiled validator
        # (and the JSON Schema spec) refuse it.
        if v.is_type(instance, "string") and not _ecma(patrn).search(instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    plain_items = Draft202012Validator.VALIDATORS["items"]

    def items(v, items_schema, instance, parent):
        if not isinstance(items_schema, dict) or parent.get("prefixItems") or not v.is_type(instance, "array"):
            yield from plain_items(v, items_schema, instance, parent)
            return
        fast = _item_validator(name, json.dumps(items_schema, sort_keys=True))
        for index, item in enumerate(instance):
            try:
                if fast.is_valid(item):
                    continue
            except (ValueError, TypeError, OverflowError, RecursionError):
                pass
            yield from v.descend(instance=item, schema=items_schema, path=index)

    keywords = {"pattern": pattern, **({"items": items} if shortcut else {})}
    cls = jsonschema.validators.extend(Draft202012Validator, keywords)
    return cls(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def _item_validator(name: str, items_schema: str) -> Any:
    import jsonschema_rs

    root = load(name)
    sub = {"$schema": root.get("$schema"), "$defs": root.get("$defs", {}), **json.loads(items_schema)}
    return jsonschema_rs.validator_for(sub, validate_formats=True, offline=True)


@cache
def _ecma(pattern: str) -> re.Pattern:
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


@cache
def fast_validator(name: str) -> Any:
    """The compiled validator (jsonschema-rs): ~500x faster than `validator` on a 100,000-node spec.

    It answers only valid/invalid; an invalid document goes to `validator` for the messages, so
    what a user reads never depends on which validator ran. Both must agree on validity
    (tests/test_schemas_agree.py runs them side by side).
    """
    import jsonschema_rs

    return jsonschema_rs.validator_for(load(name), validate_formats=True, offline=True)


def is_valid(name: str, instance: Any) -> bool:
    """True when `instance` is valid against schemas/<name>.schema.json (the fast path)."""
    try:
        return fast_validator(name).is_valid(instance)
    except (ValueError, TypeError, OverflowError, RecursionError):
        # values outside JSON (YAML dates, sets, huge integers): the detailed validator decides
        return not problems(name, instance)


def json_path(parts) -> str:
    """`servers.nodes[0].name`; a field name that holds a key is shown redacted, a control character escaped."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part)
        if len(part) >= 16:
            part = str(scrub(part))
        if not part.isprintable():
            part = repr(part)[1:-1]
        out += f".{part}" if out else part
    return out


def show(value: Any) -> str:
    """A value as a message quotes it: keys redacted, at most 60 characters, always one line."""
    value = scrub(value)  # an error message must never carry a key
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            text = f"a {type(value).__name__}"
    if len(text) <= 60:
        return text
    return redact_text(text[:57]) + "..."


def _describe(error: jsonschema.ValidationError) -> list[Problem]:
    path = json_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return [
            Problem(json_path([*error.absolute_path, name]), f"unknown field {show(name)}; allowed: {', '.join(allowed)}")
            for name in extra
        ]
    return [_describe_one(error, path)]


def _describe_one(error: jsonschema.ValidationError, path: str) -> Problem:
    v = error.validator
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return Problem(json_path([*error.absolute_path, missing]), "is required")
    if v == "enum":
        return Problem(path, f"{show(error.instance)} is not allowed; allowed: {', '.join(map(str, error.validator_value))}")
    if v == "const":
        return Problem(path, f"{show(error.instance)} is not allowed here; expected {show(error.validator_value)}")
    if v == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return Problem(path, f"{show(error.instance)} has the wrong type ({type(error.instance).__name__}); expected {expected}")
    if v == "pattern" and "x-placeholders" in error.schema and (why := template_problem(error.instance, error.schema)):
        return Problem(path, why)
    if v == "pattern" and "x-expected" in error.schema:
        return Problem(path, f"{show(error.instance)} is not {error.schema['x-expected']}")
    if v == "pattern":
        hint = error.schema.get("description", "")
        return Problem(path, f"{show(error.instance)} does not match {error.validator_value}" + (f" ({hint})" if hint else ""))
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return Problem(path, f"{show(error.instance)} is out of range; allowed: {word} {error.validator_value}")
    if v == "minItems":
        return Problem(path, f"must list at least {error.validator_value} item(s); got {len(error.instance)}")
    if v == "minLength":
        return Problem(path, f"{show(error.instance)} is too short; at least {error.validator_value} character(s)")
    return Problem(path, error.message)


def template_problem(text: str, schema: dict) -> str | None:
    """Why `text` is not a template of this field (its placeholders), or None when they are fine."""
    import string

    allowed = schema["x-placeholders"]
    names = ", ".join("{" + a + "}" for a in allowed)
    try:
        for literal, field, spec, conversion in string.Formatter().parse(text):
            if field is None:
                continue
            if field not in allowed or spec or conversion:
                whole = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                why = "is not a placeholder of this field" if field not in allowed else "takes no conversion or format"
                if field and field.split(".")[0].split("[")[0] in allowed and field not in allowed:
                    why = "reaches into a value (attribute or index access is not allowed)"
                return f"{show(whole)} {why}; allowed placeholders: {names} (write {{{{ and }}}} for literal braces)"
    except ValueError as err:
        return f"{show(text)} is not a valid template ({err}); allowed placeholders: {names} (write {{{{ and }}}} for literal braces)"
    return None


def problems(name: str, instance: Any, limit: int | None = None, using=None) -> list[Problem]:
    """Every problem with `instance` against schemas/<name>.schema.json, deepest first per path.

    With `limit`, the walk stops after that many errors (a spec where every one of 14,000 nodes is
    wrong needs a few lines, not 14,000 and not seconds); `using` is another validator (the tests').
    """
    found = (using or validator(name)).iter_errors(instance)
    if limit is not None:
        found = itertools.islice(found, limit)
    errors = sorted(found, key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    seen: set[str] = set()
    out: list[Problem] = []
    for err in errors:
        if err.validator in ("anyOf", "oneOf"):
            out_problem = _no_branch(err)
            if str(out_problem) not in seen:
                seen.add(str(out_problem))
                out.append(out_problem)
            continue
        for p in _describe(err):
            if str(p) not in seen:
                seen.add(str(p))
                out.append(p)
    return out


def _no_branch(error: jsonschema.ValidationError) -> Problem:
    """No alternative of a oneOf/anyOf matched: name the alternatives by their descriptions."""
    path = json_path(error.absolute_path)
    names = [b.get("description", "").split(":")[0].rstrip(".") for b in error.validator_value]
    names = [n for n in names if n] or [f"{len(error.validator_value)} alternatives"]
    return Problem(path, f"{show(error.instance)} matches none of the allowed forms ({'; '.join(names)})")


def apply_defaults(name: str, instance: Any) -> Any:
    """Return a copy of instance with the schema's `default`s filled in where absent.

    Defaults live in the schema so that code and documentation cannot disagree. The schema is
    compiled once into a tree of `_Filler`s, and a list whose items hold no defaults at any depth
    (a group's nodes) is passed over whole instead of being walked node by node.
    """
    return _filler(name).fill(instance)


@cache
def _filler(name: str) -> _Filler:
    root = load(name)
    return _Filler.compile(root, root, {})


class _Filler:
    """One schema location, resolved: its defaults, its children, its conditional branches."""

    __slots__ = ("defaults", "children", "branches", "items", "_deep")

    @classmethod
    def compile(cls, root: dict, schema: dict, memo: dict[int, _Filler]) -> _Filler:
        schema = _resolve(root, schema)
        if id(schema) in memo:
            return memo[id(schema)]
        self = memo[id(schema)] = cls()
        self.defaults: dict[str, Any] = {}
        self.children: dict[str, _Filler] = {}
        for prop, sub in schema.get("properties", {}).items():
            sub_r = _resolve(root, sub)
            if "default" in sub_r:
                self.defaults[prop] = sub_r["default"]
            elif "default" in sub:
                self.defaults[prop] = sub["default"]
            self.children[prop] = cls.compile(root, sub, memo)
        # allOf: [{if: {properties: {k: {const: c}}}, then: ...}]: a branch applies when every const matches
        self.branches: list[tuple[dict[str, Any], _Filler]] = [
            ({k: c.get("const") for k, c in sub.get("if", {}).get("properties", {}).items()},
             cls.compile(root, sub.get("then", {}), memo))
            for sub in schema.get("allOf", [])
        ]
        self.items = cls.compile(root, schema["items"], memo) if "items" in schema else None
        self._deep: bool | None = None
        return self

    def has_defaults(self, seen: frozenset[int] = frozenset()) -> bool:
        """Whether filling can change anything at or below here (a recursive schema counts as yes)."""
        if self._deep is None:
            if id(self) in seen:
                return True
            seen = seen | {id(self)}
            self._deep = bool(self.defaults) or any(c.has_defaults(seen) for c in self.children.values()) or \
                any(b.has_defaults(seen) for _, b in self.branches) or \
                (self.items is not None and self.items.has_defaults(seen))
        return self._deep

    def fill(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = dict(value)
            self._fill_props(out)
            for cond, branch in self.branches:
                if all(value.get(k) == c for k, c in cond.items()):
                    branch._fill_props(out)
            return out
        if isinstance(value, list) and self.items is not None:
            if not self.items.has_defaults():
                return list(value)
            return [self.items.fill(v) for v in value]
        return value

    def _fill_props(self, out: dict) -> None:
        for prop, child in self.children.items():
            if prop in out:
                out[prop] = child.fill(out[prop])
            elif prop in self.defaults:
                out[prop] = self.defaults[prop]
def _resolve(root: dict, schema: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        schema = root["$defs"][ref.split("/")[-1]]
    return schema


