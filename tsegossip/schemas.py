"""Load the JSON Schemas in schemas/ (the single source of truth) and turn their
errors into one plain message per problem."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the provider process needs it only when it writes a fragment
    import jsonschema
    from jsonschema import Draft202012Validator

from .errors import Problem
from .keys import scrub

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def load(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / f"{name}.schema.json", encoding="utf-8") as fh:
        return json.load(fh)


@cache
def validator(name: str) -> Draft202012Validator:
    schema = load(name)
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def json_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    value = scrub(value)  # an error message must never carry a key
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: jsonschema.ValidationError) -> list[Problem]:
    path = json_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return [
            Problem(json_path([*error.absolute_path, name]), f"unknown field {name!r}; allowed: {', '.join(allowed)}")
            for name in extra
        ]
    return [_describe_one(error, path)]


def _describe_one(error: jsonschema.ValidationError, path: str) -> Problem:
    v = error.validator
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return Problem(json_path([*error.absolute_path, missing]), "is required")
    if v == "enum":
        return Problem(path, f"{_show(error.instance)} is not allowed; allowed: {', '.join(map(str, error.validator_value))}")
    if v == "const":
        return Problem(path, f"{_show(error.instance)} is not allowed here; expected {_show(error.validator_value)}")
    if v == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return Problem(path, f"{_show(error.instance)} has the wrong type ({type(error.instance).__name__}); expected {expected}")
    if v == "pattern":
        hint = error.schema.get("description", "")
        return Problem(path, f"{_show(error.instance)} does not match {error.validator_value}" + (f" ({hint})" if hint else ""))
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return Problem(path, f"{_show(error.instance)} is out of range; allowed: {word} {error.validator_value}")
    if v == "minItems":
        return Problem(path, f"must list at least {error.validator_value} item(s); got {len(error.instance)}")
    if v == "minLength":
        return Problem(path, f"{_show(error.instance)} is too short; at least {error.validator_value} character(s)")
    return Problem(path, error.message)


def problems(name: str, instance: Any) -> list[Problem]:
    """Every problem with `instance` against schemas/<name>.schema.json, deepest first per path."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
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
    return Problem(path, f"{_show(error.instance)} matches none of the allowed forms ({'; '.join(names)})")


def apply_defaults(name: str, instance: Any) -> Any:
    """Return a copy of instance with the schema's `default`s filled in where absent.

    Defaults live in the schema so that code and documentation cannot disagree.
    """
    return _fill(load(name), load(name), instance)


def _resolve(root: dict, schema: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        schema = root["$defs"][ref.split("/")[-1]]
    return schema


def _fill(root: dict, schema: dict, value: Any) -> Any:
    schema = _resolve(root, schema)
    if isinstance(value, dict):
        branches = [schema]
        for sub in schema.get("allOf", []):
            cond = sub.get("if", {}).get("properties", {})
            if all(value.get(k) == c.get("const") for k, c in cond.items()):
                branches.append(_resolve(root, sub.get("then", {})))
        out = dict(value)
        for branch in branches:
            for prop, sub in branch.get("properties", {}).items():
                sub_r = _resolve(root, sub)
                if prop not in out and "default" in sub_r:
                    out[prop] = sub_r["default"]
                elif prop not in out and "default" in sub:
                    out[prop] = sub["default"]
                elif prop in out:
                    out[prop] = _fill(root, sub, out[prop])
        return out
    if isinstance(value, list) and "items" in schema:
        return [_fill(root, schema["items"], v) for v in value]
    return value
