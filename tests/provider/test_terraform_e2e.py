"""Terraform end to end: real OpenTofu and Terraform 1.5.7 (built by ./bootstrap), the real plugin protocol, the
provider found through the project's filesystem mirror, against a lab of real Consul agents.

examples/provider/main.tf moves client group `web` plaintext -> accept-encrypted while the
servers are already in accept-encrypted (the smooth strategy's second step).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT, TEST_KEY, OTHER_KEY
from tsegossip import lab, observe
from tsegossip.keys import GossipKey

EXAMPLE = ROOT / "examples" / "provider" / "main.tf"


# Both engines the project builds: the default (OpenTofu, TERRAFORM_BINARY_NAME) and Terraform 1.5.7.
ENGINES = {"default": "TERRAFORM_BINARY_NAME", "terraform-1.5.7": "TSEGOSSIP_TERRAFORM_157"}


def _terraform(engine: str = "default") -> str:
    path = os.environ.get(ENGINES[engine], "")
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"${ENGINES[engine]} is not an executable engine ({path!r}): run ./bootstrap")
    assert str(Path(path).resolve()).startswith(str(ROOT)), f"the engine must be the project's, not {path}"
    return path


def _processes_with(marker: str, skip: str | None = None) -> dict[int, str]:
    """pid -> command line of live processes whose environment carries marker (skip: by command line)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if not (skip and skip in cmd):
                    found[int(pid)] = cmd
        except OSError:
            pass
    return found


@pytest.fixture(scope="module", params=sorted(ENGINES))
def e2e(request, tmp_path_factory):
    try:
        binary = lab.ensure_binary()
    except lab.LabError as err:
        pytest.skip(f"lab agent binary absent: {err}")
    tf = _terraform(request.param)
    subprocess.run([str(ROOT / "tools" / "install-provider")], check=True, capture_output=True)
    work = tmp_path_factory.mktemp("tf")
    key = GossipKey(TEST_KEY)
    accept = {"encrypt": key.reveal(), "encrypt_verify_incoming": False, "encrypt_verify_outgoing": False}
    with lab.running_lab(work, servers=3, clients=2, groups=1, binary=binary,
                         initial_fragments={"servers": accept}) as cluster:
        shutil.copy(EXAMPLE, work / "main.tf")
        tfvars = {
            "http_addr": cluster.servers[0].http_addr,
            "servers": {n.name: n.http_addr for n in cluster.servers},
            "clients": {n.name: n.http_addr for n in cluster.clients},
            "config_path": os.path.join(cluster.workdir, "{node}", "config", "50-gossip.json"),
            "restart_command": f"{sys.executable} -m tsegossip lab restart --dir {cluster.workdir} {{node}}",
            "key_fingerprint": key.fingerprint,
        }
        (work / "lab.tfvars.json").write_text(json.dumps(tfvars))
        marker = f"tsegossip-e2e-{uuid.uuid4().hex}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
        env.update(TF_CLI_CONFIG_FILE=str(ROOT / ".terraformrc"), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1",
                   TSEGOSSIP_KEY=TEST_KEY, TSEGOSSIP_PROGRESS_LOG=str(work / "progress.log"),
                   TSEGOSSIP_E2E_MARKER=marker, TSEGOSSIP_PROGRESS_TTY="0")

        def run(*args, ok=(0,), **extra_env):
            t0 = time.monotonic()
            p = subprocess.run([tf, *args, "-input=false", "-no-color"], cwd=work, env={**env, **extra_env},
                               capture_output=True, text=True, timeout=120)
            took = time.monotonic() - t0
            assert p.returncode in ok, f"terraform {args[0]} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
            return p, took

        yield {"run": run, "cluster": cluster, "work": work, "marker": marker, "key": key}
    # Whatever happened, nothing started here (terraform, provider, restarted agents) outlives the test.
    assert _processes_with(marker) == {}


def test_init_plan_apply_plan_again_destroy(e2e):
    run, cluster, work = e2e["run"], e2e["cluster"], e2e["work"]
    run("init")
    lock = (work / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/tsegossip/tsegossip"' in lock

    plan, _ = run("plan", "-var-file=lab.tfvars.json", "-detailed-exitcode", ok=(2,))
    assert "Plan: 4 to add" in plan.stdout

    apply, took = run("apply", "-auto-approve", "-var-file=lab.tfvars.json")
    assert "Apply complete! Resources: 4 added" in apply.stdout
    # Checked live, not from Terraform's word: both web clients moved, servers untouched.
    view = observe.observe(cluster.servers[0].http_addr, {n.name: n.http_addr for n in cluster.nodes})
    assert set(view.phases().values()) == {"accept-encrypted"}
    assert set(view.members.values()) == {"alive"}
    assert observe.keyring(cluster.servers[0].http_addr).holds_everywhere(e2e["key"].fingerprint)

    state = (work / "terraform.tfstate").read_text()
    assert TEST_KEY not in state and e2e["key"].fingerprint in state
    outputs = json.loads(state)["outputs"]
    assert outputs["observed"]["value"] == {"web-1": "accept-encrypted", "web-2": "accept-encrypted"}
    assert outputs["verdict"]["value"].startswith("ok: 5 node(s)")
    progress = (work / "progress.log").read_text()
    assert "batch 1/2: web-1 -> accept-encrypted" in progress and "batch 2/2: web-2" in progress

    run("plan", "-var-file=lab.tfvars.json", "-detailed-exitcode", ok=(0,))

    destroy, _ = run("destroy", "-auto-approve", "-var-file=lab.tfvars.json")
    assert "Destroy complete! Resources: 4 destroyed" in destroy.stdout
    assert "never downgrades" in destroy.stdout

    # The wrong key is refused at apply time, naming both fingerprints, before anything is touched.
    wrong = GossipKey(OTHER_KEY)
    refused, _ = run("apply", "-auto-approve", "-var-file=lab.tfvars.json", ok=(1,), TSEGOSSIP_KEY=wrong.reveal())
    assert "The gossip key does not match the plan" in refused.stderr
    assert wrong.fingerprint in refused.stderr and e2e["key"].fingerprint in refused.stderr
    assert wrong.reveal() not in refused.stdout + refused.stderr
    run("destroy", "-auto-approve", "-var-file=lab.tfvars.json")
    view = observe.observe(cluster.servers[0].http_addr, {n.name: n.http_addr for n in cluster.clients})
    assert set(view.phases().values()) == {"accept-encrypted"}  # destroy forgot, did not downgrade
    # Terraform and the provider are gone; only the lab agents restarted by restart_command remain
    # (lab down stops them), and they never saw the key's environment variable.
    assert _processes_with(e2e["marker"], skip=" agent -config-dir ") == {}
    for pid in _processes_with(e2e["marker"]):
        assert b"TSEGOSSIP_KEY=" not in Path(f"/proc/{pid}/environ").read_bytes()
