"""The configured jobs reduced to the column values they should have in the store.

Every definition is checked, and its JSON columns serialised, before reconcile's transaction starts
(a mistake must not leave half a write behind). Reconcile compares these values with the stored
ones per job (:class:`WantedJob`) for the few jobs that differ, and for all of them at once, column
by column (:class:`WantedColumns`), for the many that do not.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from ..errors import InvalidJobError, OrchestraError
from ..jobs.checks import JSON_ENCODER
from ..jobs.codec import data_key, max_runs_of_kind
from ..jobs.definitions import JobDefinition
from .bulk_rows import CONFIG_KEY_FIELDS, config_key
from .job_columns import JobColumns, taken
from .records import JOB_FIELDS, JobRecord
from .sql import JSON_COLUMNS
from .tables import NAME_LENGTH

__all__ = ["COMPARED", "CONFIGURED_FIELDS", "WantedColumns", "WantedJob", "new_row_state", "prepare_definitions"]

_POSITION: Final = {name: index for index, name in enumerate(JOB_FIELDS)}
#: What reconcile compares of a stored row (JSON columns as their text): the configured columns,
#: and ``configured_enabled``. :attr:`WantedJob.compared` holds the wanted values in this order.
COMPARED: Final = (
    "task",
    "schedule_data",
    "timezone",
    "kind",
    "args",
    "kwargs",
    "options",
    "tags",
    "source",
    "max_runs",
    "configured_enabled",
)
#: The fields of a configured job's record that its configuration gives; the others are the
#: store's (operator state, run bookkeeping, stamps).
CONFIGURED_FIELDS: Final = (
    "name",
    "task",
    "schedule_data",
    "kind",
    "timezone",
    "args",
    "kwargs",
    "options",
    "tags",
    "max_runs",
    "source",
)
_ENABLED, _MAX_RUNS, _NEXT_RUN_AT, _REMOVED = (
    _POSITION[name] for name in ("enabled", "max_runs", "next_run_at", "removed")
)
#: WantedJob.record builds a record in one tuple, faster than JobRecord.from_values at 100,000 jobs;
#: it relies on this order of JobRecord's fields, which a reordering must not silently break.
_RECORD_LAYOUT: Final = ("name", "task", "schedule_data", "kind", "timezone", "args", "kwargs", "options", "tags")
if JOB_FIELDS[:_ENABLED] != _RECORD_LAYOUT or JOB_FIELDS[_MAX_RUNS:_REMOVED] != (
    "max_runs",
    "next_run_at",
    "source",
):  # pragma: no cover - a guard for whoever edits JobRecord
    raise ImportError(f"wanted.WantedJob.record does not know JobRecord's field order {JOB_FIELDS}")
_KIND, _COMPARED_MAX_RUNS = COMPARED.index("kind"), COMPARED.index("max_runs")
_KEY_VALUES_OF: Final = operator.itemgetter(*(COMPARED.index(name) for name in CONFIG_KEY_FIELDS))


class WantedJob(NamedTuple):
    """A definition reduced to the column values it should have in the store.

    ``compared`` holds the values reconcile compares with a stored row, in :data:`COMPARED`
    order, the JSON columns as the JSON text reconcile writes (a tuple comparison decides that an
    unchanged job is unchanged: no JSON is decoded).
    """

    definition: JobDefinition
    kind: str
    max_runs: int | None
    compared: tuple[Any, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.definition.enabled

    def text(self, column: str) -> str:
        """The JSON text of one of :data:`~.sql.JSON_COLUMNS`."""
        return str(self.compared[COMPARED.index(column)])

    def value(self, column: str) -> Any:
        """The Python value the job's record holds for a configured column."""
        definition = self.definition
        if column == "kind":
            return self.kind
        if column == "max_runs":
            return self.max_runs
        return getattr(definition, column)

    def record(self, state: Sequence[Any]) -> JobRecord:
        """The job's record: its configured values, and the rest from ``state`` (a row's values in
        :data:`~.records.JOB_FIELDS` order)."""
        d = self.definition
        return JobRecord._make(
            (
                d.name,
                d.task,
                d.schedule_data,
                self.kind,
                d.timezone,
                tuple(d.args),
                d.kwargs,
                d.options,
                tuple(d.tags),
                *state[_ENABLED:_MAX_RUNS],
                self.max_runs,
                state[_NEXT_RUN_AT],
                d.source,
                *state[_REMOVED : len(JOB_FIELDS)],
                None,  # broken: its configured values are the definition's, and its state could be read
            )
        )


