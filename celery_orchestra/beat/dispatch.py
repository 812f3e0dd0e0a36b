"""Sending due runs in batches: claim in the run ledger -> publish -> settle.

* Each run is first *claimed* in the ledger, whose key is (job, nominal fire instant), in one
  transaction for the whole batch; only claimed runs are sent, and the sent ones are then
  *confirmed* together with the jobs' progress. So two beats on one database never both send a
  fire instant.
* A send that fails is *released* again and retried later: it does not count as a run.
* A beat killed between claiming and confirming leaves unconfirmed claims: a repeating job's is
  taken over after :data:`~celery_orchestra.store.CLAIM_TIMEOUT` and sent (at least once), a
  one-off's never is (at most once: a one-off never runs twice).
* A graceful stop (SIGTERM) in the middle of a batch settles the batch before it propagates.
* A progress or confirmation write that fails is kept and retried on the next tick: an
  unconfirmed claim would otherwise be taken over, and its run sent again, by the next beat.
* Task ids are :func:`run_task_id` ``(job, fire instant)``: a duplicate is recognisable downstream.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..interfaces import SchedulerStore
from ..settings import OrchestraSettings
from ..store import CLAIM_TIMEOUT, Progress, RunKey, RunRecord
from .catchup import plan_catch_up
from .entry import ScheduleEntry

__all__ = [
    "SEND_RETRY_DELAYS",
    "TASK_ID_NAMESPACE",
    "Dispatcher",
    "Planned",
    "Publication",
    "publish_run",
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


def publish_run(app: Any, entry: ScheduleEntry, run: RunRecord, producer: Any) -> bool:
    """Publish one run of ``entry`` with its task id through ``producer``; False (logged) if the broker refused.

    Like stock beat: ``apply_async`` of the registered task (so its routing and options apply),
    else ``send_task`` by name; the ``celery_beat_task`` header marks it as sent by beat.
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
    except Exception as error:
        logger.error(
            "celery-orchestra: sending %s (%s) for %s failed: %s; it will be retried",
            entry.name,
            entry.task,
            run.fire_time.isoformat(),
            error,
        )
        return False
    logger.info(
        "celery-orchestra: sent %s (%s) for %s, task id %s",
        entry.name,
        entry.task,
        run.fire_time.isoformat(),
        run.task_id,
    )
    return True


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


@dataclass(frozen=True, slots=True)
class Publication:
    """What one batch sent: runs per job, the published runs, and the runs whose send failed."""

    sent: Counter[str]
    published: list[RunRecord]
    failed: list[RunRecord]

    @property
    def failed_jobs(self) -> set[str]:
        return {run.job_name for run in self.failed}


@dataclass
class _Unsaved:
    """Progress and confirmations whose store write failed, retried on the next tick."""

    progress: dict[str, Progress] = field(default_factory=dict)
    published: list[RunRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.progress or self.published)

    def add(self, progress: Mapping[str, Progress], published: Sequence[RunRecord]) -> None:
        for name, update in progress.items():
            previous = self.progress.get(name)
            if previous is not None:
                last = max((t for t in (previous.last_run_at, update.last_run_at) if t is not None), default=None)
                update = Progress(last, previous.runs_added + update.runs_added, update.next_run_at)
            self.progress[name] = update
        self.published.extend(published)


