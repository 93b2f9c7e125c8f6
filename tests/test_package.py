"""The installable package: an sdist, a wheel built from it the way pip builds one, and that wheel
installed by pip (its dependencies from PyPI, held to Pipfile.lock's versions) into a fresh venv, run
from outside the checkout with nothing of the checkout on PATH but the engine and the user's cdktf-cli.

PyPI out of reach fails the install fixture: a skip would let a broken package pass unnoticed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support import ROOT, TEST_KEY, console_script
from tsegossip.resource_schema import PROVIDER_VERSION

SCHEMAS = sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
PROVIDER_MODULES = sorted(p.name for p in (ROOT / "tsegossip" / "provider").glob("*.py"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
ENGINE_CONFIG = """terraform {
  required_providers {
    tsegossip = { source = "tsegossip/tsegossip", version = "%s" }
  }
}
""" % PROVIDER_VERSION


def run(cmd, *, cwd=None, env=None, timeout=120.0) -> subprocess.CompletedProcess:
    """subprocess.run in a session of its own: on a timeout the whole group goes (cdktf's node and the
    python app it starts, pip's build), not just the first process."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd[0]} {' '.join(map(str, cmd[1:3]))} timed out after {timeout}s:\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{' '.join(r.args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def needed_tool(path: str, what: str) -> str:
    """Inside ./bootstrap's environment a missing tool fails the test (a skip would hide it); outside, skip."""
    if path and os.access(path, os.X_OK):
        return path
    if "TSEGOSSIP_ROOT" in os.environ:
        pytest.fail(f"{what} is not installed ({path!r}): run ./bootstrap")
    pytest.skip(f"{what} not available outside ./bootstrap's environment ({path!r})")


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class Installed:
    venv: Path
    home: Path
    env: dict[str, str]

    def cli(self, *args, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return run([self.venv / "bin" / "tsegossip", *args], cwd=cwd, env=self.env, timeout=timeout)

    def python(self, code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        return ok(run([self.venv / "bin" / "python", "-c", code], cwd=cwd, env=env or self.env)).stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """The sdist from a copy of what the repository holds (so the checkout gets no build/ or egg-info of
    ours), then the wheel from that sdist alone, as pip builds it."""
    tmp = tmp_path_factory.mktemp("package")
    listed = ok(run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)).stdout
    src = tmp / "src"
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():  # a file deleted in the work tree is still in the index
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    hook = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    sdist = tmp / "dist" / ok(run([sys.executable, "-c", hook, tmp / "dist"], cwd=src)).stdout.split()[-1]
    wheels = tmp / "wheels"
    # --no-cache-dir: never a wheel pip cached from an earlier sdist at the same path
    ok(run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
            "--wheel-dir", wheels, sdist], cwd=tmp, timeout=300))
    (wheel,) = wheels.glob("tsegossip-*.whl")
    return Built(sdist, wheel)


def constraints_from_lock() -> str:
    """Pipfile.lock's [packages] versions as a pip constraints file: the fresh install resolves the
    wheel's own requirements, held to the versions the project tests with."""
    lock = json.loads((ROOT / "Pipfile.lock").read_text())["default"]
    return "".join(f"{name}{entry['version']}\n" for name, entry in sorted(lock.items()) if entry.get("version"))


