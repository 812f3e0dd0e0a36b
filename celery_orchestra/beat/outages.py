"""One line when a service goes, one when it is back: the broker's and the store's outages.

Beat tries again every second while the broker or the database cannot be reached; a line per
try (or per job per try) would bury the log. Each outage is told once, with what beat does
meanwhile, and its end once, with how long it lasted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .broker import BROKER_RETRY

__all__ = ["OutageWatch", "broker_watch", "store_watch"]

logger = logging.getLogger("celery_orchestra.scheduler")


class OutageWatch:
    """Whether ``service`` answered last time; its outages logged once each way.

    ``meanwhile`` says what beat does until the service is back; ``after`` what it does then.
    """

    def __init__(
        self, service: str, *, meanwhile: str, after: str, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.service = service
        self._meanwhile = meanwhile
        self._after = after
        self._monotonic = monotonic
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException) -> None:
        """The service could not be used: say so if it is news."""
        if self._down_since is not None:
            logger.debug("celery-orchestra: the %s is still unreachable: %s", self.service, error)
            return
        self._down_since = self._monotonic()
        reason = str(error)
        if not reason.startswith("cannot reach"):
            reason = f"cannot reach the {self.service}: {reason}"
        logger.error("celery-orchestra: %s; %s", reason, self._meanwhile)

    def answered(self) -> None:
        """The service answered: if it was down, say it is back."""
        if self._down_since is not None:
            outage = self._monotonic() - self._down_since
            self._down_since = None
            logger.warning(
                "celery-orchestra: the %s is reachable again after %.1f s; %s", self.service, outage, self._after
            )


def broker_watch(monotonic: Callable[[], float] = time.monotonic) -> OutageWatch:
    """The broker's outages (see :mod:`.broker`)."""
    return OutageWatch(
        "broker",
        meanwhile=f"holding what is due and trying again every {BROKER_RETRY:g} s until it is back",
        after="sending everything due",
        monotonic=monotonic,
    )


def store_watch(monotonic: Callable[[], float] = time.monotonic) -> OutageWatch:
    """The database's outages: nothing is sent that could not be claimed."""
    return OutageWatch(
        "store",
        meanwhile="sending nothing that cannot be claimed in the run ledger; trying again every second",
        after="catching up",
        monotonic=monotonic,
    )
