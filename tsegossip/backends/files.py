"""Write a node's gossip fragment to its config_path, atomically and privately.

The fragment holds the clear key, so the file is created 0600 from the start (a temp
file in the same directory, then rename): no reader ever sees a half-written config,
and no moment exists where the key sits in a world-readable file.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from ..atomicfile import write_text
from ..schemas import problems, validator

SCHEMA = "agent-gossip-config"


class FragmentError(ValueError):
    """The fragment or its path is not acceptable; the message never contains the key."""


def render_path(template: str, node: str, http_addr: str) -> str:
    """config_path for one node: the template with {node} filled in (the schema allows no other placeholder)."""
    try:
        return template.format(node=node, http_addr=http_addr)
    except (KeyError, IndexError, ValueError) as err:
        raise FragmentError(
            f"config_path {template!r} is not a valid template ({err}); allowed placeholder: {{node}}"
        ) from None


def fragment_text(path: str, fragment: Mapping[str, Any]) -> str:
    """The file content for `fragment`, once it is valid against schemas/agent-gossip-config.schema.json.

    Every delivery writes exactly this text (local here, ssh on the node's host, command on stdin).
    """
    found = [str(p) for p in problems(SCHEMA, dict(fragment))]
    if not found and not validator(SCHEMA).is_valid(dict(fragment)):
        # problems() drops oneOf errors that carry sub-errors; the validator still says no.
        found = ["matches none of the allowed shapes (plaintext, or a key with both verify flags; "
                 "verify_incoming without verify_outgoing is not a phase)"]
    if found:
        # Problems name paths and values; scrub the key out in case a value is quoted.
        key = fragment.get("encrypt")
        text = "; ".join(found)
        if isinstance(key, str) and key:
            text = text.replace(key, "<redacted>")
        raise FragmentError(f"refusing to write an invalid gossip fragment to {path}: {text}")
    return json.dumps(dict(fragment), indent=2, sort_keys=True) + "\n"


def write_fragment(path: str, fragment: Mapping[str, Any]) -> str:
    """Validate `fragment` and write it to `path` on this machine (local delivery)."""
    text = fragment_text(path, fragment)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    write_text(path, text, private=True)
    return path
