"""Progress lines from a running apply, to wherever a person can see them.

Terraform gives a provider no progress channel: the plugin protocol returns only at
the end of an apply, and the tf framework stubs go-plugin's stdio stream. So each line
goes to three places:

- stderr, prefixed `[INFO]`: go-plugin parses that prefix and Terraform logs the line at
  INFO (visible with TF_LOG=INFO, or in TF_LOG_PATH);
- a log file, $TSEGOSSIP_PROGRESS_LOG, else .tsegossip/progress.log under $TSEGOSSIP_ROOT, the
  checkout this package runs from, or (installed) the cdktf app being deployed: the nearest directory
  from the working directory up that holds cdktf.json, else the working directory itself
  (`tail -f` it during `cdktf deploy`);
- the controlling terminal (/dev/tty) when there is one and TSEGOSSIP_PROGRESS_TTY is not 0,
  so an interactive `terraform apply` / `cdktf deploy` shows the batches as they happen.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Mapping

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
# The checkout this package runs from (the one that holds its pyproject.toml); None when installed.
PROJECT_ROOT = _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").is_file() else None


def default_log_path(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("TSEGOSSIP_PROGRESS_LOG"):
        return Path(env["TSEGOSSIP_PROGRESS_LOG"])
    root = env.get("TSEGOSSIP_ROOT") or PROJECT_ROOT or _app_dir(Path.cwd() if cwd is None else cwd)
    return Path(root) / ".tsegossip" / "progress.log"


def _app_dir(cwd: Path) -> Path:
    """Terraform starts the provider in the stack's directory (cdktf.out/stacks/<stack> under the app), so
    the log goes beside the app's cdktf.json, where `cdktf deploy` was run and .gitignore expects it."""
    for d in (cwd, *cwd.parents):
        if (d / "cdktf.json").is_file():
            return d
    return cwd


class Progress:
    def __init__(self, log_path: Path | None = None, stderr=None, tty: bool | None = None,
                 environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.log_path = log_path if log_path is not None else default_log_path(env)
        self.stderr = sys.stderr if stderr is None else stderr
        self.tty = (env.get("TSEGOSSIP_PROGRESS_TTY", "1") != "0") if tty is None else tty

    def __call__(self, line: str) -> None:
        from ..keys import redact_text  # the one redaction rule: no key, in any encoding, in any log line

        line = redact_text(line)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            print(f"[INFO] tsegossip: {line}", file=self.stderr, flush=True)
        except (OSError, ValueError):
            pass
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {line}\n")
        except OSError:
            pass
        if self.tty:
            try:
                with open("/dev/tty", "w", encoding="utf-8") as tty:
                    tty.write(f"tsegossip: {line}\n")
            except OSError:
                self.tty = False  # no terminal: stop trying
