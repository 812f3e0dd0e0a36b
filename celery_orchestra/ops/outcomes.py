"""Each run's outcome, read from the app's Celery result backend by task id, many at a time.

The run ledger knows that a run was *sent* and its task id; only Celery's result backend knows
what became of it. :func:`outcomes` looks many task ids up in as few round trips as the backend
allows, and is the one lookup behind ``history``, ``status`` and ``get_job``:

* key-value backends with a batch read (Redis, Valkey, memcached...): ``mget`` of up to
  :data:`BATCH` keys per call;
* Celery's database backend: one ``SELECT ... WHERE task_id IN (...)`` per :data:`BATCH` ids;
* any other backend (no batch API): ``get_task_meta`` per id, for the first :data:`ONE_BY_ONE_LIMIT`
  ids only, so that a status of 10,000 jobs does not make 10,000 round trips.

Without a result backend nothing can be looked up and every run's outcome is ``sent``. A backend
that cannot be read (down, refused, misconfigured) gives outcomes in state ``unknown`` saying why,
so that the tables are still shown. Celery's backends store when a task finished (``date_done``)
but not when it started: the time known here is the finish; how long a run took is measured by the
caller from the run's send, which the ledger holds.

Results are decoded without re-creating exception objects: the one-line summary of a failure is
built from the stored exception type and message (or the traceback's last line), shown with
:func:`~celery_orchestra.ops.text.visible` and cut with :func:`~celery_orchestra.errors.shortened`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from celery import states
from celery.backends.base import BaseKeyValueStoreBackend, DisabledBackend

from ..errors import shortened
from .text import visible

__all__ = [
    "BATCH",
    "CELERY_STATES",
    "ONE_BY_ONE_LIMIT",
    "STATE_SENT",
    "STATE_UNKNOWN",
    "RunOutcome",
    "has_result_backend",
    "outcomes",
]

#: The Celery states a run can be shown in, as the result backend names them.
CELERY_STATES: Final = (
    states.PENDING,
    states.RECEIVED,
    states.STARTED,
    states.SUCCESS,
    states.FAILURE,
    states.RETRY,
    states.REVOKED,
)
#: A run's outcome when the app has no result backend: all that is known is that it was sent.
STATE_SENT: Final = "sent"
#: A run's outcome when the result backend could not be read (``RunOutcome.unavailable`` says why).
STATE_UNKNOWN: Final = "unknown"
#: Task ids per ``mget`` call or ``SELECT``.
BATCH: Final = 1000
#: A backend without a batch read is asked about this many task ids at most, one by one.
ONE_BY_ONE_LIMIT: Final = 50
#: The one-line summary of an exception is cut to this many characters.
ERROR_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What became of one sent task, as far as the result backend knows.

    ``state`` is Celery's (``PENDING`` also means "no result stored": not started yet, results
    ignored, or expired), :data:`STATE_SENT` without a result backend, or :data:`STATE_UNKNOWN`
    when the backend could not be read, ``unavailable`` then saying why. ``finished_at`` is when
    the task finished (success, failure or revoke), aware; ``error`` the exception's one-line
    summary for ``FAILURE``, ``RETRY`` and ``REVOKED``.
    """

    task_id: str
    state: str
    finished_at: datetime | None = None
    error: str | None = None
    unavailable: str | None = None

    def in_zone(self, zone: tzinfo) -> RunOutcome:
        """The same outcome with ``finished_at`` shown in ``zone``."""
        if self.finished_at is None:
            return self
        return RunOutcome(self.task_id, self.state, self.finished_at.astimezone(zone), self.error, self.unavailable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "error": self.error,
            "unavailable": self.unavailable,
        }


def has_result_backend(app: Any) -> bool:
    """Whether ``app`` stores task results somewhere that can be read (its ``result_backend``)."""
    configured = app.conf.get("result_backend")
    if not configured or str(configured).strip().lower() in ("disabled", "disabled://"):
        return False
    return not isinstance(app.backend, DisabledBackend)


def outcomes(app: Any, task_ids: Iterable[str]) -> dict[str, RunOutcome]:
    """The outcome of each task id, read from ``app``'s result backend in batches.

    Never raises for a backend that cannot be read: every outcome is then :data:`STATE_UNKNOWN`
    with the reason in ``unavailable`` (one line, the backend's URL without its password).
    """
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return {}
    try:
        if not has_result_backend(app):
            return {task_id: RunOutcome(task_id, STATE_SENT) for task_id in ids}
        found = _read(app, app.backend, ids)
    except Exception as error:  # a backend down, refused, misconfigured: say so, never fail the listing
        reason = _unavailable(app, error)
        return {task_id: RunOutcome(task_id, STATE_UNKNOWN, unavailable=reason) for task_id in ids}
    return found


def _read(app: Any, backend: Any, ids: list[str]) -> dict[str, RunOutcome]:
    from celery.backends.database import DatabaseBackend
    from celery.backends.rpc import RPCBackend

    if isinstance(backend, RPCBackend):
        raise _Unreadable("the rpc result backend sends each result to the caller only; it cannot be looked up")
    if isinstance(backend, DatabaseBackend):
        return _from_database(app, backend, ids)
    if isinstance(backend, BaseKeyValueStoreBackend) and type(backend).mget is not BaseKeyValueStoreBackend.mget:
        return _from_key_value(app, backend, ids)
    return _one_by_one(app, backend, ids)


class _Unreadable(Exception):
    """A backend that is up but whose results cannot be looked up by task id."""


