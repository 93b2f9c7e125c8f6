"""What the provider process and the lab's restart command import when they start.

Terraform starts the provider four times per deploy, and a batch runs one `tsegossip lab
restart` per node at once; neither should pay for HTTP/JSON-Schema libraries it does not use
yet (BENCHMARKS.md ## Deploy: plugin start 0.20 -> 0.16 s)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("consul", "requests", "jsonschema")


@pytest.mark.parametrize("module", ["tsegossip.provider.provider", "tsegossip.lab.cli"])
def test_starts_without_http_or_schema_libraries(module):
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()} at start"


def test_observe_loads_the_client_on_first_use():
    code = ("import sys; from tsegossip import observe; before = 'consul' in sys.modules; "
            "observe.node_settings('http://127.0.0.1:9', 'x', timeout=0.2); "
            "print(before, 'consul' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
