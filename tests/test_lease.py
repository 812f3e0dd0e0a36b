"""The store's fenced lease and the beats registry, on SQLite and PostgreSQL (see store/lease.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from celery_orchestra.beat.housekeeping import Housekeeper
from celery_orchestra.beat.lease import LeaseKeeper, Transition, process_gone, process_namespace
from celery_orchestra.beat.stopping import GracefulStop
from celery_orchestra.errors import StoreError
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import BeatIdentity, JobStore, LeaseLostError, Progress, RunRecord
from celery_orchestra.store.lease import check_fence
from celery_orchestra.store.tables import BEATS
from tests import ledger

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)
A = BeatIdentity("beat-a", "host-1", 101, "0.1.0")
B = BeatIdentity("beat-b", "host-2", 202, "0.1.0")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def second(store: JobStore) -> Iterator[JobStore]:
    """Another process's store on the same database."""
    other = JobStore(store.engine.url)
    try:
        yield other
    finally:
        other.close()


def add_jobs(store: JobStore, *repeating: str, once: tuple[str, ...] = ()) -> None:
    """Configure these jobs: repeating ones every 2 s, one-offs once, 2 s after T0."""
    store.reconcile(
        [
            *(
                JobDefinition(name, "tasks.job", {"type": "interval", "seconds": 2.0, "relative": False}, source="t")
                for name in repeating
            ),
            *(
                JobDefinition(name, "tasks.job", {"type": "timing", "expression": "once in 2 seconds"}, source="t")
                for name in once
            ),
        ],
        now=T0,
    )


def run(name: str, fire: float, task_id: str | None = None) -> RunRecord:
    return RunRecord(name, at(fire), at(fire), task_id or f"{name}-{fire}", None)


def test_the_first_beat_acquires_and_another_stays_standby_until_the_lease_expires(
    store: JobStore, second: JobStore
) -> None:
    grant = store.acquire_lease(A, TTL, now=at(0))
    assert grant is not None
    assert (grant.fence.holder, grant.fence.epoch, grant.expires_at, grant.taken_from) == ("beat-a", 1, at(10), None)
    assert second.acquire_lease(B, TTL, now=at(9.9)) is None
    assert store.renew_lease(TTL, now=at(9)) is not None  # now until 19 s
    assert second.acquire_lease(B, TTL, now=at(18.9)) is None

    taken = second.acquire_lease(B, TTL, now=at(19.1))
    assert taken is not None
    assert (taken.fence.epoch, taken.taken_from) == (2, "beat-a")
    assert store.renew_lease(TTL, now=at(19.2)) is None  # beat A lost it
    lease = store.read_lease(now=at(20))
    assert (lease.holder, lease.epoch, lease.live) == ("beat-b", 2, True)


def test_every_fenced_write_of_a_beat_that_lost_the_lease_is_refused_and_changes_nothing(
    store: JobStore, second: JobStore
) -> None:
    add_jobs(store, "job")
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    assert store.claim_runs([run("job", 2)]) == [run("job", 2)]
    assert second.acquire_lease(B, TTL, now=at(30)) is not None

    with pytest.raises(LeaseLostError, match="epoch 1; the lease is now at epoch 2, held by beat-b"):
        store.claim_runs([run("job", 4)])
    with pytest.raises(LeaseLostError):
        store.save_progress({"job": Progress(at(2), 1, at(4))}, published=[run("job", 2)])
    with pytest.raises(LeaseLostError):
        store.release_runs([run("job", 2)])
    with pytest.raises(LeaseLostError):
        store.set_next_run({"job": at(4)})
    with pytest.raises(LeaseLostError):
        store.set_expired(["job"])

    record = second.get_job("job")
    assert record is not None
    assert (record.total_run_count, record.last_run_at, record.expired) == (0, None, False)
    assert [(e.fire_time, e.confirmed) for e in second.history("job")] == [(at(2), False)]
    # Operator writes are not a beat's: they work whoever holds the lease.
    assert store.set_paused(["job"], True) == ["job"]


