"""The operator API (celery_orchestra.api): pause/resume by name and by tag, listing, history, open_store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import Celery

from celery_orchestra.jobs.beat_schedule import definitions_from_beat_schedule
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.ops import api
from celery_orchestra.store import JobNotFound, JobStore, RunRecord
from tests.ledger import record_runs

BERLIN = ZoneInfo("Europe/Berlin")

#: Jobs most tests start from: tags chosen so that "any" and "all" select different jobs.
JOBS: dict[str, dict[str, Any]] = {
    "nightly-report": {"task": "proj.report", "schedule": "every day at 03:00", "tags": ["reports", "slow"]},
    "heartbeat": {"task": "proj.heartbeat", "schedule": "every 10 seconds", "tags": ["fast"]},
    "cleanup": {"task": "proj.cleanup", "schedule": "every hour at 05:00", "tags": ["slow", "io"]},
    "berlin-lunch": {
        "task": "proj.say",
        "schedule": "every day at 12:00",
        "timezone": "Europe/Berlin",
        "tags": ["reports"],
    },
}


def definitions(entries: Mapping[str, Mapping[str, Any]]) -> list[JobDefinition]:
    found, problems = definitions_from_beat_schedule(dict(entries))
    assert not problems, [problem.format() for problem in problems]
    return found


def seed(store: JobStore, entries: Mapping[str, Mapping[str, Any]] = JOBS, *, now: datetime | None = None) -> None:
    """Store jobs the way beat does at start-up (migrate, then reconcile the configuration)."""
    store.migrate()
    store.reconcile(
        definitions(entries),
        now=now or datetime.now(UTC),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    job_store = JobStore(f"sqlite:///{tmp_path / 'orchestra.db'}")
    seed(job_store)
    yield job_store
    job_store.close()


def paused_names(store: JobStore) -> set[str]:
    return {record.name for record in store.all_jobs() if record.paused}


# ---------------------------------------------------------------------------- pause / resume by name


def test_pause_job_reports_the_change_and_is_idempotent(store: JobStore) -> None:
    first = api.pause_job(store, "nightly-report")
    assert first == api.ChangeResult("pause", changed=("nightly-report",), unchanged=())
    assert first.describe() == "paused: nightly-report"
    assert paused_names(store) == {"nightly-report"}

    again = api.pause_job(store, "nightly-report")
    assert again.changed == ()
    assert again.unchanged == ("nightly-report",)
    assert again.describe() == "already paused: nightly-report"
    assert paused_names(store) == {"nightly-report"}


def test_resume_job_reports_the_change_and_is_idempotent(store: JobStore) -> None:
    api.pause_jobs(store, ["heartbeat", "cleanup"])
    result = api.resume_jobs(store, ["heartbeat", "cleanup", "nightly-report"])
    assert result.changed == ("heartbeat", "cleanup")
    assert result.unchanged == ("nightly-report",)
    assert result.describe() == "resumed: heartbeat, cleanup; not paused: nightly-report"
    assert paused_names(store) == set()
    assert api.resume_job(store, "heartbeat").describe() == "not paused: heartbeat"


def test_resume_stamps_the_resume_instant(store: JobStore) -> None:
    api.pause_job(store, "heartbeat")
    before = datetime.now(UTC)
    api.resume_job(store, "heartbeat")
    after = datetime.now(UTC)
    record = store.get_job("heartbeat")
    assert record is not None and record.resumed_at is not None
    assert before <= record.resumed_at <= after


def test_unknown_name_is_an_error_naming_it_and_changes_nothing(store: JobStore) -> None:
    with pytest.raises(api.NoSuchJobError) as caught:
        api.pause_jobs(store, ["heartbeat", "no-such-thing"])
    assert str(caught.value) == "no such job: no-such-thing"
    assert caught.value.names == ("no-such-thing",)
    assert isinstance(caught.value, JobNotFound) and isinstance(caught.value, KeyError)
    assert paused_names(store) == set()


def test_unknown_name_close_to_a_real_one_gets_a_suggestion(store: JobStore) -> None:
    with pytest.raises(api.NoSuchJobError) as caught:
        api.resume_jobs(store, ["nightly-reprot", "zzz"])
    assert str(caught.value) == "no such jobs: nightly-reprot (did you mean nightly-report?), zzz"


@pytest.mark.parametrize("names", [[], [""], ["  "], [3]])
def test_missing_or_blank_names_are_refused(store: JobStore, names: list[Any]) -> None:
    with pytest.raises(api.ControlError):
        api.pause_jobs(store, names)


def test_duplicate_names_are_acted_on_once(store: JobStore) -> None:
    result = api.pause_jobs(store, ["cleanup", "cleanup"])
    assert result.changed == ("cleanup",)
    assert result.unchanged == ()


# ---------------------------------------------------------------------------- by tags


def test_pause_with_any_tag_selects_jobs_with_at_least_one(store: JobStore) -> None:
    result = api.pause_jobs_with_tags(store, ["reports", "io"])
    assert result.changed == ("berlin-lunch", "cleanup", "nightly-report")
    assert result.selector == "jobs with any of the tags reports, io"
    assert paused_names(store) == {"berlin-lunch", "cleanup", "nightly-report"}


def test_pause_with_all_tags_selects_jobs_with_every_one(store: JobStore) -> None:
    result = api.pause_jobs_with_tags(store, "reports,slow", any_tag=False)
    assert result.changed == ("nightly-report",)
    assert result.describe() == "paused: nightly-report (jobs with all of the tags reports, slow)"
    assert paused_names(store) == {"nightly-report"}


def test_resume_with_tags_reports_unchanged_jobs(store: JobStore) -> None:
    api.pause_job(store, "cleanup")
    result = api.resume_jobs_with_tags(store, "slow")
    assert result.changed == ("cleanup",)
    assert result.unchanged == ("nightly-report",)
    assert result.describe() == "resumed: cleanup; not paused: nightly-report (jobs with tag slow)"


@pytest.mark.parametrize(
    ("tags", "any_tag", "message"),
    [
        ("gpu", True, "no job has tag gpu"),
        (["gpu", "tpu"], True, "no job has tag(s) gpu, tpu"),
        ("fast,io", False, "no job has all of the tags fast, io"),
    ],
)
def test_tags_matching_no_job_are_an_error(store: JobStore, tags: Any, any_tag: bool, message: str) -> None:
    with pytest.raises(api.NoMatchingJobsError) as caught:
        api.pause_jobs_with_tags(store, tags, any_tag=any_tag)
    assert str(caught.value) == message
    assert paused_names(store) == set()


def test_removed_jobs_are_not_selected_by_tags(store: JobStore) -> None:
    remaining = {name: entry for name, entry in JOBS.items() if name != "heartbeat"}
    seed(store, remaining)
    with pytest.raises(api.NoMatchingJobsError):
        api.pause_jobs_with_tags(store, "fast")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("a", ("a",)), ("a, b,,a", ("a", "b")), (["x,y", " z "], ("x", "y", "z"))],
)
def test_parse_tags(given: Any, expected: tuple[str, ...]) -> None:
    assert api.parse_tags(given) == expected


@pytest.mark.parametrize("given", ["", " , ", [], [1]])
def test_parse_tags_refuses_empty_and_non_strings(given: Any) -> None:
    with pytest.raises(api.ControlError):
        api.parse_tags(given)


# ---------------------------------------------------------------------------- listing


def test_list_jobs_shows_state_kind_zone_and_attempts(store: JobStore) -> None:
    api.pause_job(store, "cleanup")
    jobs = {job.name: job for job in api.list_jobs(store)}
    assert sorted(jobs) == ["berlin-lunch", "cleanup", "heartbeat", "nightly-report"]
    assert jobs["cleanup"].state == "Paused"
    assert jobs["heartbeat"].state == "Running"
    assert jobs["heartbeat"].kind == "cyclic"
    assert jobs["nightly-report"].kind == "daily"
    assert jobs["cleanup"].kind == "hourly"
    assert jobs["berlin-lunch"].timezone == "Europe/Berlin"
    assert jobs["heartbeat"].timezone == "UTC"
    assert jobs["heartbeat"].attempts == "0"
    assert jobs["nightly-report"].tags == ("reports", "slow")
    assert jobs["heartbeat"].schedule == "every 10 seconds"
    assert jobs["heartbeat"].task == "proj.heartbeat"


def test_due_at_is_aware_in_the_jobs_zone_and_empty_when_not_running(store: JobStore) -> None:
    now = datetime.now(UTC)
    api.pause_job(store, "nightly-report")
    jobs = {job.name: job for job in api.list_jobs(store, now=now)}
    lunch = jobs["berlin-lunch"].due_at
    assert lunch is not None and lunch.tzinfo is not None
    assert lunch.utcoffset() == lunch.astimezone(BERLIN).utcoffset()
    assert (lunch.hour, lunch.minute, lunch.second) == (12, 0, 0)
    assert now < lunch <= now + timedelta(days=1)
    assert jobs["nightly-report"].due_at is None
    assert jobs["nightly-report"].due_in(now) is None


def test_due_after_resume_is_the_first_fire_after_the_resume_not_the_stale_stored_one(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'resume.db'}")
    anchor = datetime.now(UTC) - timedelta(hours=5, minutes=30)
    seed(store, {"hourly": {"task": "proj.hourly", "schedule": "every 1 hour"}}, now=anchor)
    store.set_next_run({"hourly": anchor + timedelta(hours=1)})  # what beat stored before the pause
    api.pause_job(store, "hourly")
    api.resume_job(store, "hourly")
    [job] = api.list_jobs(store)
    assert job.due_at == anchor + timedelta(hours=6)
    store.close()


def test_stored_next_run_after_the_resume_is_trusted(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'trusted.db'}")
    seed(store, {"hourly": {"task": "proj.hourly", "schedule": "every 1 hour"}})
    api.pause_job(store, "hourly")
    api.resume_job(store, "hourly")
    planned = datetime.now(UTC) + timedelta(minutes=17)
    store.set_next_run({"hourly": planned})  # beat's own value, computed after the resume
    [job] = api.list_jobs(store)
    assert job.due_at == planned
    store.close()


def test_jobs_alike_are_each_due_as_if_listed_alone(tmp_path: Path) -> None:
    """list_jobs shares one schedule among jobs with the same schedule, zone and anchor (a bulk
    import); each job's due time still follows its own last run, resume and zone."""
    from celery.schedules import crontab

    store = JobStore(f"sqlite:///{tmp_path / 'alike.db'}")
    anchor = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    now = datetime(2026, 11, 21, 12, 30, 10, tzinfo=UTC)
    entries: dict[str, dict[str, Any]] = {
        f"hourly-{n}": {"task": "proj.t", "schedule": "every 1 hour"} for n in range(4)
    }
    for n, zone in enumerate(["UTC", "Asia/Tokyo"]):
        entries[f"hourly-berlin-{n}"] = {"task": "proj.t", "schedule": "every 1 hour", "timezone": "Europe/Berlin"}
        entries[f"daily-{n}"] = {"task": "proj.t", "schedule": "every day at 9:15", "timezone": zone}
        entries[f"cron-{n}"] = {"task": "proj.t", "schedule": crontab(minute="5")}
    seed(store, entries, now=anchor)
    ran = anchor + timedelta(hours=5)
    record_runs(
        store,
        [
            RunRecord(name, ran, ran, f"{name}-run", None)
            for name in ("hourly-1", "hourly-berlin-1", "cron-1", "daily-1")
        ],
    )
    store.set_paused(["hourly-2"], True, now=anchor + timedelta(hours=7, minutes=20))
    store.set_paused(["hourly-2"], False, now=anchor + timedelta(hours=9, minutes=20))
    try:
        listed = api.list_jobs(store, now=now)
        alone = [api.job_status(record, default_zone=UTC, now=now) for record in store.all_jobs()]
    finally:
        store.close()
    assert listed == alone
    due = {job.name: job.due_at for job in listed}
    assert due["hourly-0"] == due["hourly-3"] == datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    assert due["hourly-1"] == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # after its last run
    assert due["hourly-2"] == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # after its resume
    assert due["hourly-berlin-0"] == datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    assert due["hourly-berlin-1"] == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert str(due["hourly-berlin-1"].tzinfo) == "Europe/Berlin"
    assert due["daily-0"] == datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
    assert due["daily-1"] == datetime(2026, 11, 21, 9, 15, tzinfo=ZoneInfo("Asia/Tokyo"))
    # Celery's crontab (its first fire after the anchor differs between Celery 5.4 and 5.5+).
    for name, after in (("cron-0", anchor), ("cron-1", ran)):
        fire = due[name]
        assert fire is not None and fire.minute == 5 and after < fire <= after + timedelta(hours=1, minutes=5)
    assert due["cron-1"] != due["cron-0"]


