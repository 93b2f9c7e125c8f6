"""Replace a file in one step: readers see the old content or the new, never half of either.

Agents re-read their config dir on restart and the lab's other processes re-read lab.json, so a
write that a crash or a concurrent reader could catch half done is a broken config. Both the
provider's file backend and the lab write through here: a temp file beside the target (same
filesystem, so the rename is atomic), flushed to disk, then renamed over the target.
Imports nothing from the project, so any layer may use it.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

_NAME_ATTEMPTS = 100


def write_text(path: str | os.PathLike, text: str, *, private: bool = False) -> None:
    """Write `text` (UTF-8) to `path` atomically; the directory must exist.

    private=True makes the file 0600 from its first byte (for content that holds a gossip key);
    otherwise it gets the mode a new file gets from open(), i.e. 0666 less the umask.
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    fd, tmp = _create_beside(directory, name, 0o600 if private else 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if private:
                os.fchmod(fh.fileno(), 0o600)  # exactly 0600, whatever the umask took away
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str | os.PathLike, obj: Any, *, private: bool = False, sort_keys: bool = False) -> None:
    """`obj` as JSON indented by 2 with a final newline, written with `write_text`."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n", private=private)


def _create_beside(directory: str, name: str, mode: int) -> tuple[int, str]:
    """Open a new, uniquely named hidden temp file in `directory` (O_EXCL: never someone else's)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_NAME_ATTEMPTS):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp file name beside {os.path.join(directory, name)}")
