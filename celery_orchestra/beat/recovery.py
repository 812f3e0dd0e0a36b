"""Recovery from the ledger: the rules for claims an earlier epoch left unconfirmed.

The dispatcher (:meth:`~.dispatch.Dispatcher.recover`) looks for such claims when this beat
acquires the lease and every :data:`RECOVER_EVERY` seconds. A claim's beat is usually dead (killed
between claiming and confirming): a repeating job's run is sent again, a one-off's abandoned. But
a beat that was only *stopped* (SIGSTOP, a frozen VM or broker link) on this machine settles its
own claims when it runs again (``JobStore.settle_late``), so its claims are left to it for up to
:data:`CLAIMER_WAIT`: sending them now would send again what it had already sent. Beats on other
machines cannot be told apart from dead ones; theirs are taken over at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from ..store import BeatIdentity, Progress, RunRecord, UnconfirmedClaim
from ..store.progress import HANDED_BACK
from ..timing.zones import log_instant
from .entry import ScheduleEntry
from .lease import process_gone

__all__ = [
    "CLAIMER_WAIT",
    "RECOVER_EVERY",
    "UNCONFIRMED_BATCH",
    "ClaimerWatch",
    "count_run",
    "log_recovered",
    "split_claims",
]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Seconds between two looks at the ledger for claims that earlier epochs left unconfirmed.
RECOVER_EVERY: Final = 30.0
#: How long a claim is left to its claimer when that beat is stopped on this machine, not dead.
CLAIMER_WAIT: Final = timedelta(seconds=120)
#: Unconfirmed claims settled per pass (a beat killed in a 100,000-run burst leaves many).
UNCONFIRMED_BATCH: Final = 1000


class ClaimerWatch:
    """Which earlier epochs' claimers still run on this machine (each logged once)."""

    def __init__(self) -> None:
        self._logged: set[int | None] = set()
        #: Some claimer was alive at the last look: look again soon.
        self.waiting = False

    def alive_epochs(self, claims: Sequence[UnconfirmedClaim], me: BeatIdentity, now: datetime) -> set[int | None]:
        """The epochs of ``claims`` whose beat is stopped here, not dead, and not waited for too long."""
        alive: set[int | None] = set()
        for claim in claims:
            if (
                claim.epoch in alive
                or claim.claimer_pid is None
                or me.process_ns is None
                or claim.claimer_ns != me.process_ns
                or claim.claimer_pid == me.pid
                or now - claim.run.sent_at > CLAIMER_WAIT
                or process_gone(claim.claimer_pid)
            ):
                continue
            alive.add(claim.epoch)
            if claim.epoch not in self._logged:
                self._logged.add(claim.epoch)
                logger.warning(
                    "celery-orchestra: the beat that claimed runs at epoch %s (pid %d) is stopped, not dead: waiting "
                    "up to %g s for it to settle them before sending them again",
                    claim.epoch,
                    claim.claimer_pid,
                    CLAIMER_WAIT.total_seconds(),
                )
        self.waiting = bool(alive)
        return alive


def split_claims(claims: Sequence[UnconfirmedClaim], now: datetime) -> tuple[list[RunRecord], list[RunRecord]]:
    """The claims to abandon and those to take over and send (stamped ``now``).

    A one-off is abandoned (it may have gone out: never sent twice) unless its beat handed it
    back as unsent; every other run is sent again with its task id.
    """
    abandon = [claim.run for claim in claims if claim.one_off and claim.epoch != HANDED_BACK]
    take = [
        RunRecord(claim.run.job_name, claim.run.fire_time, now, claim.run.task_id, None)
        for claim in claims
        if not claim.one_off or claim.epoch == HANDED_BACK
    ]
    return abandon, take


def count_run(progress: dict[str, Progress], run: RunRecord, entries: Mapping[str, ScheduleEntry]) -> None:
    """Count one recovered run in its job's entry and in the progress to save."""
    entry = entries.get(run.job_name)
    if entry is not None:
        entry.total_run_count += 1
    previous = progress.get(run.job_name)
    if previous is None:
        last, runs = run.fire_time, 1
    else:
        last, runs = max(previous.last_run_at or run.fire_time, run.fire_time), previous.runs_added + 1
    progress[run.job_name] = Progress(last, runs, None if entry is None else entry.next_fire_at)


def log_recovered(
    one_offs: Sequence[RunRecord], taken: Sequence[RunRecord], entries: Mapping[str, ScheduleEntry]
) -> None:
    """One line per recovered claim: a one-off not sent again, a repeating job's run sent again.

    Fire times are in the job's zone (in UTC for a job no longer loaded), see :func:`log_instant`.
    """

    def when(run: RunRecord) -> str:
        entry = entries.get(run.job_name)
        return log_instant(run.fire_time, None if entry is None else entry.schedule.tz)

    for run in one_offs:
        logger.warning(
            "celery-orchestra: one-off %s for %s was claimed by a beat that stopped before confirming it was "
            "sent; not sending it again (at most once)",
            run.job_name,
            when(run),
        )
    for run in taken:
        logger.warning(
            "celery-orchestra: sending the run of %s for %s again: the beat that claimed it stopped before "
            "confirming it was sent (same task id %s)",
            run.job_name,
            when(run),
            run.task_id,
        )