def test_the_new_holder_finds_the_claims_earlier_epochs_left_unconfirmed(store: JobStore, second: JobStore) -> None:
    add_jobs(store, "repeating", once=("once",))
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    store.claim_runs([run("repeating", 2), run("once", 2), run("repeating", 4)])
    store.save_progress({"repeating": Progress(at(4), 1, at(6))}, published=[run("repeating", 4)])
    # Beat A is killed; B takes over at epoch 2.
    assert second.acquire_lease(B, TTL, now=at(30)) is not None

    claims = second.unconfirmed_claims()
    assert [(c.run.job_name, c.run.fire_time, c.epoch, c.one_off) for c in claims] == [
        ("once", at(2), 1, True),
        ("repeating", at(2), 1, False),
    ]
    assert second.abandon_claims([claims[0].run]) == [claims[0].run]
    taken = second.take_over_claims([RunRecord("repeating", at(2), at(30), claims[1].run.task_id, None)])
    assert [r.fire_time for r in taken] == [at(2)]
    assert second.unconfirmed_claims() == []  # its own epoch's claims are its own
    # A claim cannot be taken twice, and the old holder cannot confirm it any more.
    assert second.take_over_claims([RunRecord("repeating", at(2), at(31), "x", None)]) == []
    with pytest.raises(LeaseLostError):
        store.save_progress({"repeating": Progress(at(2), 1, None)}, published=[run("repeating", 2)])

    second.save_progress({"repeating": Progress(at(2), 1, at(6))}, published=taken)
    states = {(e.job_name, e.fire_time): (e.confirmed, e.abandoned) for e in second.history("repeating")}
    states.update({(e.job_name, e.fire_time): (e.confirmed, e.abandoned) for e in second.history("once")})
    assert states == {
        ("repeating", at(2)): (True, False),
        ("repeating", at(4)): (True, False),
        ("once", at(2)): (False, True),
    }
    record = second.get_job("repeating")
    assert record is not None and record.total_run_count == 2


@contextlib.contextmanager
def replies_lost(store: JobStore, count: int = 1) -> Iterator[None]:
    """The next ``count`` transactions of ``store`` commit, then fail as if the connection dropped."""
    database = store._db
    attempt = database._attempt
    lost = [0]

    def commit_then_drop(*args: Any, **kwargs: Any) -> Any:
        result = attempt(*args, **kwargs)
        if lost[0] < count:
            lost[0] += 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"), connection_invalidated=True)
        return result

    database._attempt = commit_then_drop  # type: ignore[method-assign]
    try:
        yield
    finally:
        database._attempt = attempt  # type: ignore[method-assign]
    assert lost[0] == count, "fewer transactions ran than the test meant to break"


def test_a_claim_or_take_over_retried_after_its_reply_was_lost_still_owns_its_runs(
    store: JobStore, second: JobStore
) -> None:
    """A retry finds the rows its own committed attempt wrote: they are not left claimed and unsent."""
    add_jobs(store, "repeating", "other", once=("once",))
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    with replies_lost(store):
        owned = store.claim_runs([run("repeating", 2), run("once", 2), run("other", 2)])
    assert [r.job_name for r in owned] == ["once", "other", "repeating"]
    # Outside a retry, a run already claimed is not owned again, even by the beat that claimed it.
    assert store.claim_runs([run("repeating", 2), run("repeating", 4)]) == [run("repeating", 4)]

    assert second.acquire_lease(B, TTL, now=at(30)) is not None
    claims = {c.run.job_name: c.run for c in second.unconfirmed_claims() if c.run.fire_time == at(2)}
    with replies_lost(second, count=2):
        assert second.abandon_claims([claims["once"]]) == [claims["once"]]
        taken = second.take_over_claims([claims["repeating"], claims["other"]])
    assert [r.job_name for r in taken] == ["other", "repeating"]
    # A fresh call takes nothing twice.
    assert second.take_over_claims([claims["repeating"]]) == []
    assert second.abandon_claims([claims["once"]]) == []
    history = {(e.job_name, e.fire_time): e.abandoned for name in ("once", "repeating") for e in second.history(name)}
    assert history == {("once", at(2)): True, ("repeating", at(2)): False, ("repeating", at(4)): False}