def test_list_jobs_filters_by_tag_and_state(store: JobStore) -> None:
    api.pause_jobs(store, ["cleanup", "heartbeat"])
    assert [job.name for job in api.list_jobs(store, tags="slow")] == ["cleanup", "nightly-report"]
    assert [job.name for job in api.list_jobs(store, tags=["slow", "reports"], any_tag=False)] == ["nightly-report"]
    assert [job.name for job in api.list_jobs(store, states=["paused"])] == ["cleanup", "heartbeat"]
    assert [job.name for job in api.list_jobs(store, tags="slow", states=["PAUSED"])] == ["cleanup"]


def test_list_jobs_refuses_unknown_states(store: JobStore) -> None:
    with pytest.raises(api.ControlError) as caught:
        api.list_jobs(store, states=["runing"])
    assert "unknown state 'runing'" in str(caught.value)
    assert "Running, Paused, Disabled, Done, Expired, Removed, Broken" in str(caught.value)


def test_removed_jobs_are_listed_only_on_request(store: JobStore) -> None:
    seed(store, {name: entry for name, entry in JOBS.items() if name != "heartbeat"})
    assert "heartbeat" not in [job.name for job in api.list_jobs(store)]
    [removed] = api.list_jobs(store, states=["Removed"])
    assert (removed.name, removed.state) == ("heartbeat", "Removed")
    assert "heartbeat" in [job.name for job in api.list_jobs(store, include_removed=True)]


