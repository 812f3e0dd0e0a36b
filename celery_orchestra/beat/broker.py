"""Publishing one run, and telling a broker outage from a run the broker refused.

A run the broker refused (a bad option of that job, an unknown exchange) is that job's problem: it
is logged with the job's name and retried with a growing back-off. A broker that cannot be reached
is everyone's: :func:`publish_run` raises :class:`~celery_orchestra.errors.BrokerUnavailableError`,
the batch stops at once (every further send would wait out Celery's retry policy in vain), and
:func:`~.outages.broker_watch` says so in one line when it goes and one when it is back. Meanwhile due runs
are held and retried every :data:`BROKER_RETRY` seconds, and all that is due goes out together
when the broker answers again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from kombu.exceptions import OperationalError

from ..errors import BrokerUnavailableError
from ..store import RunRecord
from ..timing.zones import log_instant
from .entry import ScheduleEntry

__all__ = ["BROKER_RETRY", "forget_connection", "publish_run"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Seconds between two attempts to publish while the broker cannot be reached.
BROKER_RETRY: Final = 1.0


def publish_run(app: Any, entry: ScheduleEntry, run: RunRecord, producer: Any) -> bool:
    """Publish one run of ``entry`` with its task id through ``producer``; False (logged) if the broker refused it.

    Like stock beat: ``apply_async`` of the registered task (so its routing and options apply),
    else ``send_task`` by name; the ``celery_beat_task`` header marks it as sent by beat. Raises
    :class:`~celery_orchestra.errors.BrokerUnavailableError` when the broker cannot be reached.
    """
    options = dict(entry.options)
    headers = dict(options.pop("headers", None) or {})
    headers["celery_beat_task"] = True
    task = app.tasks.get(entry.task)
    try:
        if task is not None:
            task.apply_async(
                entry.args, entry.kwargs, producer=producer, task_id=run.task_id, headers=headers, **options
            )
        else:
            app.send_task(
                entry.task, entry.args, entry.kwargs, producer=producer, task_id=run.task_id, headers=headers, **options
            )
    except _connection_errors(producer) as error:
        raise BrokerUnavailableError(f"cannot reach the broker: {error}") from error
    except Exception as error:
        logger.error(
            "celery-orchestra: sending %s (%s) for %s failed: %s; it will be retried",
            entry.name,
            entry.task,
            log_instant(run.fire_time, entry.schedule.tz),
            error,
        )
        return False
    logger.info(
        "celery-orchestra: sent %s (%s) for %s, task id %s",
        entry.name,
        entry.task,
        log_instant(run.fire_time, entry.schedule.tz),
        run.task_id,
    )
    return True


def _connection_errors(producer: Any) -> tuple[type[BaseException], ...]:
    """What the transport raises when the broker is unreachable (kombu lists them per transport)."""
    connection = getattr(producer, "connection", None)
    errors = (
        *getattr(connection, "connection_errors", ()),
        *getattr(connection, "recoverable_connection_errors", ()),
    )
    return (OperationalError, ConnectionError, TimeoutError, *errors)


def forget_connection(scheduler: Any) -> None:
    """Drop a Celery scheduler's cached producer and broker connection: the next publish connects anew.

    After an outage the cached connection may be half-dead; Celery's own ``close`` does the same.
    """
    scheduler.__dict__.pop("producer", None)
    connection = scheduler.__dict__.pop("connection", None)
    if connection is not None:
        try:
            connection.release()
        except Exception as error:
            logger.debug("celery-orchestra: releasing the broken broker connection failed: %s", error)