def test_a_lease_row_deleted_by_hand_comes_back_past_every_epoch_in_use(store: JobStore, second: JobStore) -> None:
    add_jobs(store, "job")
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    assert store.acquire_lease(A, TTL, now=at(20)) is not None  # epoch 2
    store.claim_runs([run("job", 22)])
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM orchestra_lease")

    grant = second.acquire_lease(B, TTL, now=at(40))
    assert grant is not None and grant.fence.epoch == 3
    # So beat A's claim is an earlier epoch's, recovered by B, not mistaken for B's own.
    assert [(c.run.fire_time, c.epoch) for c in second.unconfirmed_claims()] == [(at(22), 2)]


def test_a_released_lease_is_free_at_once_and_the_beats_registry_says_who_runs(
    store: JobStore, second: JobStore
) -> None:
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    second.record_beat(B, "standby", now=at(1))
    beats, read_at = store.beats(now=at(2))
    assert read_at == at(2)
    assert [(b.id, b.host, b.pid, b.role, b.epoch, b.last_tick_at) for b in beats] == [
        ("beat-b", "host-2", 202, "standby", None, at(1)),
        ("beat-a", "host-1", 101, "active", 1, at(0)),
    ]
    assert store.release_lease() is True
    assert store.release_lease() is False
    grant = second.acquire_lease(B, TTL, now=at(3))
    assert grant is not None and grant.taken_from is None and grant.fence.epoch == 2


def test_acquisitions_racing_from_many_threads_give_one_holder_per_epoch(store: JobStore) -> None:
    stores = [JobStore(store.engine.url) for _ in range(6)]
    grants: list[Any] = []
    barrier = threading.Barrier(len(stores))

    def contend(index: int) -> None:
        barrier.wait()
        grants.append(stores[index].acquire_lease(BeatIdentity(f"b{index}", "h", index, "0"), TTL, now=at(0)))

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for each in stores:
        each.close()
    won = [grant for grant in grants if grant is not None]
    assert len(won) == 1
    assert won[0].fence.epoch == 1


# ------------------------------------------------------------------------------ graceful stop


def test_a_stop_signal_during_a_pass_takes_effect_when_the_pass_ends() -> None:
    delivered: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(signum))
    stop = GracefulStop()
    try:
        stop.install()
        finished = False
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run: the pass goes on
            assert delivered == []
            finished = True
        assert finished
        assert delivered == [signal.SIGTERM]

        os.kill(os.getpid(), signal.SIGTERM)  # between passes: at once
        time.sleep(0.05)
        assert delivered == [signal.SIGTERM, signal.SIGTERM]
    finally:
        stop.uninstall()
        signal.signal(signal.SIGTERM, previous)


def test_a_second_stop_signal_during_a_pass_does_not_wait() -> None:
    delivered: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(signum))
    stop = GracefulStop()
    try:
        stop.install()
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert delivered == [signal.SIGTERM]
        assert delivered == [signal.SIGTERM, signal.SIGTERM]
    finally:
        stop.uninstall()
        signal.signal(signal.SIGTERM, previous)


def test_a_stop_signal_waits_for_a_stuck_pass_only_until_the_deadline() -> None:
    delivered: list[float] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(time.monotonic()))
    stop = GracefulStop(deadline=0.3)
    try:
        stop.install()
        with stop.deferred():
            sent = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)
            while not delivered and time.monotonic() - sent < 5:  # a pass that never ends by itself
                time.sleep(0.01)
            assert delivered, "the stop signal never took effect during a stuck pass"
            assert 0.25 <= delivered[0] - sent < 2
        # A pass that ends in time cancels the deadline: nothing more arrives afterwards.
        delivered.clear()
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert len(delivered) == 1
        time.sleep(0.5)
        assert len(delivered) == 1
    finally:
        stop.uninstall()
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------ beat side


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


class FakeTime:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return at(self.seconds)


def keeper(store: JobStore, identity: BeatIdentity, clock: FakeTime) -> LeaseKeeper:
    return LeaseKeeper(store, identity, 10.0, monotonic=clock.monotonic, lease_now=clock.now)


