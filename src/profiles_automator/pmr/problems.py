"""Located problems: every message about a PMR points at a file, a line and a path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_REPORTED_ERRORS = 50

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True, slots=True)
class Location:
    """Where a YAML node starts: 1-based line and column, as editors count."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One error or warning, printable as ``FILE:LINE:COL: path: message``."""

    location: Location
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = f"{self.location}: {self.path}: " if self.path else f"{self.location}: "
        label = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{label}{self.message}"


class PMRInvalidError(Exception):
    """The PMR cannot be used; nothing may be applied from it.

    Carries every error found (up to a cap) so an admin fixes them in one pass.
    """

    def __init__(self, errors: list[Problem], warnings: list[Problem] | None = None):
        self.errors = sorted(errors, key=lambda p: (p.location, p.path))
        self.warnings = warnings or []
        super().__init__(self.summary())

    @property
    def first(self) -> Problem:
        """The error a one-line status shows."""
        return self.errors[0]

    def lines(self, limit: int = MAX_REPORTED_ERRORS) -> list[str]:
        """The errors as printable lines, capped, with a count of the rest."""
        shown = [str(p) for p in self.errors[:limit]]
        if len(self.errors) > limit:
            shown.append(f"and {len(self.errors) - limit} more")
        return shown

    def summary(self) -> str:
        """One line for a status message: the first error and how many follow."""
        if not self.errors:
            return "invalid PMR"
        rest = len(self.errors) - 1
        more = f" ({rest} more, run `pmr validate`)" if rest else ""
        return f"{self.errors[0]}{more}"