def test_disabled_and_done_states(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'states.db'}")
    seed(
        store,
        {
            "off": {"task": "proj.off", "schedule": "every 1 minute", "enabled": False},
            "one-off": {"task": "proj.once", "schedule": "once in 1 hour"},
        },
    )
    one_off = store.get_job("one-off")
    assert one_off is not None
    fire = one_off.anchor + timedelta(hours=1)
    record_runs(store, [RunRecord("one-off", fire, fire, "task-1", None)])
    jobs = {job.name: job for job in api.list_jobs(store)}
    assert jobs["off"].state == "Disabled"
    assert jobs["off"].due_at is None
    assert jobs["one-off"].state == "Done"
    assert jobs["one-off"].kind == "once"
    assert jobs["one-off"].attempts == "1/1"
    store.close()


def test_default_zone_comes_from_the_app_or_the_argument(store: JobStore, tmp_path: Path) -> None:
    jobs = {job.name: job for job in api.list_jobs(store, default_timezone="America/New_York")}
    assert jobs["heartbeat"].timezone == "America/New_York"
    assert jobs["berlin-lunch"].timezone == "Europe/Berlin"
    app = Celery("zoned", set_as_current=False)
    app.conf.update(timezone="Asia/Tokyo", orchestra_database_url=f"sqlite:///{tmp_path / 'orchestra.db'}")
    jobs = {job.name: job for job in api.list_jobs(app)}
    assert jobs["heartbeat"].timezone == "Asia/Tokyo"
    due = jobs["nightly-report"].due_at
    assert due is not None and due.tzinfo is not None
    assert (due.hour, due.minute) == (3, 0)
    assert due.utcoffset() == timedelta(hours=9)