class WantedColumns:
    """The wanted jobs column by column, in configuration order: what reconcile compares with
    the stored columns, and the configured values of the records it hands on."""

    def __init__(
        self,
        definitions: Sequence[JobDefinition],
        compared: Sequence[tuple[Any, ...]],
        config_keys: Sequence[str | None],
    ) -> None:
        self.definitions = definitions
        #: Each job's :func:`~.bulk_rows.config_key`, to compare with the stored ones.
        self.config_keys = config_keys
        by_field = dict(zip(JobDefinition._fields, _transposed(definitions, len(JobDefinition._fields)), strict=True))
        #: The configuration's values by :data:`COMPARED` column (JSON columns as text).
        self.compared: dict[str, Sequence[Any]] = dict(zip(COMPARED, _transposed(compared, len(COMPARED)), strict=True))
        self._rows = compared
        self.names: Sequence[str] = by_field["name"]
        self.enabled: Sequence[bool] = by_field["enabled"]
        #: The values a record holds for the :data:`CONFIGURED_FIELDS`.
        self.configured: dict[str, Sequence[Any]] = {
            "name": self.names,
            "task": by_field["task"],
            "schedule_data": by_field["schedule_data"],
            "kind": self.compared["kind"],
            "timezone": by_field["timezone"],
            "args": list(map(tuple, by_field["args"])),
            "kwargs": by_field["kwargs"],
            "options": by_field["options"],
            "tags": list(map(tuple, by_field["tags"])),
            "max_runs": self.compared["max_runs"],
            "source": by_field["source"],
        }

    def __len__(self) -> int:
        return len(self.definitions)

    def job(self, index: int) -> WantedJob:
        """The wanted job at ``index``, for comparing it with its stored row value by value."""
        compared = self._rows[index]
        return WantedJob(self.definitions[index], compared[_KIND], compared[_COMPARED_MAX_RUNS], compared)

    def table(
        self, indices: Sequence[int], state: Mapping[str, Sequence[Any]], *, json_text: bool = False
    ) -> JobColumns:
        """The jobs at ``indices`` as columns: their configured values, and ``state`` (a column per
        other field, for the same jobs). ``json_text``: the JSON columns as the text to store."""
        columns: list[Sequence[Any]] = []
        for name in JOB_FIELDS:
            if name in state:
                columns.append(state[name])
            elif json_text and name in JSON_COLUMNS:
                columns.append(taken(self.compared[name], indices))
            else:
                columns.append(taken(self.configured[name], indices))
        return JobColumns(columns)