def test_a_beat_takes_the_lease_of_a_dead_holder_on_its_own_machine_at_once(store: JobStore, second: JobStore) -> None:
    namespace = process_namespace()
    if namespace is None:
        pytest.skip("no /proc here: a dead holder cannot be recognised by its pid")
    clock = FakeTime()
    dead = BeatIdentity("killed", "host", dead_pid(), "0", namespace)
    assert store.acquire_lease(dead, TTL, now=at(0)) is not None  # then kill -9: the lease runs until 10 s

    restarted = keeper(second, BeatIdentity("restarted", "host", os.getpid(), "0", namespace), clock)
    clock.seconds = 1.0
    assert restarted.tend() is Transition.ACQUIRED
    assert second.read_lease(now=at(1)).epoch == 2


def test_a_live_holder_or_one_on_another_machine_keeps_its_lease_until_it_expires(
    store: JobStore, second: JobStore
) -> None:
    namespace = process_namespace()
    clock = FakeTime()
    elsewhere = BeatIdentity("elsewhere", "other-host", dead_pid(), "0", "another-boot:1")
    assert store.acquire_lease(elsewhere, TTL, now=at(0)) is not None
    standby = keeper(second, BeatIdentity("standby", "host", os.getpid(), "0", namespace), clock)
    for second_ in (1.0, 5.0, 9.5):
        clock.seconds = second_
        assert standby.tend() is None
    clock.seconds = 10.5
    assert standby.tend() is Transition.ACQUIRED
    assert process_gone(os.getpid()) is False


