"""The `tsegossip` command: the parser, `main`, and the exit codes every subcommand shares.

Exit codes: 0 ok, 1 invalid input or refused plan (any `UserError`, printed with `render_lines`),
2 usage (argparse), 3 our own bug (an exception no user can fix), 130 interrupted.

Each command group registers its subcommands from its own module: `spec_commands` (keygen,
validate, plan, render), `check`, `deploy` (deploy, demo), and the lab's `tsegossip.lab.cli`.
Commands import the heavy parts (spec/jsonschema, planner, observe, cdktf drivers) inside the
function that needs them: the lab's restart command is this console script, run once per node
in every batch, and must start without paying for them.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import UserError, render_lines
from ..lab import cli as lab_cli
from . import check, deploy, init_command, provider_commands, spec_commands

EXIT_INVALID = 1
EXIT_USAGE = 2  # argparse's own exit code for a bad command line
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tsegossip",
        description="Switch on Consul gossip encryption without breaking a running cluster: "
        "plan safe rolling-restart steps, synthesize one Terraform stack per step, deploy them one by one.",
    )
    p.add_argument("--version", action="version", version=f"tsegossip {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (spec_commands, check, deploy, init_command, provider_commands, lab_cli):
        module.register(sub)
    return p


def printed_lines(err: UserError, source: str = "") -> list[str]:
    """What the CLI prints for a user error: its lines, each through the one redaction rule."""
    from ..keys import redact_line  # loaded with the first error, not at every start

    return [redact_line(line) for line in render_lines(err, source)]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        for line in printed_lines(err, getattr(args, "spec", None) or ""):
            print(line, file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # never a traceback for users; TSEGOSSIP_DEBUG=1 shows it
        if os.environ.get("TSEGOSSIP_DEBUG"):
            raise
        from ..keys import redact_text  # an internal error may quote anything, a key included

        print(redact_text(f"internal error: {err.__class__.__name__}: {err} (set TSEGOSSIP_DEBUG=1 for details)"),
              file=sys.stderr)
        return EXIT_INTERNAL