class Dispatcher:
    """Claims, publishes and settles batches of runs for one scheduler (see the module docstring).

    ``send`` publishes one run (the scheduler's :meth:`~celery_orchestra.Scheduler.send_run`);
    ``producer`` returns the broker producer, raising when the broker cannot be reached.
    """

    def __init__(self, store: SchedulerStore, *, send: SendRun, producer: Callable[[], Any]) -> None:
        self.store = store
        self._send = send
        self._producer = producer
        self._unsaved = _Unsaved()
        #: Consecutive failed sends per job (the retry back-off).
        self._send_failures: dict[str, int] = {}
        #: Runs claimed but never confirmed by another beat, and when to look at them again.
        self._orphans: dict[RunKey, datetime] = {}

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

    def publish(self, planned: Sequence[Planned], now: datetime) -> Publication | None:
        """Claim and send every planned run; ``None`` (nothing claimed) when the store is unreachable.

        Runs another beat claimed are skipped: confirmed ones were sent, unconfirmed ones of a
        repeating job are looked at again after the claim timeout (an orphan), and an unconfirmed
        one-off is counted as sent but never sent again.
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
            claimed = self._claim(repeating, take_over=True) | self._claim(one_offs, take_over=False)
            unclaimed = [run for key, run in records.items() if key not in claimed]
            unconfirmed = {run.key for run in self.store.unconfirmed_runs(unclaimed)} if unclaimed else set()
        except Exception as error:
            logger.error(
                "celery-orchestra: cannot record runs in the store (%s); %d job(s) will be retried", error, len(planned)
            )
            return None

        publication = Publication(Counter(), [], [])
        try:
            producer = self._producer_or_none(len(claimed))
            for plan in planned:
                for fire in plan.fires:
                    self._publish_one(
                        plan.entry,
                        records[RunKey(plan.entry.name, fire)],
                        claimed,
                        unconfirmed,
                        producer,
                        publication,
                        now,
                    )
        except BaseException:
            # Interrupted mid-batch (SIGTERM, KeyboardInterrupt): release what was not sent and
            # confirm what was, so a restart neither loses nor repeats these runs.
            sent = {run.key for run in publication.published}
            unsent = [run for key, run in records.items() if key in claimed and key not in sent]
            self.settle(failed=unsent, progress={}, published=publication.published)
            raise
        return publication

    def _publish_one(
        self,
        entry: ScheduleEntry,
        run: RunRecord,
        claimed: set[RunKey],
        unconfirmed: set[RunKey],
        producer: Any,
        publication: Publication,
        now: datetime,
    ) -> None:
        key = run.key
        if key in claimed:
            if producer is not None and self._send(entry, run, producer):
                publication.sent[entry.name] += 1
                publication.published.append(run)
            else:
                publication.failed.append(run)
        elif key in unconfirmed and entry.max_runs is None:
            # Being sent by another beat right now, or by one that died: look again later,
            # without holding back this job's newer runs.
            self._orphans.setdefault(key, now + CLAIM_TIMEOUT + timedelta(seconds=1))
        elif key in unconfirmed:
            # A one-off whose claimer stopped before confirming: it most likely went out, and a
            # one-off is never sent twice. Confirm and count it (once: the store counts only
            # confirmations that were still missing).
            logger.warning(
                "celery-orchestra: one-off %s for %s was claimed but never confirmed; "
                "counting it as sent, not sending it again",
                entry.name,
                run.fire_time.isoformat(),
            )
            publication.sent[entry.name] += 1
            publication.published.append(run)
        else:
            logger.info(
                "celery-orchestra: run of %s for %s was already sent (run ledger); not sending it again",
                entry.name,
                run.fire_time.isoformat(),
            )

    def _claim(self, runs: list[RunRecord], *, take_over: bool) -> set[RunKey]:
        if not runs:
            return set()
        abandoned_after = CLAIM_TIMEOUT if take_over else None
        return {run.key for run in self.store.claim_runs(runs, abandoned_after=abandoned_after)}

    def _producer_or_none(self, runs: int) -> Any:
        try:
            return self._producer()
        except Exception as error:
            logger.error("celery-orchestra: cannot reach the broker (%s); %d run(s) will be retried", error, runs)
            return None

    # ---- settling

    def settle(
        self, *, failed: Sequence[RunRecord], progress: Mapping[str, Progress], published: Sequence[RunRecord]
    ) -> None:
        """Release the claims of unsent runs; confirm the sent ones with the jobs' progress.

        A write that fails is kept and retried by :meth:`settle_pending` on the next tick.
        """
        self._unsaved.add(progress, published)
        try:
            if failed:
                self.store.release_runs(failed)
            if self._unsaved:
                self.store.save_progress(self._unsaved.progress, published=self._unsaved.published)
        except Exception as error:
            logger.error("celery-orchestra: cannot save run progress in the store (%s); retrying next tick", error)
            return
        self._unsaved = _Unsaved()

    def settle_pending(self) -> None:
        """Retry the writes a failed :meth:`settle` kept."""
        if self._unsaved:
            self.settle(failed=[], progress={}, published=[])

    # ---- orphans

    def retry_orphans(self, now: datetime, entries: Mapping[str, ScheduleEntry]) -> None:
        """Take over runs whose claim stayed unconfirmed (their beat died) and send them late."""
        ready = [key for key, when in self._orphans.items() if when <= now]
        if not ready:
            return
        runs = [RunRecord(name, fire, now, run_task_id(name, fire), None) for name, fire in ready]
        claimed = self._claim(runs, take_over=True)
        still_unconfirmed = {run.key for run in self.store.unconfirmed_runs(runs)}
        producer = self._producer_or_none(len(claimed)) if claimed else None
        published: list[RunRecord] = []
        failed: list[RunRecord] = []
        for run in runs:
            key = run.key
            entry = entries.get(run.job_name)
            if key in claimed:
                if entry is None or producer is None:
                    failed.append(run)  # job gone, or broker down: release, look again later
                else:
                    logger.warning(
                        "celery-orchestra: sending the run of %s for %s, claimed by a beat that stopped before "
                        "sending it",
                        run.job_name,
                        run.fire_time.isoformat(),
                    )
                    (published if self._send(entry, run, producer) else failed).append(run)
            if (key in claimed and run in published) or entry is None:
                del self._orphans[key]
            elif key in claimed or key in still_unconfirmed:
                self._orphans[key] = now + timedelta(seconds=SEND_RETRY_DELAYS[2])
            else:
                del self._orphans[key]  # its first claimer confirmed it after all
        progress: dict[str, Progress] = {}
        for run in published:
            entry = entries[run.job_name]
            entry.total_run_count += 1
            runs_added = progress[entry.name].runs_added + 1 if entry.name in progress else 1
            progress[entry.name] = Progress(None, runs_added, entry.next_fire_at)
        self.settle(failed=failed, progress=progress, published=published)

    @property
    def has_orphans(self) -> bool:
        return bool(self._orphans)
