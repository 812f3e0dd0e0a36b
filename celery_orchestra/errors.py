"""Errors a user can cause with their input.

Every error that comes from configuration says *what* is wrong and *where*, so that it can be
shown as-is to the person who wrote the schedule. Nothing here depends on Celery.
"""

from __future__ import annotations

from collections.abc import Sequence


class OrchestraError(Exception):
    """Base class of every error celery-orchestra raises on purpose."""


class TimingError(OrchestraError, ValueError):
    """A timing expression that cannot be understood.

    ``line`` and ``column`` are 1-based positions inside ``expression``; ``expected`` lists, in
    words, what would have fitted at that position (empty when the shape was right but a value was
    out of range). ``reason`` is the one-line explanation; ``str(error)`` adds the expression with a
    caret under the bad position.
    """

    def __init__(
        self,
        reason: str,
        *,
        expression: str,
        line: int = 1,
        column: int = 1,
        expected: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.expression = expression
        self.line = line
        self.column = column
        self.expected = list(expected)
        super().__init__(self._render())

    def _render(self) -> str:
        # Lines are counted by "\n" only, as the parser counts them.
        lines = self.expression.split("\n")
        shown = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        caret = " " * max(self.column - 1, 0) + "^"
        return (
            f"invalid timing expression {self.expression!r}: {self.reason} "
            f"(line {self.line}, column {self.column})\n    {shown}\n    {caret}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_timing_error,
            (self.reason, self.expression, self.line, self.column, tuple(self.expected)),
        )


def _rebuild_timing_error(
    reason: str, expression: str, line: int, column: int, expected: tuple[str, ...]
) -> TimingError:
    return TimingError(reason, expression=expression, line=line, column=column, expected=expected)


class TimeZoneError(OrchestraError, ValueError):
    """An unknown or unusable time zone name."""
