"""One checkout, its own provider: no Terraform plugin cache shared between checkouts.

cdktf-cli sets TF_PLUGIN_CACHE_DIR=~/.terraform.d/plugin-cache unless CDKTF_DISABLE_PLUGIN_CACHE_ENV
is set, and with a filesystem mirror Terraform 1.0.3 cached a *symlink* to the first mirror that
installed the provider: every later deploy on the machine then ran that first checkout's provider
code (seen here with the project's earlier engine).

Two "checkouts" here each have their own mirror whose provider launcher records which checkout it
belongs to before starting the real provider. Both run the real `cdktf diff` (init + plan, which
starts the provider) under one HOME, as the same user on one machine would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tsegossip import deploy
from tsegossip.resource_schema import PROVIDER_SOURCE, PROVIDER_VERSION

ROOT = Path(__file__).resolve().parents[1]
CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"

pytestmark = pytest.mark.skipif(not CDKTF.exists(), reason="cdktf-cli not installed: run ./bootstrap")

APP = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tsegossip.constructs._cdk import App, TerraformStack
from tsegossip.constructs.bindings import TsegossipProvider
app = App()
TsegossipProvider(TerraformStack(app, "probe"))
app.synth()
"""


def _checkout(base: Path, name: str, marker: Path) -> Path:
    """A minimal project: a cdktf app, its own provider mirror and CLI config."""
    root = base / name
    host, ns, typ = PROVIDER_SOURCE.split("/")
    plugin_dir = root / "mirror" / host / ns / typ / PROVIDER_VERSION / "linux_amd64"
    plugin_dir.mkdir(parents=True)
    launcher = plugin_dir / f"terraform-provider-{typ}_v{PROVIDER_VERSION}"
    launcher.write_text(f"#!/bin/sh\necho {name} >> {marker}\n"
                        f"export PYTHONPATH={ROOT}\nexec {sys.executable} -m tsegossip.provider \"$@\"\n")
    launcher.chmod(0o755)
    (root / ".terraformrc").write_text(
        "disable_checkpoint = true\nprovider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{root / "mirror"}"\n    include = ["{host}/{ns}/*"]\n  }}\n'
        f'  direct {{\n    exclude = ["{host}/{ns}/*"]\n  }}\n}}\n')
    (root / "app.py").write_text(APP)
    (root / "cdktf.json").write_text(json.dumps({
        "language": "python", "app": f"{sys.executable} app.py", "sendCrashReports": False,
        "terraformProviders": [], "context": {}}))
    return root


def _diff(root: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(deploy.cdktf_command("diff", ["probe"], root / "cdktf.out", ROOT), cwd=root,
                          env={**env, "TF_CLI_CONFIG_FILE": str(root / ".terraformrc")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _run_both(tmp_path: Path, env: dict[str, str]) -> list[str]:
    marker = tmp_path / "ran"
    marker.touch()
    first, second = _checkout(tmp_path, "first", marker), _checkout(tmp_path, "second", marker)
    _diff(first, env)
    _diff(second, env)
    return sorted(set(marker.read_text().split()))


ENGINES = {"opentofu": "TERRAFORM_BINARY_NAME", "terraform-1.5.7": "TSEGOSSIP_TERRAFORM_157"}


def _env(tmp_path: Path, engine: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    exe = os.environ.get(ENGINES[engine], "")
    if not os.access(exe, os.X_OK):
        pytest.skip(f"${ENGINES[engine]} is not an executable engine: run ./bootstrap")
    base = {**os.environ, "HOME": str(home), "TERRAFORM_BINARY_NAME": exe}
    return deploy.deploy_env(tmp_path / "spec.yaml", tmp_path / "progress.log", base=base)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_each_checkout_runs_its_own_provider(tmp_path, engine):
    env = _env(tmp_path, engine)
    assert _run_both(tmp_path, env) == ["first", "second"]
    assert not (tmp_path / "home" / ".terraform.d" / "plugin-cache").exists()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_fails_without_the_guard_a_shared_cache_appears_in_home(tmp_path, engine):
    # Without the guard cdktf points the engine at ~/.terraform.d/plugin-cache, which is how Terraform
    # 1.0.3 came to run another checkout's provider through a cached symlink. OpenTofu 1.12.6 and
    # Terraform 1.5.7 were measured here not to take that symlink (each checkout still ran its own
    # provider), but the shared cache is there all the same, and the guard keeps it out.
    env = _env(tmp_path, engine)
    env.pop("CDKTF_DISABLE_PLUGIN_CACHE_ENV")
    assert "first" in _run_both(tmp_path, env)
    assert (tmp_path / "home" / ".terraform.d" / "plugin-cache").is_dir()


def test_project_environment_disables_the_shared_cache():
    text = (ROOT / "bootstrap").read_text()
    assert "export CDKTF_DISABLE_PLUGIN_CACHE_ENV=1" in text and "unset TF_PLUGIN_CACHE_DIR" in text
    env_file = ROOT / ".tsegossip.env"
    if env_file.exists():
        assert "export CDKTF_DISABLE_PLUGIN_CACHE_ENV=1" in env_file.read_text()
    leaked = deploy.deploy_env("s.yaml", Path("/tmp/p.log"), base={"TF_PLUGIN_CACHE_DIR": "/shared"})
    assert "TF_PLUGIN_CACHE_DIR" not in leaked and leaked["CDKTF_DISABLE_PLUGIN_CACHE_ENV"] == "1"