class SteppedTime(FakeTime):
    """A host whose wall clock can step (NTP) while its monotonic clock runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0.0

    def now(self) -> datetime:
        return at(self.seconds + self.step)


def test_after_the_clock_stepped_back_a_standby_takes_over_one_ttl_after_the_holder_stopped_renewing(
    store: JobStore, second: JobStore
) -> None:
    clock = SteppedTime()
    elsewhere = BeatIdentity("elsewhere", "other-host", dead_pid(), "0", "another-boot:1")
    assert store.acquire_lease(elsewhere, TTL, now=at(0)) is not None  # then it dies
    clock.step = -3600.0  # the host's clock goes back an hour: the stored expiry is an hour away
    standby = keeper(second, BeatIdentity("standby", "host", os.getpid(), "0", "this-boot:1"), clock)
    for moment in range(10):  # a standby looks every second
        clock.seconds = float(moment)
        assert standby.tend() is None
    clock.seconds = 10.0  # the row has not changed for a whole TTL
    assert standby.tend() is Transition.ACQUIRED
    assert second.read_lease(now=clock.now()).holder == "standby"


def test_after_the_clock_stepped_forward_a_renewing_holder_keeps_its_lease(store: JobStore, second: JobStore) -> None:
    clock = SteppedTime()
    holder = keeper(store, BeatIdentity("holder", "host", os.getpid(), "0", None), clock)
    standby = keeper(second, BeatIdentity("standby", "host", os.getpid(), "0", None), clock)
    assert holder.tend() is Transition.ACQUIRED
    clock.seconds = 1.0
    assert standby.tend() is None
    clock.step = 30.0  # forward: the stored expiry now looks 20 s past
    for tick in range(2, 40):
        clock.seconds = float(tick)
        holder.tend()  # renews every third of the TTL
        assert standby.tend() is None, f"took a live holder's lease at {tick} s"
    assert holder.active

    # When the holder really stops renewing, the standby takes over: half a TTL after the expiry.
    for tick in range(40, 60):
        clock.seconds = float(tick)
        if standby.tend() is Transition.ACQUIRED:
            break
    assert standby.active
    assert clock.seconds <= 39 + 10 + 5 + 1


def test_a_holder_renews_before_a_third_of_its_lease_is_gone_and_may_publish_while_a_quarter_is_left(
    store: JobStore,
) -> None:
    clock = FakeTime()
    lease = keeper(store, A, clock)
    assert lease.tend() is Transition.ACQUIRED
    assert lease.may_publish()
    clock.seconds = 3.4
    assert lease.tend() is None  # renewed at 3.4 s: valid until 13.4 s
    assert store.read_lease(now=at(3.4)).expires_at == at(13.4)
    clock.seconds = 11.0  # stalled: no renewal since 3.4 s, 2.4 s left (< a quarter)...
    assert lease.time_left() == pytest.approx(2.4)
    assert lease.may_publish()  # ...so it renews first, and may publish
    assert lease.time_left() == pytest.approx(10.0)


def test_the_housekeeper_prunes_settled_runs_past_retention_only_while_active(store: JobStore) -> None:
    add_jobs(store, "job")
    old = [run("job", float(seconds)) for seconds in range(0, 20, 2)]
    ledger.record_runs(store, old[:8])
    store.claim_runs(old[8:])  # two claims never confirmed
    active = [False]
    keeper_ = Housekeeper(store, 3600.0, active=lambda: active[0], now=lambda: at(2 * 86400))
    assert keeper_.prune() == 0  # a standby prunes nothing
    active[0] = True
    assert keeper_.prune() == 8
    assert [(e.fire_time, e.confirmed) for e in store.history("job")] == [(at(18), False), (at(16), False)]
    assert Housekeeper(store, None, active=lambda: True, now=lambda: at(10**6)).prune() == 0  # keep every run


def test_a_beat_that_lost_its_lease_mid_batch_confirms_what_it_sent_and_hands_back_the_rest(
    store: JobStore, second: JobStore
) -> None:
    add_jobs(store, "job")
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    sent, unsent, raced = run("job", 2), run("job", 4), run("job", 6)
    store.claim_runs([sent, unsent, raced])
    # A stalls mid-batch; B takes over and has already taken one claim over when A wakes up.
    assert second.acquire_lease(B, TTL, now=at(30)) is not None
    assert second.take_over_claims([RunRecord("job", at(6), at(30), raced.task_id, None)]) != []

    late = store.settle_late(published=[sent, raced], unsent=[unsent])
    assert (late.confirmed, late.handed_back) == ([sent], 1)
    record = second.get_job("job")
    assert record is not None and (record.total_run_count, record.last_run_at) == (1, at(2))
    claims = second.unconfirmed_claims()
    assert [(c.run.fire_time, c.epoch) for c in claims] == [(at(4), 0)]  # handed back: B sends it at once
    states = {e.fire_time: e.confirmed for e in second.history("job")}
    assert states == {at(2): True, at(4): False, at(6): False}  # at(6) is B's to send now


def test_claims_of_a_beat_that_is_stopped_on_this_machine_are_left_to_it_for_a_while(
    store: JobStore, second: JobStore
) -> None:
    namespace = process_namespace()
    if namespace is None:
        pytest.skip("no /proc here")
    add_jobs(store, "job")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        stopped = BeatIdentity("stopped", "host", sleeper.pid, "0", namespace)
        assert store.acquire_lease(stopped, TTL, now=at(0)) is not None
        store.claim_runs([run("job", 2)])
        claims_of_the_living = second_beat_claims(second, namespace, at(30))
        assert claims_of_the_living == []  # left to the stopped beat
        assert second_beat_claims(second, namespace, at(2 + 121)) == [at(2)]  # waited long enough
    finally:
        sleeper.kill()
        sleeper.wait()


def fake_entry(**fields: Any) -> Any:
    """What recovery reads of a loaded job's entry (its schedule only for the zone of log lines)."""
    schedule = type("Schedule", (), {"tz": UTC})()
    return type("Entry", (), {"total_run_count": 0, "next_fire_at": None, "schedule": schedule, **fields})()


def second_beat_claims(second: JobStore, namespace: str, now: datetime) -> list[datetime]:
    """What a fresh active beat on ``second`` would recover now (and send), by fire time."""
    from celery_orchestra.beat.dispatch import Dispatcher

    clock = FakeTime()
    clock.seconds = (now - T0).total_seconds() - TTL.total_seconds() / 2
    lease = keeper(second, BeatIdentity(f"b-{now.timestamp()}", "host", os.getpid(), "0", namespace), clock)
    assert lease.tend() is None  # an expired lease is taken once it stood still for half a TTL
    clock.seconds += TTL.total_seconds() / 2
    assert lease.tend() is Transition.ACQUIRED
    sent: list[datetime] = []
    entries = {"job": fake_entry(runnable=True)}
    dispatcher = Dispatcher(
        second,
        send=lambda entry, run, producer: sent.append(run.fire_time) or True,
        producer=lambda: object(),
        lease=lease,
    )
    dispatcher.recover(now, entries)  # type: ignore[arg-type]
    return sent


