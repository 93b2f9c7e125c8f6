"""Errors that reach the user as messages, never as tracebacks.

Every error a user can fix derives from `UserError`; the CLI prints any of them with `render_lines`
and exits 1. Anything else that escapes is our bug ("internal error", exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, and what (with the value and what is allowed)."""

    path: str
    message: str

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return one_line(text)


class UserError(Exception):
    """A problem the user can fix; printed one line per problem, exit 1."""

    #: False when the message already names its source on every line (a SpecError does).
    prefixed = True

    def lines(self) -> list[str]:
        return str(self).splitlines() or [self.__class__.__name__]


def render_lines(err: UserError, source: str = "") -> list[str]:
    """The lines the CLI prints for `err`: `error: <source>: <line>`, unless the error names its source.

    Whoever prints them passes every line through the one redaction rule (`keys.redact_line`): the
    printing layer redacts, so this vocabulary module needs no key code.
    """
    if not err.prefixed:
        return err.lines()
    text = str(err)
    prefix = f"{source}: " if source and not text.startswith(source) else ""
    return [f"error: {prefix}{line}" for line in err.lines()]


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped: one problem, one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class SpecError(UserError):
    """The rollout spec is invalid; carries every problem found."""

    prefixed = False

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{one_line(self.source)}: " if self.source else ""
        return "\n".join(f"{where}{p}" for p in self.problems)

    def lines(self) -> list[str]:
        return self.render().splitlines()


class PlanError(UserError):
    """No safe plan exists for the spec as given; the message says why and what to do."""
