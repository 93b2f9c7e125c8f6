"""Where each synthesized stack keeps its Terraform state, against where an earlier run in the same
output directory kept it.

Terraform records a working directory's backend in `.terraform/terraform.tfstate`. When the state
directory changes ($TSEGOSSIP_STATE_DIR, or the working directory of a default local backend) and the
same cdktf.out is used again, `terraform init` stops with "Backend configuration changed" and advice
about -migrate-state that fits nothing here. After synth, per stack: a record pointing at a state
that holds nothing is stale and goes (init then uses the new place); a record pointing at a state that
holds resources, while the new place has none, is refused with the move that keeps it (never copied
behind the operator's back: two states of one stage would each think they own it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


class StateMoved(UserError):
    """A stack's state lives elsewhere than this synth puts it; the message says where and what to do."""


@dataclass(frozen=True)
class Moved:
    stack: str
    old: Path
    new: Path


def _local_path(stack_dir: Path, path: str | None) -> Path:
    # A relative path in a local backend is relative to the stack's working directory.
    return (stack_dir / (path or "terraform.tfstate")).resolve()


def _recorded(stack_dir: Path) -> Path | None:
    record = stack_dir / ".terraform" / "terraform.tfstate"
    try:
        doc = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    backend = doc.get("backend") or {}
    if backend.get("type") != "local":
        return None
    return _local_path(stack_dir, (backend.get("config") or {}).get("path"))


def _synthesized(stack_dir: Path) -> Path | None:
    try:
        doc = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    local = ((doc.get("terraform") or {}).get("backend") or {}).get("local")
    if local is None:
        return None
    return _local_path(stack_dir, local.get("path"))


def holds_resources(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # unreadable: assume it matters rather than lose it
    return bool(doc.get("resources"))


def reconcile(outdir: Path, stacks: list[str]) -> list[Moved]:
    """Forget stale backend records of `stacks` under outdir/stacks; refuse a move that would orphan a state."""
    moved, refused = [], []
    for stack in stacks:
        stack_dir = outdir / "stacks" / stack
        old, new = _recorded(stack_dir), _synthesized(stack_dir)
        if old is None or new is None or old == new:
            continue
        if holds_resources(old) and not new.exists():
            refused.append(f"stack {stack}: its Terraform state is at {old} (an earlier run with this output "
                           f"directory), and this synth keeps it at {new}. Move it there (mkdir -p {new.parent} && "
                           f"mv {old} {new}), or set TSEGOSSIP_STATE_DIR back to {old.parent}")
            continue
        if holds_resources(old) and holds_resources(new):
            refused.append(f"stack {stack}: Terraform states at both {old} (an earlier run) and {new} (this one); "
                           "keep the one that matches the cluster (`tsegossip check`) and remove the other")
            continue
        (stack_dir / ".terraform" / "terraform.tfstate").unlink(missing_ok=True)
        moved.append(Moved(stack, old, new))
    if refused:
        raise StateMoved("; ".join(refused) + "; nothing was deployed")
    return moved