def test_as_dict_is_json_ready(store: JobStore) -> None:
    [job] = api.list_jobs(store, tags="fast")
    data = job.as_dict()
    assert data["name"] == "heartbeat"
    assert data["state"] == "Running"
    assert data["attempts"] == "0"
    assert data["max_runs"] is None
    assert data["tags"] == ["fast"]
    assert datetime.fromisoformat(data["due_at"]).tzinfo is not None


# ---------------------------------------------------------------------------- history


def test_job_history_is_newest_first_in_the_jobs_zone(store: JobStore) -> None:
    lunch = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    runs = [
        RunRecord("berlin-lunch", lunch + timedelta(days=day), lunch + timedelta(days=day, seconds=1), f"t{day}", None)
        for day in range(3)
    ]
    record_runs(store, runs)
    history = api.job_history(store, "berlin-lunch", limit=2)
    assert [run.task_id for run in history] == ["t2", "t1"]
    assert history[0].fire_time == datetime(2026, 3, 4, 12, 0, tzinfo=BERLIN)
    assert history[0].fire_time.tzinfo == BERLIN
    assert history[0].delay == timedelta(seconds=1)
    assert api.job_history(store, "heartbeat") == []


def test_job_history_of_an_unknown_job_is_an_error(store: JobStore) -> None:
    with pytest.raises(api.NoSuchJobError) as caught:
        api.job_history(store, "heartbaet")
    assert str(caught.value) == "no such job: heartbaet (did you mean heartbeat?)"
    with pytest.raises(api.ControlError):
        api.job_history(store, "heartbeat", limit=0)


