"""What machine a benchmark ran on, for the tables in BENCHMARKS.md, and how a bench prints its summary
(shared by the bench scripts)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def emit(out: dict, json_path: str | None) -> None:
    """Print a bench's summary (everything but the per-run rows) and write it all to json_path when given."""
    import json

    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2, default=str))
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2, default=str))


def describe() -> str:
    return (f"{os.cpu_count()} CPUs (nproc), {cpu_model()}, Python {platform.python_version()}, "
            f"Linux {platform.release()}")