def outside_env(venv: Path, home: Path) -> dict[str, str]:
    """A user's shell: the fresh venv's bin first, then the system's PATH without any of the checkout
    (no .venv, no node_modules, no .tools); no TSEGOSSIP_ROOT, no PYTHONPATH, no project CLI config.
    The engine comes as TERRAFORM_BINARY_NAME, node from the system."""
    engine = needed_tool(os.environ.get("TERRAFORM_BINARY_NAME", ""), "the engine ($TERRAFORM_BINARY_NAME)")
    dropped = ("TSEGOSSIP_", "TF_", "PYTHON", "VIRTUAL_ENV", "PIPENV_", "CDKTF_", "TERRAFORM_", "NODE_PATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    system = [p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(ROOT)]
    env.update(PATH=os.pathsep.join([str(venv / "bin"), *system]), HOME=str(home), TERRAFORM_BINARY_NAME=engine,
               CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TSEGOSSIP_KEY=TEST_KEY)
    return env


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("installed")
    venv, home = tmp / "venv", tmp / "home"
    home.mkdir()
    python311 = shutil.which("python3.11")
    assert python311, "python3.11 is not on PATH: the fresh venv needs it"
    ok(run([python311, "-m", "venv", venv], timeout=120))
    constraints = tmp / "constraints.txt"
    constraints.write_text(constraints_from_lock())
    started = time.monotonic()
    pip = run([venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--constraint",
               constraints, built.wheel], cwd=tmp, timeout=900)
    if pip.returncode != 0:
        pytest.fail(f"pip install of the wheel into a fresh venv failed (is PyPI reachable?): exit "
                    f"{pip.returncode}\n{pip.stdout[-4000:]}\n{pip.stderr[-4000:]}")
    print(f"\ntest_package: pip install of {built.wheel.name} with its dependencies took "
          f"{time.monotonic() - started:.1f}s", file=sys.stderr)
    return Installed(venv, home, outside_env(venv, home))


def _requirement(text: str) -> tuple:
    req = Requirement(text)
    return req.name, req.specifier, req.marker and str(req.marker)


def test_the_sdist_carries_the_schemas_and_what_a_wheel_is_built_from(built):
    with tarfile.open(built.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md"} <= names
    assert {f"schemas/{s}" for s in SCHEMAS} <= names
    assert {f"tsegossip/provider/{m}" for m in PROVIDER_MODULES} <= names
    assert not {n for n in names if n.startswith((".venv/", "node_modules/", ".tools/", "tsegossip/_schemas"))}


def test_the_wheel_built_from_the_sdist_holds_every_schema_the_provider_and_the_console_script(built):
    with zipfile.ZipFile(built.wheel) as whl:
        names = set(whl.namelist())
        for schema in SCHEMAS:
            assert whl.read(f"tsegossip/_schemas/{schema}") == (ROOT / "schemas" / schema).read_bytes()
        info = f"tsegossip-{VERSION}.dist-info"
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
        metadata = whl.read(f"{info}/METADATA").decode()
    assert {f"tsegossip/provider/{m}" for m in PROVIDER_MODULES} <= names
    assert "[console_scripts]\ntsegossip = tsegossip.cli:main" in entry_points
    assert not {n for n in names if n.startswith(("schemas/", "tests/"))}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requires = {line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")}
    assert {_requirement(d) for d in declared} == {_requirement(r) for r in requires}
    assert "Description-Content-Type: text/markdown" in metadata and "# tsegossip" in metadata


def test_installed_cli_validates_and_plans_an_example_outside_the_checkout(installed, tmp_path):
    r = ok(installed.cli("--help", cwd=tmp_path))
    assert "provider" in r.stdout and "init" in r.stdout
    where = json.loads(installed.python(
        "import json, tsegossip, tsegossip.schemas as s; "
        "print(json.dumps([tsegossip.__file__, str(s.SCHEMA_DIR)]))", cwd=tmp_path))
    site = installed.venv / "lib" / "python3.11" / "site-packages"
    assert where == [str(site / "tsegossip" / "__init__.py"), str(site / "tsegossip" / "_schemas")]

    shutil.copy(ROOT / "examples" / "tse-smooth.yaml", tmp_path / "spec.yaml")
    ok(installed.cli("validate", "spec.yaml", cwd=tmp_path))
    plan = json.loads(ok(installed.cli("plan", "spec.yaml", "--format", "json", cwd=tmp_path)).stdout)
    ours = subprocess.run([console_script(), "plan", "spec.yaml", "--format", "json"], cwd=tmp_path,
                          env={**os.environ, "TSEGOSSIP_KEY": TEST_KEY}, capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0, ours.stderr
    assert plan == json.loads(ours.stdout)  # the installed package plans exactly as the checkout does
    assert [s["stack"] for s in plan["steps"]] == \
        ["shop-1-accept-encrypted", "shop-2-send-encrypted", "shop-3-enforced"]


def test_fails_a_wrong_target_with_the_packaged_schemas_message_naming_what_is_allowed(installed, tmp_path):
    spec = (ROOT / "examples" / "tse-smooth.yaml").read_text()
    assert "target: enforced" in spec
    (tmp_path / "bad.yaml").write_text(spec.replace("target: enforced", "target: encrypted", 1))
    bad = installed.cli("validate", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "target" in bad.stderr and "'encrypted'" in bad.stderr and "enforced" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_installed_provider_install_writes_a_mirror_the_engine_runs_the_installed_package_from(installed, tmp_path):
    mirror, rc = tmp_path / "mirror", tmp_path / "tf.rc"
    r = ok(installed.cli("provider", "install", "--mirror", mirror, "--config-out", rc, cwd=tmp_path))
    launchers = sorted(mirror.glob(f"*/tsegossip/tsegossip/{PROVIDER_VERSION}/*/terraform-provider-tsegossip_v*"))
    assert [p.relative_to(mirror).parts[0] for p in launchers] == ["registry.opentofu.org", "registry.terraform.io"]
    python = installed.venv / "bin" / "python"
    for exe in launchers:
        text = exe.read_text()
        assert f"exec {python} -m tsegossip.provider" in text
        assert str(ROOT) not in text and "PYTHONPATH" not in text and "TSEGOSSIP_ROOT" not in text
    assert rc.read_text().endswith(r.stdout)

    # started as Terraform starts it, the launcher answers go-plugin's handshake from the fresh venv
    plugin = subprocess.Popen([launchers[0]], cwd=tmp_path, env=installed.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        ready, _, _ = select.select([plugin.stdout], [], [], 60)
        handshake = plugin.stdout.readline() if ready else ""
        cmdline = Path(f"/proc/{plugin.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        os.killpg(plugin.pid, signal.SIGTERM)
        try:
            plugin.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(plugin.pid, signal.SIGKILL)
            plugin.wait()
        errors = plugin.stderr.read()
        plugin.stdout.close()
        plugin.stderr.close()
    assert handshake.count("|") >= 4, f"no go-plugin handshake line in 60 s: {handshake!r}\n{errors}"
    core, protocol, _network, _address, wire = handshake.split("|")[:5]
    assert (core, protocol, wire) == ("1", "6", "grpc"), handshake
    assert cmdline[:3] == [str(python).encode(), b"-m", b"tsegossip.provider"]

    app = tmp_path / "app"
    app.mkdir()
    (app / "main.tf").write_text(ENGINE_CONFIG)
    env = {**installed.env, "TF_CLI_CONFIG_FILE": str(rc)}
    engine = env["TERRAFORM_BINARY_NAME"]
    init = ok(run([engine, "init", "-input=false", "-no-color"], cwd=app, env=env))
    assert f"tsegossip/tsegossip v{PROVIDER_VERSION}" in init.stdout
    ok(run([engine, "validate", "-no-color"], cwd=app, env=env))  # the schema, served by the installed provider


def test_installed_init_scaffolds_an_app_that_plans_and_synthesizes(installed, tmp_path):
    cdktf_bin = ROOT / "node_modules" / ".bin"
    needed_tool(str(cdktf_bin / "cdktf"), "cdktf-cli (node_modules/.bin/cdktf)")
    app = tmp_path / "infra" / "gossip"
    ok(installed.cli("init", app, cwd=tmp_path))
    python = installed.venv / "bin" / "python"
    assert json.loads((app / "cdktf.json").read_text())["app"] == f"{python} main.py"
    lock = (app / "requirements.lock").read_text()
    assert f"tsegossip=={VERSION}" in lock and "cdktf==0.21.0" in lock
    for name in ("cdktf.json", "main.py", "spec.yaml", "requirements.lock", ".gitignore"):
        assert str(ROOT) not in (app / name).read_text(), name
    plan = json.loads(ok(installed.cli("plan", "spec.yaml", "--format", "json", cwd=app)).stdout)
    stacks = [s["stack"] for s in plan["steps"]]

    # the user's own cdktf-cli (here the checkout's npm install, on PATH as theirs would be)
    env = {**installed.env, "PATH": f"{installed.env['PATH']}{os.pathsep}{cdktf_bin}"}
    ok(run(["cdktf", "synth", "--output", "cdktf.out"], cwd=app, env=env, timeout=300))
    out = app / "cdktf.out" / "stacks"
    assert sorted(p.name for p in out.iterdir()) == sorted(stacks)
    for f in out.rglob("*.json"):
        assert TEST_KEY not in f.read_text()

    # installed, `tsegossip deploy` drives that app from where it runs, and the provider (started by the
    # engine in a stack's directory) logs progress beside the app's cdktf.json
    stack_dir = out / stacks[0]
    found = json.loads(installed.python(
        "import json; from tsegossip import deploy; from tsegossip.provider.progress import default_log_path; "
        "print(json.dumps([str(deploy.ROOT), deploy.cdktf_binary(), str(default_log_path())]))", cwd=app, env=env))
    assert found[:2] == [str(app), str(cdktf_bin / "cdktf")]
    moved = json.loads(installed.python("import json; from tsegossip.provider.progress import default_log_path; "
                                        "print(json.dumps(str(default_log_path())))", cwd=stack_dir))
    assert Path(found[2]) == Path(moved) == app / ".tsegossip" / "progress.log"