def _from_key_value(app: Any, backend: Any, ids: list[str]) -> dict[str, RunOutcome]:
    """``mget`` of up to :data:`BATCH` keys per call (a dict answer, as memcached gives, or a list)."""
    found: dict[str, RunOutcome] = {}
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        keys = [backend.get_key_for_task(task_id) for task_id in chunk]
        values = backend.mget(keys)
        if isinstance(values, Mapping):
            values = [values.get(key) for key in keys]
        for task_id, payload in zip(chunk, values, strict=True):
            found[task_id] = _from_payload(app, backend, task_id, payload)
    return found


def _from_payload(app: Any, backend: Any, task_id: str, payload: Any) -> RunOutcome:
    if payload is None:
        return RunOutcome(task_id, states.PENDING)
    try:
        meta = backend.decode(payload)
    except Exception as error:  # one unreadable result costs that run only
        return RunOutcome(task_id, STATE_UNKNOWN, unavailable=_one_line(f"unreadable result: {error}"))
    if not isinstance(meta, Mapping):
        return RunOutcome(task_id, STATE_UNKNOWN, unavailable="unreadable result: not a mapping")
    return _from_meta(app, task_id, meta)


def _from_meta(app: Any, task_id: str, meta: Mapping[str, Any]) -> RunOutcome:
    state = str(meta.get("status") or states.PENDING)
    error = _error_summary(meta.get("result"), meta.get("traceback")) if state in states.EXCEPTION_STATES else None
    return RunOutcome(task_id, state, _aware(app, meta.get("date_done")), error)


def _from_database(app: Any, backend: Any, ids: list[str]) -> dict[str, RunOutcome]:
    """One ``SELECT`` per :data:`BATCH` ids on Celery's ``celery_taskmeta`` table; the stored
    result is decoded only for the states that hold an exception."""
    from celery.backends.database import session_cleanup
    from sqlalchemy import select

    table = backend.task_cls.__table__
    columns = (table.c.task_id, table.c.status, table.c.result, table.c.date_done, table.c.traceback)
    found = {task_id: RunOutcome(task_id, states.PENDING) for task_id in ids}
    session = backend.ResultSession()
    with session_cleanup(session):
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            for row in session.execute(select(*columns).where(table.c.task_id.in_(chunk))):
                result = None
                if row.status in states.EXCEPTION_STATES and row.result is not None:
                    # An undecodable exception (a legacy pickle, never unpickled here): the
                    # traceback's last line says it instead.
                    with contextlib.suppress(Exception):
                        result = backend.decode(bytes(row.result))
                meta = {"status": row.status, "result": result, "date_done": row.date_done, "traceback": row.traceback}
                found[row.task_id] = _from_meta(app, row.task_id, meta)
    return found


def _one_by_one(app: Any, backend: Any, ids: list[str]) -> dict[str, RunOutcome]:
    """For a backend without a batch read: the first :data:`ONE_BY_ONE_LIMIT` ids, one call each."""
    name = type(backend).__name__
    skipped = (
        f"not looked up: the {name} result backend has no batch read, "
        f"so only the first {ONE_BY_ONE_LIMIT} runs are looked up"
    )
    found = {task_id: RunOutcome(task_id, STATE_UNKNOWN, unavailable=skipped) for task_id in ids}
    for task_id in ids[:ONE_BY_ONE_LIMIT]:
        meta = backend.get_task_meta(task_id, cache=False)
        found[task_id] = _from_meta(app, task_id, meta)
    return found


def _error_summary(result: Any, traceback: Any) -> str | None:
    """``ValueError: bad input`` from a stored exception (dict or object), else the traceback's last line."""
    text: str | None = None
    if isinstance(result, Mapping) and result.get("exc_type"):
        message = result.get("exc_message")
        if isinstance(message, list | tuple):
            message = message[0] if len(message) == 1 else ", ".join(map(str, message))
        text = f"{result['exc_type']}: {message}" if message not in (None, "") else str(result["exc_type"])
    elif isinstance(result, BaseException):
        text = f"{type(result).__name__}: {result}" if str(result) else type(result).__name__
    elif isinstance(traceback, str) and traceback.strip():
        text = traceback.strip().splitlines()[-1]
    return None if text is None else _one_line(text)


def _one_line(text: str) -> str:
    return shortened(visible(text.strip()), ERROR_LIMIT)


def _aware(app: Any, value: Any) -> datetime | None:
    """``date_done`` as an aware datetime: ISO text from key-value backends, a naive datetime from
    the database backend (see :func:`_naive_zone`)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_naive_zone(app))
    aware: datetime = value.astimezone(UTC)
    return aware


def _unavailable(app: Any, error: BaseException) -> str:
    """One line: which backend (password masked) and why it could not be read."""
    from kombu.utils.url import maybe_sanitize_url

    where = maybe_sanitize_url(str(app.conf.get("result_backend") or "")) or "the result backend"
    reason = str(error) if isinstance(error, _Unreadable) else f"{type(error).__name__}: {error}"
    return _one_line(f"{where}: {reason}")


def _naive_zone(app: Any) -> tzinfo:
    """The zone of the database backend's naive ``date_done``: the zone of the finish time Celery
    itself stamps (``app.now()``, the app's zone, since 5.5; UTC before), asked of the backend."""
    backend: Any = getattr(app, "backend", None)
    zone = _NAIVE_ZONES.get(id(backend))
    if zone is None:
        try:
            stamped = backend._get_result_meta(None, "SUCCESS", None, None, format_date=False)["date_done"]
            zone = stamped.tzinfo if isinstance(stamped, datetime) and stamped.tzinfo is not None else UTC
        except Exception:  # a backend without Celery's usual internals: UTC, Celery's oldest habit
            zone = UTC
        _NAIVE_ZONES[id(backend)] = zone
    return zone


#: :func:`_naive_zone` per backend object (by id: a process holds one or two).
_NAIVE_ZONES: dict[int, tzinfo] = {}
