"""Every exception celery-orchestra raises on purpose, in one place.

Each message says *what* is wrong and *where* (the expression with a caret, the file, line and
column, the job's name, the database with its password masked), so that it can be shown as-is to
the person who wrote the schedule or typed the command. Catch :class:`OrchestraError` to catch
them all; each class also derives from the builtin a caller would naturally expect.

The hierarchy::

    OrchestraError
    ├── TimingError            (ValueError)   a timing expression that cannot be understood
    ├── TimeZoneError          (ValueError)   an unknown or unusable time zone
    ├── ScheduleTypeError      (TypeError)    a value that cannot be a schedule at all
    ├── ScheduleDataError      (ValueError)   a schedule that could never fire, or malformed stored data
    ├── ConfigError            (ValueError)   every problem found in beat_schedule and the YAML files
    ├── SettingsError          (ValueError)   a bad orchestra_* setting
    ├── InvalidJobError        (ValueError)   a job definition the store cannot keep
    │   └── JobSpecError                      a job given at runtime with values configuration would refuse
    ├── StoreError             (RuntimeError) the database could not be used
    │   └── LeaseLostError                    a beat's write refused: another beat holds the lease now
    ├── StoreNotFoundError     (FileNotFoundError) no SQLite store at that path (beat never ran)
    ├── BrokerUnavailableError (ConnectionError) beat could not reach the broker to publish a run
    ├── JobNotFound            (KeyError)     job names that are not in the store
    │   └── NoSuchJobError                    ... with "did you mean" suggestions (operator API)
    ├── ControlError           (ValueError)   operator input that cannot be acted on
    │   ├── NoMatchingJobsError (LookupError) tags that no job carries
    │   ├── NoSuchRunError     (LookupError)  a task id the run ledger does not hold
    │   └── JobConflictError                  a job whose owner or state forbids the change
    └── CommandError           (ValueError)   a remote-control command with arguments it cannot take

:class:`ConfigProblem` is not an exception: it is one located entry of :class:`ConfigError`.
User input quoted in any message goes through :func:`quoted` (and a source line through
:func:`excerpt_window`), so that a megabyte of input is echoed as a few dozen characters.
Nothing here depends on Celery, SQLAlchemy or any other module of the package.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ECHO_LIMIT",
    "EXCERPT_LIMIT",
    "BrokerUnavailableError",
    "CommandError",
    "ConfigError",
    "ConfigProblem",
    "ControlError",
    "InvalidJobError",
    "JobConflictError",
    "JobNotFound",
    "JobSpecError",
    "LeaseLostError",
    "NoMatchingJobsError",
    "NoSuchJobError",
    "NoSuchRunError",
    "OrchestraError",
    "ScheduleDataError",
    "ScheduleTypeError",
    "SettingsError",
    "StoreError",
    "StoreNotFoundError",
    "TimeZoneError",
    "TimingError",
    "excerpt_window",
    "quoted",
    "shortened",
]


class OrchestraError(Exception):
    """Base class of every error celery-orchestra raises on purpose."""


# ---------------------------------------------------------------------------- user input in messages

#: At most this many characters of one piece of user input are quoted in a message.
ECHO_LIMIT = 80
#: A source line shown under a message (with its caret) is cut to this many characters.
EXCERPT_LIMIT = 2 * ECHO_LIMIT
_ELLIPSIS = "\u2026"


def shortened(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last of them an ellipsis when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def quoted(value: object) -> str:
    """``repr(value)`` for a message, cut to :data:`ECHO_LIMIT` characters with an ellipsis.

    Never raises: a huge ``int`` (whose ``repr`` Python refuses past 4,300 digits) is described
    by its size instead.
    """
    if isinstance(value, str):
        value = value[:ECHO_LIMIT]  # the repr of a megabyte would be built only to be cut
    try:
        shown = repr(value)
    except ValueError:
        shown = f"<a number of {value.bit_length()} bits>" if isinstance(value, int) else f"<a {type(value).__name__}>"
    return shortened(shown)


def excerpt_window(line: str, column: int | None) -> tuple[str, int | None]:
    """``line`` cut to :data:`EXCERPT_LIMIT` characters around the 1-based ``column``, and the
    column in the cut text (ellipses mark what was left out on either side)."""
    if len(line) <= EXCERPT_LIMIT:
        return line, column
    position = min(max(column or 1, 1), len(line) + 1) - 1
    start = max(0, min(position - EXCERPT_LIMIT // 2, len(line) - EXCERPT_LIMIT))
    shown = line[start : start + EXCERPT_LIMIT]
    prefix = _ELLIPSIS if start > 0 else ""
    suffix = _ELLIPSIS if start + EXCERPT_LIMIT < len(line) else ""
    new_column = None if column is None else position - start + 1 + len(prefix)
    return prefix + shown + suffix, new_column


# ---------------------------------------------------------------------------- timings


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
        shown, column = excerpt_window(lines[self.line - 1] if 0 < self.line <= len(lines) else "", self.column)
        caret = " " * max((column or 1) - 1, 0) + "^"
        return (
            f"invalid timing expression {quoted(self.expression)}: {self.reason} "
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


class ScheduleTypeError(OrchestraError, TypeError):
    """A value of a type that cannot be a schedule (it names the type it got)."""


class ScheduleDataError(OrchestraError, ValueError):
    """A schedule of the right type with an unusable value, or stored data that is malformed."""


# ---------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it is.

    ``line`` and ``column`` are 1-based positions in ``source`` (a file path, or
    ``"beat_schedule"``), ``None`` when the source has no lines. ``excerpt`` is the offending text
    (the file's line, or a timing expression) to print under the message with a caret at
    ``excerpt_column`` (default: ``column``).
    """

    source: str | None
    line: int | None
    column: int | None
    job: str | None
    message: str
    excerpt: str | None = None
    excerpt_column: int | None = None

    @property
    def location(self) -> str:
        """``path:line:column`` with whatever parts are known."""
        if self.source is None:
            return ""
        if self.line is None:
            return self.source
        if self.column is None:
            return f"{self.source}:{self.line}"
        return f"{self.source}:{self.line}:{self.column}"

    def format(self) -> str:
        """The message as a compiler would print it, with the offending line and a caret."""
        parts = [self.location, f"job {quoted(self.job)}" if self.job is not None else "", self.message]
        text = ": ".join(part for part in parts if part)
        if self.excerpt is None:
            return text
        excerpt, caret_column = excerpt_window(
            self.excerpt, self.excerpt_column if self.excerpt_column is not None else self.column
        )
        text += f"\n    {excerpt}"
        if caret_column is not None and caret_column > 0:
            # Keep tabs so the caret lines up with what a terminal shows.
            lead = "".join("\t" if char == "\t" else " " for char in excerpt[: caret_column - 1])
            text += f"\n    {lead}^"
        return text

    def __str__(self) -> str:
        return self.format()


