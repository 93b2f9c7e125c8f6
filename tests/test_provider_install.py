"""`tsegossip provider install`: a mirror both engines initialise from, and the CLI config to use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, console_script
from tsegossip.resource_schema import PROVIDER_VERSION

ENGINES = {"opentofu": "TERRAFORM_BINARY_NAME", "terraform-1.5.7": "TSEGOSSIP_TERRAFORM_157"}
CONFIG = """terraform {
  required_providers {
    tsegossip = { source = "%s", version = "%s" }
  }
}
"""


def engine(name: str) -> str:
    path = os.environ.get(ENGINES[name], "")
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"${ENGINES[name]} is not an executable engine ({path!r}): run ./bootstrap")
    return path


def install(tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    mirror, rc = tmp_path / "mirror", tmp_path / "tf.rc"
    r = subprocess.run([console_script(), "provider", "install", "--mirror", str(mirror), "--config-out", str(rc)],
                       capture_output=True, text=True, timeout=60)
    return r, mirror, rc


def test_install_writes_one_launcher_per_registry_host_running_this_python(tmp_path):
    r, mirror, rc = install(tmp_path)
    assert r.returncode == 0, r.stderr
    launchers = sorted(mirror.glob(f"*/tsegossip/tsegossip/{PROVIDER_VERSION}/*/terraform-provider-tsegossip_v*"))
    assert [p.relative_to(mirror).parts[0] for p in launchers] == ["registry.opentofu.org", "registry.terraform.io"]
    for exe in launchers:
        assert os.access(exe, os.X_OK) and exe.parent.name == "linux_amd64"
        assert f"-m tsegossip.provider" in exe.read_text() and sys.executable in exe.read_text()
    assert f'path    = "{mirror.resolve()}"' in r.stdout and "direct {" in r.stdout
    assert rc.read_text().endswith(r.stdout)
    again, _, _ = install(tmp_path)  # idempotent
    assert again.returncode == 0 and again.stdout == r.stdout


@pytest.mark.parametrize("name", sorted(ENGINES))
@pytest.mark.parametrize("source", ["tsegossip/tsegossip", "registry.terraform.io/tsegossip/tsegossip"])
def test_each_engine_initialises_from_the_mirror_outside_the_checkout(tmp_path, name, source):
    tf = engine(name)
    r, _, rc = install(tmp_path)
    assert r.returncode == 0, r.stderr
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.tf").write_text(CONFIG % (source, PROVIDER_VERSION))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "TSEGOSSIP_"))}
    env.update(TF_CLI_CONFIG_FILE=str(rc), HOME=str(tmp_path), TF_IN_AUTOMATION="1")
    init = subprocess.run([tf, "init", "-input=false", "-no-color"], cwd=app, env=env, capture_output=True,
                          text=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"tsegossip/tsegossip v{PROVIDER_VERSION}" in init.stdout
    assert not str(app).startswith(str(ROOT))
    # the provider answers the plugin handshake: validate loads its schema
    validate = subprocess.run([tf, "validate", "-no-color"], cwd=app, env=env, capture_output=True, text=True,
                              timeout=120)
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_an_unwritable_mirror_is_refused_naming_the_option(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = subprocess.run([console_script(), "provider", "install", "--mirror", str(blocker / "m")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: --mirror: ") and "Traceback" not in r.stderr
