"""Start-up: waiting for a store that is not up yet, refusing to start in one line, the banner's store line.

In docker compose or Kubernetes, beat often starts before its database accepts connections.
Rather than exiting after the driver's first refusal (and being restarted in a loop by the
supervisor), beat keeps trying with a growing pause, saying why each time, for
``orchestra_store_wait`` seconds; then it gives up with one line. Mistakes that waiting cannot fix
(a wrong password, a missing database, a schema from a newer version) end start-up at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final, NoReturn

from ..errors import OrchestraError, StoreError
from ..interfaces import SchedulerStore
from ..settings import OrchestraSettings, read_settings
from ..store.engine import mask_url

__all__ = ["WAIT_STEPS", "refuse_to_start", "store_banner", "wait_for_store"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Pauses (seconds) between attempts; the last one repeats.
WAIT_STEPS: Final = (1.0, 2.0, 4.0, 8.0)


def wait_for_store(
    store: SchedulerStore,
    wait: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Check a SQLite store's file, then create or upgrade the store's schema, retrying an
    unreachable database for ``wait`` seconds.

    Raises the last :class:`StoreError` (its message saying how long beat waited) when the
    database is still unreachable after ``wait`` seconds, or at once when retrying cannot help.
    """
    deadline = monotonic() + wait
    attempt = 0
    while True:
        try:
            store.check_integrity()
            store.migrate()
            if attempt:
                logger.info("celery-orchestra: the store %s is reachable now", store.safe_url)
            return
        except StoreError as error:
            left = deadline - monotonic()
            if not error.transient:
                raise
            if left <= 0:
                raise StoreError(
                    f"{error} (waited {wait:g} s for the store: orchestra_store_wait)", error.url, transient=True
                ) from error
            pause = min(WAIT_STEPS[min(attempt, len(WAIT_STEPS) - 1)], left)
            logger.warning(
                "celery-orchestra: the store is not reachable yet (%s); trying again in %g s (for %.0f s more)",
                error,
                pause,
                left,
            )
            sleep(pause)
            attempt += 1


def refuse_to_start(error: OrchestraError) -> NoReturn:
    """Log why beat cannot start (each configuration problem with its place), then exit with status 1.

    A mistake in the configuration or the settings is the user's to fix: what and where, no traceback.
    """
    problems = getattr(error, "problems", None)
    if problems:
        for problem in problems:
            logger.critical("%s", problem.format())
        logger.critical("celery-orchestra: %d problem(s) in the schedule; beat will not start", len(problems))
    else:
        logger.critical("celery-orchestra: %s", error)
    raise SystemExit(1) from None


def store_banner(app: Any, settings: OrchestraSettings | None, schedule_filename: str | None) -> str:
    """The line beat's start-up banner shows for the store (password masked).

    With a bad setting the store is unknown; what is wrong is logged once, when start-up refuses
    (not here as well: the banner is printed just before).
    """
    try:
        url = (settings or read_settings(app.conf)).store_url(schedule_filename)
    except OrchestraError:
        return "    . store -> unknown (a setting is invalid; see below)"
    return f"    . store -> {mask_url(url)}"
