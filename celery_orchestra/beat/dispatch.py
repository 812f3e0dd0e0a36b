"""Sending due runs in batches: claim in the run ledger -> publish -> settle; and recovering from the ledger.

* Only the beat holding the store's lease sends (:mod:`.lease`), and each of its ledger writes is
  fenced by the lease's epoch: a beat that stalled past its lease writes nothing.
* Each run is first *claimed* in the ledger, whose key is (job, nominal fire instant), in one
  transaction for the whole batch; only claimed runs are sent, and the sent ones are then
  *confirmed* together with the jobs' progress.
* A message is published only while the lease has time left; a run not published is *released*
  and retried later: it does not count as a run.
* Claims an earlier epoch left unconfirmed (its beat was killed between claiming and confirming)
  are recovered by the new holder from the ledger (:meth:`Dispatcher.recover`): a repeating job's
  run is sent again with its task id (at least once), a one-off's is marked abandoned and never
  sent again (at most once).
* A progress, confirmation or release write that fails is kept and retried on the next tick.
* Task ids are :func:`run_task_id` ``(job, fire instant)``: a duplicate is recognisable downstream.
* "Run now" requests go through the same send path and lease, by :attr:`Dispatcher.manual`
  (:mod:`.manual_runs`).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..errors import BrokerUnavailableError, JobNotFound, LeaseLostError
from ..interfaces import SchedulerStore
from ..jobs.states import STATE_DONE
from ..settings import OrchestraSettings
from ..store import Progress, RunKey, RunRecord
from ..store.progress import HANDED_BACK
from ..timing.zones import log_instant
from .broker import BROKER_RETRY
from .catchup import plan_catch_up
from .entry import ScheduleEntry
from .lease import STANDBY_LOOK_EVERY, LeaseKeeper
from .manual_runs import ManualRuns
from .outages import broker_watch
from .recovery import RECOVER_EVERY, UNCONFIRMED_BATCH, ClaimerWatch, count_run, log_recovered, split_claims
from .table import DueJobs

__all__ = [
    "SEND_RETRY_DELAYS",
    "TASK_ID_NAMESPACE",
    "Dispatcher",
    "Planned",
    "Publication",
    "run_task_id",
]

# Beat's log is one logger, whichever part of beat writes to it: users configure it by this name.
logger = logging.getLogger("celery_orchestra.scheduler")

#: Namespace of the deterministic task ids (``uuid5(namespace, "job\\0fire-instant")``).
TASK_ID_NAMESPACE: Final = uuid.UUID("6f1b0c1e-5a0e-4a4f-9c53-0c4e6b1d7a10")

#: Retry delays (seconds) for a job whose send failed, growing with consecutive failures.
SEND_RETRY_DELAYS: Final = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


#: Publishes one run of an entry through a producer; False when the broker refused it.
SendRun = Callable[[ScheduleEntry, RunRecord, Any], bool]


def run_task_id(job_name: str, fire: datetime) -> str:
    """The task id of the run of ``job_name`` meant for the nominal instant ``fire``."""
    return str(uuid.uuid5(TASK_ID_NAMESPACE, f"{job_name}\0{fire.astimezone(UTC).isoformat()}"))


@dataclass(frozen=True, slots=True)
class Planned:
    """A due job and the nominal instants to send for it now (see :mod:`.catchup`)."""

    entry: ScheduleEntry
    fires: Sequence[datetime]
    #: The newest instant dealt with: the job's next fire is counted from it once the batch is sent.
    latest: datetime

    @classmethod
    def of(cls, entry: ScheduleEntry, now: datetime, *, online_since: datetime, settings: OrchestraSettings) -> Planned:
        """What to send now for a due entry (its catch-up notice, if any, logged)."""
        assert entry.next_fire_at is not None
        plan = plan_catch_up(
            entry.name,
            entry.schedule,
            entry.next_fire_at,
            now,
            max_runs=entry.max_runs,
            online_since=online_since,
            settings=settings,
        )
        if plan.notice is not None:
            logger.warning("%s", plan.notice)
        return cls(entry, plan.fires, plan.latest)


@dataclass(slots=True)
class Publication:
    """What one batch sent: runs per job, the published runs, and the runs whose send failed (filled as it goes)."""

    sent: Counter[str]
    published: list[RunRecord]
    failed: list[RunRecord]
    #: The broker could not be reached: the failed runs are held, not backed off job by job.
    broker_down: bool = False
    #: The run being handed to the broker right now: if the send is interrupted, it may have left.
    in_flight: RunRecord | None = None
    #: Jobs with a run the broker refused: only these back off (the others were not tried: the
    #: broker or the lease was not there, which says nothing about the job).
    refused_jobs: set[str] = field(default_factory=set)

    @property
    def failed_jobs(self) -> set[str]:
        return {run.job_name for run in self.failed}


@dataclass
class _Unsaved:
    """Releases, progress and confirmations whose store write failed, retried on the next tick."""

    progress: dict[str, Progress] = field(default_factory=dict)
    published: list[RunRecord] = field(default_factory=list)
    failed: list[RunRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.progress or self.published or self.failed)

    def add(
        self, progress: Mapping[str, Progress], published: Sequence[RunRecord], failed: Sequence[RunRecord] = ()
    ) -> None:
        self.failed.extend(failed)
        for name, update in progress.items():
            previous = self.progress.get(name)
            if previous is not None:
                last = max((t for t in (previous.last_run_at, update.last_run_at) if t is not None), default=None)
                update = Progress(last, previous.runs_added + update.runs_added, update.next_run_at)
            self.progress[name] = update
        self.published.extend(published)

    def forget(self, names: Iterable[str]) -> None:
        """Drop what is kept for jobs deleted from the store meanwhile (``celery orchestra forget``)."""
        gone = set(names)
        self.progress = {name: update for name, update in self.progress.items() if name not in gone}
        self.published = [run for run in self.published if run.job_name not in gone]
        self.failed = [run for run in self.failed if run.job_name not in gone]


class Dispatcher:
    """Claims, publishes and settles batches of runs for one scheduler (see the module docstring).

    ``send`` publishes one run (the scheduler's :meth:`~celery_orchestra.Scheduler.send_run`);
    ``producer`` returns the broker producer, raising when the broker cannot be reached, and
    ``broker_lost`` drops it (the next one reconnects); ``lease`` says whether this beat may
    publish, hears when a fenced write was refused, and lends its clock and store-outage watch.
    """

    def __init__(
        self,
        store: SchedulerStore,
        *,
        send: SendRun,
        producer: Callable[[], Any],
        lease: LeaseKeeper,
        broker_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._send = send
        self._producer = producer
        self._lease = lease
        self._broker_lost = broker_lost
        self._unsaved = _Unsaved()
        #: Consecutive failed sends per job (the retry back-off).
        self._send_failures: dict[str, int] = {}
        #: Runs taken over from an earlier epoch whose send failed: retried by :meth:`recover`.
        self._taken_over: list[RunRecord] = []
        self._claimers = ClaimerWatch()
        #: Claims a beat that lost the lease handed back as unsent (see ``JobStore.settle_late``).
        self._handed_back: set[RunKey] = set()
        self._next_recovery = float("-inf")
        self.broker = broker_watch(lease.monotonic)
        self.store_outage = lease.outage
        #: Sends the "run now" requests, with this dispatcher's send path, producer and lease.
        self.manual = ManualRuns(
            store, send=send, producer=self._producer_or_none, lease=lease, broker_lost=broker_lost
        )

    # ---- retries

    def retry_delay(self, name: str) -> timedelta:
        """How long job ``name`` waits after a failed send (it grows with each failure in a row)."""
        attempts = self._send_failures.get(name, 0)
        self._send_failures[name] = attempts + 1
        return timedelta(seconds=SEND_RETRY_DELAYS[min(attempts, len(SEND_RETRY_DELAYS) - 1)])

    def succeeded(self, name: str) -> None:
        """Job ``name`` was sent: its next failure starts the back-off from the beginning."""
        self._send_failures.pop(name, None)

    # ---- a batch

    def dispatch(self, due: DueJobs, *, online_since: datetime, settings: OrchestraSettings) -> None:
        """Send every due run in one batch, then move each job on (``due.requeue``) or ``due.hold`` it a while.

        A job whose runs all went out moves on to its next fire time. One with a run the broker
        refused is held with a growing back-off (what was sent is counted; the ledger skips it
        next time); while the broker is unreachable, or the lease has too little time left to
        publish, every due job is held :data:`BROKER_RETRY` seconds, and when the store is
        unreachable a second. A job whose runs or next fire time
        cannot be worked out (its schedule raised) is logged and held with the same back-off:
        the other jobs of the batch are sent and settled all the same.
        """
        now = due.now
        planned: list[Planned] = []
        for entry in due.entries:
            try:
                planned.append(Planned.of(entry, now, online_since=online_since, settings=settings))
            except Exception:
                logger.exception("celery-orchestra: cannot work out the runs of %s due now", entry.name)
                due.hold(entry, self.retry_delay(entry.name))
        publication = self.publish(planned, now)
        if publication is None:
            for plan in planned:
                due.hold(plan.entry, timedelta(seconds=BROKER_RETRY))
            return
        failed_jobs = publication.failed_jobs
        progress: dict[str, Progress] = {}
        for plan in planned:
            entry = plan.entry
            runs = publication.sent[entry.name]
            entry.total_run_count += runs
            if entry.name in failed_jobs:
                refused = entry.name in publication.refused_jobs and not publication.broker_down
                due.hold(entry, self.retry_delay(entry.name) if refused else timedelta(seconds=BROKER_RETRY))
                if runs:
                    progress[entry.name] = Progress(entry.last_fire_at, runs, entry.next_fire_at)
                continue
            entry.last_fire_at = entry.last_run_at = plan.latest
            try:
                due.requeue(entry)
            except Exception:
                logger.exception("celery-orchestra: cannot work out the next fire time of %s", entry.name)
                due.hold(entry, self.retry_delay(entry.name))
            else:
                self.succeeded(entry.name)
            progress[entry.name] = Progress(entry.last_fire_at, runs, entry.next_fire_at)
        self.settle(failed=publication.failed, progress=progress, published=publication.published)

    def publish(self, planned: Sequence[Planned], now: datetime) -> Publication | None:
        """Claim and send every planned run; ``None`` (nothing claimed) when the store refused or failed.

        Runs already in the ledger are skipped: confirmed ones were sent, and unconfirmed ones of
        an earlier epoch are :meth:`recover`'s.
        """
        repeating: list[RunRecord] = []
        one_offs: list[RunRecord] = []
        for plan in planned:
            batch = one_offs if plan.entry.max_runs is not None else repeating
            batch.extend(
                RunRecord(plan.entry.name, fire, now, run_task_id(plan.entry.name, fire), None) for fire in plan.fires
            )
        records = {run.key: run for run in repeating + one_offs}
        try:
            claimed = {run.key for run in self.store.claim_runs(repeating + one_offs)}
        except LeaseLostError as error:
            self._lease.lost(error)
            return None
        except Exception as error:
            self.store_outage.failed(error)
            return None
        self.store_outage.answered()

        publication = Publication(Counter(), [], [])
        try:
            producer = self._producer_or_none()
            for plan in planned:
                for fire in plan.fires:
                    run = records[RunKey(plan.entry.name, fire)]
                    if run.key in claimed:
                        producer = self._publish_one(plan.entry, run, producer, publication)
                    else:
                        logger.info(
                            "celery-orchestra: run of %s for %s was already sent (run ledger); not sending it again",
                            plan.entry.name,
                            log_instant(fire, plan.entry.schedule.tz),
                        )
        except BaseException:
            # Interrupted mid-batch (a second SIGTERM, KeyboardInterrupt): release what was not
            # sent and confirm what was, so a restart neither loses nor repeats these runs. The
            # run interrupted in the send may have left: its claim stays, unconfirmed, for the
            # ledger's recovery (a repeating job's is sent again with its id, a one-off's never).
            settled = {run.key for run in publication.published}
            if publication.in_flight is not None:
                settled.add(publication.in_flight.key)
            unsent = [run for key, run in records.items() if key in claimed and key not in settled]
            self.settle(failed=unsent, progress={}, published=publication.published)
            raise
        if producer is None and claimed:
            publication.broker_down = True
        return publication

    def _publish_one(self, entry: ScheduleEntry, run: RunRecord, producer: Any, publication: Publication) -> Any:
        """Publish ``run`` if the broker and the lease allow; the producer to use for the next run (``None``: stop).

        After the broker refused one run of a job, the job's other runs of the batch are not
        tried: they would be refused alike, each with its own line in the log.
        """
        sent = False
        refused = publication.failed and publication.failed[-1].job_name == entry.name
        if producer is not None and not refused and self._lease.may_publish():
            publication.in_flight = run
            try:
                sent = self._send(entry, run, producer)
            except BrokerUnavailableError as error:
                self._broker_down(error)
                producer = None
            else:
                self.broker.answered()
                if not sent:
                    publication.refused_jobs.add(entry.name)
        if sent:
            publication.sent[entry.name] += 1
            publication.published.append(run)
        else:
            publication.failed.append(run)
        publication.in_flight = None
        return producer

    def _producer_or_none(self) -> Any:
        try:
            return self._producer()
        except Exception as error:
            self._broker_down(error)
            return None

    def _broker_down(self, error: BaseException) -> None:
        self.broker.failed(error)
        self._broker_lost()

    # ---- settling

    def settle(
        self, *, failed: Sequence[RunRecord], progress: Mapping[str, Progress], published: Sequence[RunRecord]
    ) -> None:
        """Release the claims of unsent runs; confirm the sent ones with the jobs' progress.

        A write that fails is kept and retried by :meth:`settle_pending` on the next tick. Once
        this beat no longer holds the lease, what it still has in flight is settled late instead.
        """
        self._unsaved.add(progress, published, failed)
        if not self._lease.active:
            self._settle_late()
            return
        unsaved = self._unsaved
        try:
            if unsaved.failed:
                self.store.release_runs(unsaved.failed)
                unsaved.failed = []
            if unsaved:
                self._save_progress(unsaved)
        except LeaseLostError as error:
            self._lease.lost(error)
            self._settle_late()
            return
        except Exception as error:
            self.store_outage.failed(error)  # kept, and written at the next pass
            return
        self._unsaved = _Unsaved()

    def _save_progress(self, unsaved: _Unsaved) -> None:
        """Confirm and count; a job deleted from the store meanwhile is dropped, not retried for ever."""
        try:
            self.store.save_progress(unsaved.progress, published=unsaved.published)
        except JobNotFound as missing:
            logger.warning(
                "celery-orchestra: %s deleted from the store while runs of it were in flight; not counting them",
                ", ".join(missing.names),
            )
            unsaved.forget(missing.names)
            if unsaved:
                self.store.save_progress(unsaved.progress, published=unsaved.published)

    def _settle_late(self) -> None:
        """This beat lost the lease with runs in flight (it stalled, or lost the database): settle them late.

        What it sent is confirmed, so the new holder does not send it again; what it did not send
        is handed over, so the new holder sends it at once (see ``JobStore.settle_late``). A
        write that fails is retried at the next pass, standby or not.
        """
        unsaved = self._unsaved
        unsent = [*unsaved.failed, *self._taken_over]
        if not unsaved.published and not unsent:
            self._unsaved = _Unsaved()
            return
        try:
            late = self.store.settle_late(published=unsaved.published, unsent=unsent)
        except Exception as error:
            self.store_outage.failed(error)  # settled at a later pass
            return
        self._unsaved, self._taken_over = _Unsaved(), []
        logger.warning(
            "celery-orchestra: lost the lease with runs in flight: %d sent run(s) confirmed, %d unsent handed to the "
            "active beat",
            len(late.confirmed),
            late.handed_back,
        )

    def settle_pending(self) -> None:
        """Retry the writes a failed :meth:`settle` kept (late, if this beat lost the lease meanwhile)."""
        if self._unsaved or (self._taken_over and not self._lease.active):
            self.settle(failed=[], progress={}, published=[])

    # ---- recovery

    def recover(self, now: datetime, entries: Mapping[str, ScheduleEntry]) -> int:
        """Settle the claims earlier epochs left unconfirmed; return how many were found (0: none left).

        A repeating job's run is sent again with its task id (its beat may have died before
        publishing it: at least once); a one-off's is marked abandoned and counted, never sent
        again (at most once), and shows in history as unconfirmed. A run taken over whose send
        fails stays this beat's claim and is sent by the next call.
        """
        try:
            claims = self.store.unconfirmed_claims(limit=UNCONFIRMED_BATCH)
            waiting = self._claimers.alive_epochs(claims, self._lease.identity, now)
            claims = [claim for claim in claims if claim.epoch not in waiting]
            to_abandon, to_take = split_claims(claims, now)
            one_offs = self.store.abandon_claims(to_abandon)
            taken = self.store.take_over_claims(to_take)
            self._handed_back.update(c.run.key for c in claims if c.epoch == HANDED_BACK)
        except LeaseLostError as error:
            self._lease.lost(error)
            self._settle_late()
            return 0
        except Exception as error:
            self.store_outage.failed(error)
            return 0
        progress: dict[str, Progress] = {}
        log_recovered(one_offs, taken, entries)
        for run in one_offs:
            count_run(progress, run, entries)
        # By key: a run kept from an earlier pass may have been found and taken again since.
        to_send = list({run.key: run for run in [*self._taken_over, *taken]}.values())
        self._taken_over = []
        published: list[RunRecord] = []
        producer = self._producer_or_none() if to_send else None
        for run in to_send:
            entry = entries.get(run.job_name)
            if entry is None:
                continue  # the job is gone: its claim stays, unconfirmed, never sent
            # A handed-back one-off's job may already look done here (this beat saw its claim and
            # moved on): it was never sent, so it is sent now unless paused, disabled or removed.
            done_but_unsent = run.key in self._handed_back and entry.state == STATE_DONE
            if not entry.runnable and not done_but_unsent:
                self._taken_over.append(run)  # paused or disabled since: sent once it runs again
                continue
            if producer is not None and self._lease.may_publish():
                try:
                    if self._send(entry, run, producer):
                        published.append(run)
                        count_run(progress, run, entries)
                        self._handed_back.discard(run.key)
                        continue
                except BrokerUnavailableError as error:
                    self._broker_down(error)
                    producer = None
            self._taken_over.append(run)
        if progress or published:
            self.settle(failed=[], progress=progress, published=published)
        return len(claims)

    def recover_when_due(self, now: datetime, entries: Mapping[str, ScheduleEntry], monotonic: float) -> None:
        """:meth:`recover` every :data:`RECOVER_EVERY` seconds, and at each pass while work is left."""
        if monotonic < self._next_recovery and not self._taken_over:
            return
        found = self.recover(now, entries)
        soon = found >= UNCONFIRMED_BATCH or self._claimers.waiting
        self._next_recovery = monotonic + (STANDBY_LOOK_EVERY if soon else RECOVER_EVERY)

    def recover_soon(self) -> None:
        """Look for unconfirmed claims and "run now" requests at the next pass (this beat just acquired the lease)."""
        self._next_recovery = float("-inf")
        self.manual.look_soon()