class ConfigError(OrchestraError, ValueError):
    """The configuration has problems; ``problems`` lists every one of them, in source order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        body = "\n".join(problem.format() for problem in self.problems)
        super().__init__(f"{head} in the schedule configuration:\n{body}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigError, (self.problems,))


class SettingsError(OrchestraError, ValueError):
    """A bad ``orchestra_*`` setting; the message names the setting and the value."""


# ---------------------------------------------------------------------------- the store


class InvalidJobError(OrchestraError, ValueError):
    """A job definition the store cannot keep: a duplicate name, data that is not JSON, and so on.

    The message names the job and where it was defined (its ``source``).
    """


class JobSpecError(InvalidJobError):
    """A job added or changed at runtime with values configuration would refuse (a bad timing,
    zone, arguments, options...); nothing was written.

    ``problems`` holds each one as :class:`ConfigProblem` (source ``runtime``, the job's name);
    the message lists them on one line, as configuration errors word them.
    """

    #: At most this many problems are spelt out in the message; the rest are counted.
    LISTED = 5

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(_one_line(problem) for problem in self.problems[: self.LISTED])
        more = len(self.problems) - self.LISTED
        super().__init__(shown + (f" (and {more} more problems)" if more > 0 else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        return (JobSpecError, (self.problems,))


def _one_line(problem: ConfigProblem) -> str:
    """A problem on one line: its excerpt (a timing expression) quoted, with the column."""
    parts = [problem.location, f"job {problem.job!r}" if problem.job is not None else "", problem.message]
    text = ": ".join(part for part in parts if part)
    if problem.excerpt is None:
        return text
    column = problem.excerpt_column if problem.excerpt_column is not None else problem.column
    where = f" at column {column}" if column else ""
    return f"{text} (in {problem.excerpt!r}{where})"


class StoreError(OrchestraError, RuntimeError):
    """The database could not be used: bad URL, unreachable server, missing schema, lock timeout.

    ``url`` is the database URL with its password masked (``None`` when the URL itself could not
    be read). ``transient`` says that trying again later may succeed (the server is unreachable or
    busy), as opposed to a mistake to fix. The driver's exception stays available as ``__cause__``
    for debugging.
    """

    def __init__(self, message: str, url: str | None = None, *, transient: bool = False) -> None:
        self.url = url
        self.transient = transient
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_store_error, (type(self), str(self), self.url, self.transient))


def _rebuild_store_error(cls: type[StoreError], message: str, url: str | None, transient: bool) -> StoreError:
    return cls(message, url, transient=transient)


class LeaseLostError(StoreError):
    """A beat's ledger or progress write was refused: it no longer holds the store's lease at its epoch.

    Another beat acquired the lease (this one stalled or lost the database for longer than the
    lease's time to live). Nothing was written; the beat becomes a standby.
    """


class StoreNotFoundError(OrchestraError, FileNotFoundError):
    """The SQLite store file does not exist: beat never ran with this schedule file or URL.

    Raised instead of letting SQLite create an empty database at a mistyped path, which would then
    report "no jobs" and hide the real mistake.
    """


class BrokerUnavailableError(OrchestraError, ConnectionError):
    """Beat could not reach the broker to publish a run (raised by ``Scheduler.send_run``).

    Not the run's fault: the run is released, held, and sent once the broker answers again.
    """


class JobNotFound(OrchestraError, KeyError):
    """One or more job names are not in the store; the operation changed nothing.

    A ``KeyError`` so that ``except KeyError`` keeps working for callers that treat the store like
    a mapping, but with a readable message (``KeyError`` would otherwise print the repr).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        super().__init__(self.names)

    def __str__(self) -> str:
        listed = ", ".join(repr(name) for name in self.names)
        noun = "job" if len(self.names) == 1 else "jobs"
        return f"unknown {noun}: {listed}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.names,))


# ---------------------------------------------------------------------------- operations


class NoSuchJobError(JobNotFound):
    """Job names that are not in the store; nothing was changed.

    A :class:`JobNotFound` (and so a ``KeyError``) whose message lists the missing names and, when
    a stored name is close, suggests it: a typo in a job name is the common case, and the operator
    should not have to list every job to spot it.
    """

    def __init__(self, names: Iterable[str], suggestions: dict[str, str] | None = None) -> None:
        super().__init__(names)
        self.suggestions = dict(suggestions or {})

    def __str__(self) -> str:
        noun = "job" if len(self.names) == 1 else "jobs"
        listed = ", ".join(
            f"{name} (did you mean {self.suggestions[name]}?)" if name in self.suggestions else name
            for name in self.names
        )
        return f"no such {noun}: {listed}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.names, self.suggestions))


class ControlError(OrchestraError, ValueError):
    """Operator input that cannot be acted on (no names, empty tags, an unknown state...)."""


class NoMatchingJobsError(ControlError, LookupError):
    """Tags that no (not removed) job carries; nothing was changed."""

    def __init__(self, tags: Sequence[str], any_tag: bool) -> None:
        self.tags = tuple(tags)
        self.any_tag = any_tag
        super().__init__(self._message())

    def _message(self) -> str:
        listed = ", ".join(self.tags)
        if len(self.tags) == 1:
            return f"no job has tag {listed}"
        if self.any_tag:
            return f"no job has tag(s) {listed}"
        return f"no job has all of the tags {listed}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.tags, self.any_tag))


class NoSuchRunError(ControlError, LookupError):
    """A task id that no recorded run was sent with (never sent by beat, or pruned)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no recorded run has task id {quoted(task_id)} (never sent by beat, or pruned)")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.task_id,))


class JobConflictError(ControlError):
    """The job exists, but its owner or state forbids the change: a configured job changed or
    removed at runtime, a removed job updated or run. The input is well formed; the job is not
    the kind the operation applies to (HTTP's 409 Conflict)."""


class CommandError(OrchestraError, ValueError):
    """A remote-control command with arguments it cannot take; the message says what it expects."""
