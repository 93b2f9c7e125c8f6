"""Errors that reach the user as messages, never as tracebacks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, and what (with the value and what is allowed)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(Exception):
    """The rollout spec is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return "\n".join(f"{where}{p}" for p in self.problems)


class PlanError(Exception):
    """No safe plan exists for the spec as given; the message says why and what to do."""