def test_a_renewal_skips_the_fsync_and_leaves_the_connection_durable_again(tmp_path: Any) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'lease.db'}")
    store.migrate()
    try:
        assert store.acquire_lease(A, TTL, now=at(0)) is not None
        seen: list[int] = []
        real_renew = store.renew_lease

        def renew_and_look(ttl: timedelta, *, now: datetime | None = None) -> Any:
            grant = real_renew(ttl, now=now)
            with store.engine.connect() as connection:
                seen.append(int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one()))
            return grant

        assert renew_and_look(TTL, now=at(3)) is not None
        assert seen == [2]  # FULL again for the ledger's writes, which must survive a power cut
        assert store.read_lease(now=at(4)).expires_at == at(13)
    finally:
        store.close()


def test_a_one_off_handed_back_unsent_is_sent_by_the_new_holder_not_abandoned(
    store: JobStore, second: JobStore
) -> None:
    from celery_orchestra.beat.dispatch import Dispatcher

    add_jobs(store, once=("once",))
    assert store.acquire_lease(A, TTL, now=at(0)) is not None
    one_off = run("once", 2)
    store.claim_runs([one_off])  # then A stalls before publishing it
    clock = FakeTime()
    clock.seconds = 25.0
    lease = keeper(second, BeatIdentity("b", "host", os.getpid(), "0", None), clock)
    assert lease.tend() is None  # expired, taken once it stood still for half a TTL
    clock.seconds = 30.0
    assert lease.tend() is Transition.ACQUIRED
    late = store.settle_late(published=[], unsent=[one_off])  # A wakes up: it never sent it
    assert late.handed_back == 1

    sent: list[datetime] = []
    # B saw A's claim and moved the job on: its entry looks done, yet the run never went out.
    done = fake_entry(runnable=False, state="Done")
    dispatcher = Dispatcher(
        second, send=lambda entry, run, producer: sent.append(run.fire_time) or True, producer=object, lease=lease
    )
    dispatcher.recover(at(30), {"once": done})  # type: ignore[dict-item]
    assert sent == [at(2)]
    assert [(e.confirmed, e.abandoned) for e in second.history("once")] == [(True, False)]
    record = second.get_job("once")
    assert record is not None and record.total_run_count == 1


@pytest.mark.postgres
def test_a_holder_stopped_inside_a_fenced_write_does_not_hold_up_the_takeover(fresh_postgres_url: str) -> None:
    """The standby waits for the lease to expire, not for the stalled holder to come back.

    The holder's fenced write share-locks the lease row; its session ends after half a TTL idle in
    the transaction, which rolls the write back, instead of blocking the acquisition until it resumes.
    """
    ttl = timedelta(seconds=1)
    holder = JobStore(fresh_postgres_url, transaction_limit=ttl.total_seconds() / 2, retries=0)
    standby = JobStore(fresh_postgres_url)
    holder.migrate()
    grant = holder.acquire_lease(A, ttl)
    assert grant is not None
    resume = threading.Event()
    outcome: list[BaseException | None] = []

    def stalled_write() -> None:
        def work(connection: Any) -> tuple[None, bool]:
            check_fence(connection, grant.fence)
            connection.execute(update(BEATS).where(BEATS.c.id == A.id).values(version="written-while-stalled"))
            resume.wait(10)
            return None, True

        try:
            holder._db.run("write while stalled", work, write=True)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    writer = threading.Thread(target=stalled_write)
    started = time.monotonic()
    writer.start()
    try:
        taken = None
        while taken is None and time.monotonic() - started < 5:
            with contextlib.suppress(StoreError):
                taken = standby.acquire_lease(B, ttl)
            if taken is None:
                time.sleep(0.05)
        waited = time.monotonic() - started
    finally:
        resume.set()
        writer.join(15)
    try:
        assert taken is not None, "the standby never acquired the lease while the holder was stalled"
        assert (taken.fence.epoch, taken.taken_from) == (2, "beat-a")
        assert waited < 3, f"took {waited:.1f} s for a 1 s lease"
        assert len(outcome) == 1 and isinstance(outcome[0], StoreError), outcome
        beat = standby.beat(A.id)
        assert beat is not None and beat.version == A.version  # the stalled write was rolled back
    finally:
        holder.close()
        standby.close()