def _transposed(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    """Columns of ``rows`` (``width`` empty ones when there are no rows)."""
    if not rows:
        return [()] * width
    return list(zip(*rows, strict=True))


def prepare_definitions(definitions: Sequence[JobDefinition]) -> WantedColumns:
    """Check every definition and compute its column values, before any transaction starts.

    Jobs often share their configuration (often the very same objects: one schedule, no
    arguments): a schedule's kind and text are worked out once per distinct schedule, and the
    compared values once per distinct set of configured objects; only the name is every job's own.
    """
    seen: dict[str, JobDefinition] = {}
    by_identity: dict[int, _ScheduleTexts] = {}
    by_key: dict[object, _ScheduleTexts] = {}
    compared_of: dict[tuple[Any, ...], tuple[tuple[Any, ...], str | None]] = {}
    compared: list[tuple[Any, ...]] = []
    config_keys: list[str | None] = []
    for definition in definitions:
        name, task, data, timezone, args, kwargs, options, tags, enabled, source = definition
        earlier = seen.setdefault(name, definition)
        if earlier is not definition:
            raise InvalidJobError(
                f"duplicate job name {name!r}: defined in {earlier.source} and again in {definition.source}"
            )
        known = by_identity.get(id(data))
        if known is None:
            known = by_identity[id(data)] = _schedule_texts(definition, by_key)
        if not name:
            raise InvalidJobError(f"a job defined in {source} has an empty name")
        if len(name) > NAME_LENGTH:
            raise InvalidJobError(f"{_where(definition)}: the name is longer than {NAME_LENGTH} characters")
        # Empty containers stand for themselves by type; others by identity (the definitions keep
        # them alive meanwhile).
        key = (
            task,
            id(data),
            timezone,
            id(args) if args else type(args),
            id(kwargs) if kwargs else type(kwargs),
            id(options) if options else type(options),
            id(tags) if tags else type(tags),
            enabled,
            source,
        )
        known_values = compared_of.get(key)
        if known_values is None:
            values = _compared(definition, known[0], known[1])
            known_values = compared_of[key] = (values, config_key(_KEY_VALUES_OF(values)))
        compared.append(known_values[0])
        config_keys.append(known_values[1])
    return WantedColumns(definitions, compared, config_keys)


#: A schedule's kind and JSON text, and the data they are of (kept alive while memoised by identity).
_ScheduleTexts = tuple[str, str, object]


def _schedule_texts(definition: JobDefinition, by_key: dict[object, _ScheduleTexts]) -> _ScheduleTexts:
    """The kind and JSON text of a definition's schedule (and the data, kept alive for the identity memo)."""
    data = definition.schedule_data
    key = data_key(data)
    known = by_key.get(key) if key is not None else None
    if known is None:
        try:
            kind = definition.kind
        except OrchestraError as error:  # data built by hand, or by another version: name the job
            raise InvalidJobError(f"{_where(definition)}: unusable schedule {data!r}: {error}") from error
        known = (kind, _json_text(data, "the schedule", definition), data)
        if key is not None:
            by_key[key] = known
    return known[0], known[1], data


def _compared(definition: JobDefinition, kind: str, schedule_text: str) -> tuple[Any, ...]:
    """A definition's values in :data:`COMPARED` order, checked (its name is checked by the caller)."""
    if len(definition.task) > NAME_LENGTH:
        raise InvalidJobError(f"{_where(definition)}: the task name is longer than {NAME_LENGTH} characters")
    tags = definition.tags
    if tags and not all(isinstance(tag, str) for tag in tags):
        raise InvalidJobError(f"{_where(definition)}: tags must be strings, got {list(tags)!r}")
    return (
        definition.task,
        schedule_text,
        definition.timezone,
        kind,
        _json_text(definition.args, "args", definition),
        _json_text(definition.kwargs, "kwargs", definition),
        _json_text(definition.options, "options", definition),
        _json_text(tags, "tags", definition),
        definition.source,
        max_runs_of_kind(kind),
        definition.enabled,
    )


def _where(definition: JobDefinition) -> str:
    return f"job {definition.name!r} ({definition.source})"


#: The jobs layer's encoder (keys sorted, no NaN), the one its checks promise: built once, since
#: json.dumps with options builds an encoder per call, which start-up would pay 500,000 times.
_ENCODER: Final = JSON_ENCODER


_EMPTY_TEXTS: Final[dict[type, str]] = {tuple: "[]", list: "[]", dict: "{}"}


def _json_text(value: object, what: str, definition: JobDefinition) -> str:
    """``value`` as the JSON text stored for it."""
    if not value:
        empty = _EMPTY_TEXTS.get(type(value))  # most jobs' args, kwargs, options and tags
        if empty is not None:
            return empty
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(f"{_where(definition)}: {what} cannot be stored as JSON: {exc}") from exc


def new_row_state(
    enabled: Sequence[bool],
    now: datetime,
    revision: int,
    *,
    owner: str,
    next_run_at: Sequence[datetime | None] | None = None,
) -> dict[str, Sequence[Any]]:
    """What new jobs' rows hold besides their definitions, column by column: a fresh operator state,
    anchored at ``now`` (reconcile adds configured jobs with it, the runtime API its own)."""
    count = len(enabled)
    return {
        "enabled": enabled,
        "configured_enabled": enabled,
        "paused": [False] * count,
        "resumed_at": [None] * count,
        "anchor": [now] * count,
        "last_run_at": [None] * count,
        "total_run_count": [0] * count,
        "next_run_at": [None] * count if next_run_at is None else next_run_at,
        "removed": [False] * count,
        "expired": [False] * count,
        "revision": [revision] * count,
        "created_at": [now] * count,
        "updated_at": [now] * count,
        "owner": [owner] * count,
    }