# ---------------------------------------------------------------------------- targets and the store


def test_an_app_target_uses_the_apps_store(store: JobStore, tmp_path: Path) -> None:
    app = Celery("target", set_as_current=False)
    app.conf.orchestra_database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    assert api.pause_job(app, "heartbeat").changed == ("heartbeat",)
    assert paused_names(store) == {"heartbeat"}
    assert api.resume_jobs_with_tags(app, "fast").changed == ("heartbeat",)


def test_open_store_defaults_to_the_file_beside_beats_schedule(tmp_path: Path) -> None:
    schedule = tmp_path / "beat" / "celerybeat-schedule"
    schedule.parent.mkdir()
    seeded = JobStore(f"sqlite:///{schedule}.orchestra.db")
    seed(seeded)
    seeded.close()
    app = Celery("default-store", set_as_current=False)
    app.conf.beat_schedule_filename = str(schedule)
    opened = api.open_store(app)
    try:
        assert {record.name for record in opened.all_jobs()} == set(JOBS)
    finally:
        opened.close()
    explicit = api.open_store(Celery("other", set_as_current=False), str(schedule))
    try:
        assert len(explicit.all_jobs()) == len(JOBS)
    finally:
        explicit.close()


def test_open_store_refuses_to_create_a_missing_sqlite_store(tmp_path: Path) -> None:
    app = Celery("missing", set_as_current=False)
    with pytest.raises(api.StoreNotFoundError) as caught:
        api.open_store(app, str(tmp_path / "typo-schedule"))
    expected = tmp_path / "typo-schedule.orchestra.db"
    assert str(expected) in str(caught.value)
    assert not expected.exists()
    with pytest.raises(api.StoreNotFoundError):
        api.open_store(app, database_url=f"sqlite:///{tmp_path / 'nothing.db'}")
    assert not (tmp_path / "nothing.db").exists()


def test_a_target_that_is_neither_app_nor_store_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Celery app or a JobStore"):
        api.pause_job("sqlite:///x.db", "heartbeat")


def test_a_one_off_beyond_utcs_last_year_is_not_expired(tmp_path: Path) -> None:
    from celery_orchestra import timing

    far = timing("on 9999-12-31 at 23:59", tz="America/New_York")  # year 10000 in UTC
    assert not far.is_expired
    assert timing("on 2020-01-01 at 00:00", tz="America/New_York").is_expired
    job_store = JobStore(f"sqlite:///{tmp_path / 'far.db'}")
    try:
        seed(
            job_store,
            {"far": {"task": "proj.say", "schedule": "on 9999-12-31 at 23:59", "timezone": "America/New_York"}},
        )
        [job] = api.list_jobs(job_store)
        assert (job.name, job.state) == ("far", "Running")
    finally:
        job_store.close()


def test_a_failed_pause_names_its_job_count_in_good_english(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    operations: list[str] = []
    run = store._db.run

    def recording_run(operation: str, *args: Any, **kwargs: Any) -> Any:
        operations.append(operation)
        return run(operation, *args, **kwargs)

    monkeypatch.setattr(store._db, "run", recording_run)
    store.set_paused(["heartbeat"], True)
    store.set_paused(["heartbeat", "cleanup"], False)
    assert operations == ["pause 1 job", "resume 2 jobs"]  # read as "cannot pause 1 job in ..." on failure
