"""The HTTP API (celery_orchestra.web) over a real store, through FastAPI's TestClient.

Every route, every error mapping (problem+json), tokens, the body limit, CORS, the schema and the
offline docs. Stores are SQLite files; the tests marked ``postgres`` repeat the core on PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from fastapi.testclient import TestClient

from celery_orchestra.store import BeatIdentity, JobStore, RunRecord
from celery_orchestra.web import Access, ApiConfig, create_app, security
from tests.ledger import record_runs
from tests.servers import RedisServer
from tests.test_api import JOBS, seed

TOKEN = "full-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
PROBLEM = "application/problem+json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    job_store = JobStore(f"sqlite:///{tmp_path / 'orchestra.db'}")
    seed(job_store)
    yield job_store
    job_store.close()


@pytest.fixture
def client(store: JobStore) -> TestClient:
    return TestClient(create_app(store), base_url="http://127.0.0.1")


def secured(store: JobStore, **config: Any) -> TestClient:
    return TestClient(
        create_app(store, config=ApiConfig(access=Access(TOKEN, READ_TOKEN), **config)), base_url="http://127.0.0.1"
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int, detail: str) -> dict[str, Any]:
    """A problem+json body of ``status`` whose detail contains ``detail``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    assert detail in body["detail"], body["detail"]
    return body


def new_job(**fields: Any) -> dict[str, Any]:
    return {"name": "sync", "task": "proj.sync", "schedule": "every 5 minutes", **fields}


# ---------------------------------------------------------------------------- listing


def test_list_jobs_pages_by_name_and_counts_them_all(client: TestClient) -> None:
    first = client.get("/api/jobs", params={"limit": 3}).json()
    assert [job["name"] for job in first["jobs"]] == ["berlin-lunch", "cleanup", "heartbeat"]
    assert (first["total"], first["offset"], first["limit"], first["next_offset"]) == (4, 0, 3, 3)
    second = client.get("/api/jobs", params={"limit": 3, "offset": 3}).json()
    assert [job["name"] for job in second["jobs"]] == ["nightly-report"]
    assert second["next_offset"] is None
    job = first["jobs"][0]
    assert job["timezone"] == "Europe/Berlin" and job["state"] == "Running" and job["owner"] == "config"
    assert job["tags"] == ["reports"] and job["due_at"].endswith("+01:00")


def test_list_jobs_filters_by_tags_state_owner_and_name(client: TestClient) -> None:
    def names(**params: Any) -> list[str]:
        response = client.get("/api/jobs", params=params)
        assert response.status_code == 200, response.text
        return [job["name"] for job in response.json()["jobs"]]

    assert names(tag=["slow", "reports"]) == ["berlin-lunch", "cleanup", "nightly-report"]
    assert names(tag=["slow", "reports"], any_tag=False) == ["nightly-report"]
    client.post("/api/jobs/cleanup/pause")
    assert names(state="paused") == ["cleanup"]
    assert names(state=["Paused", "Running"], q="LUNCH") == ["berlin-lunch"]
    client.post("/api/jobs", json=new_job())
    assert names(owner="runtime") == ["sync"]
    assert names(owner="config", q="c") == ["berlin-lunch", "cleanup"]
    assert client.get("/api/jobs", params={"state": "Paused", "limit": 1}).json()["total"] == 1


def test_list_jobs_refuses_bad_filters_as_problems(client: TestClient) -> None:
    assert_problem(client.get("/api/jobs", params={"state": "Sleeping"}), 422, "unknown state 'Sleeping'")
    body = assert_problem(client.get("/api/jobs", params={"limit": 0}), 422, "query.limit")
    assert body["problems"][0]["field"] == "query.limit"
    assert_problem(client.get("/api/jobs", params={"owner": "nobody"}), 422, "query.owner")
    assert_problem(client.get("/api/jobs", params={"tag": " , "}), 422, "no tags given")


# ---------------------------------------------------------------------------- adding, changing, removing


def test_add_job_answers_201_with_its_location_and_stores_it(client: TestClient, store: JobStore) -> None:
    response = client.post("/api/jobs", json=new_job(tags=["io"], args=[1], kwargs={"a": 2}, options={"queue": "q"}))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/jobs/sync"
    assert response.json()["schedule"] == "every 5 minutes" and response.json()["owner"] == "runtime"
    record = store.get_job("sync")
    assert record is not None
    assert (record.task, record.args, record.kwargs, record.options, record.tags) == (
        "proj.sync",
        (1,),
        {"a": 2},
        {"queue": "q"},
        ("io",),
    )
    assert client.get(response.headers["location"]).json()["name"] == "sync"


def test_add_job_takes_celery_schedules_as_objects(client: TestClient, store: JobStore) -> None:
    cron = client.post("/api/jobs", json=new_job(name="c", schedule={"crontab": {"minute": "*/15", "hour": "9"}}))
    assert cron.status_code == 201, cron.text
    assert cron.json()["kind"] == "crontab" and cron.json()["schedule"] == "crontab */15 9 * * *"
    every = client.post("/api/jobs", json=new_job(name="i", schedule={"interval": 90}))
    assert every.status_code == 201 and every.json()["schedule"] == "every 1 minute and 30 seconds"
    assert_problem(
        client.post("/api/jobs", json=new_job(name="b", schedule={"crontab": {"hour": "25"}})), 422, "invalid crontab"
    )
    assert_problem(client.post("/api/jobs", json=new_job(name="b", schedule={"interval": 0})), 422, "greater than 0")
    assert_problem(client.post("/api/jobs", json=new_job(name="b", schedule={"weekly": 1})), 422, "body.schedule")
    sun = client.post(
        "/api/jobs", json=new_job(name="s", schedule={"solar": {"event": "sunset", "lat": 48.8, "lon": 2.3}})
    )
    assert sun.status_code == 201, sun.text
    assert sun.json()["kind"] == "solar"
    assert_problem(
        client.post("/api/jobs", json=new_job(name="b", schedule={"solar": {"event": "noonish", "lat": 1, "lon": 1}})),
        422,
        "invalid solar schedule",
    )
    assert store.get_job("b") is None


def test_a_bad_timing_is_422_with_line_column_and_caret(client: TestClient, store: JobStore) -> None:
    response = client.post("/api/jobs", json=new_job(schedule="every 5 minutez"))
    body = assert_problem(response, 422, "bad timing")
    (item,) = body["problems"]
    assert (item["job"], item["line"], item["column"]) == ("sync", 1, 9)
    assert item["text"].endswith("\n    every 5 minutez\n            ^")
    assert store.get_job("sync") is None


def test_a_bad_timing_on_a_later_line_names_that_line(client: TestClient) -> None:
    body = assert_problem(client.post("/api/jobs", json=new_job(schedule="every day\nat 25:00")), 422, "bad timing")
    assert body["problems"][0]["line"] == 2


def test_add_job_refuses_a_name_held_by_configuration_with_409(client: TestClient) -> None:
    assert_problem(client.post("/api/jobs", json=new_job(name="heartbeat")), 409, "taken by a configured job")


def test_add_job_refuses_unknown_fields_and_bad_values(client: TestClient) -> None:
    body = assert_problem(client.post("/api/jobs", json={**new_job(), "module": "os"}), 422, "body.module")
    assert body["problems"][0]["field"] == "body.module"
    assert_problem(client.post("/api/jobs", json=new_job(timezone="Mars/Olympus")), 422, "Mars/Olympus")
    assert_problem(client.post("/api/jobs", json=new_job(args={"a": 1})), 422, "body.args")
    assert_problem(
        client.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"}), 422, ""
    )


def test_a_task_named_in_a_request_is_never_imported(client: TestClient, tmp_path: Path, monkeypatch: Any) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "boobytrap_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    added = client.post("/api/jobs", json=new_job(task="boobytrap_module.task"))
    assert added.status_code == 201, added.text
    assert client.post("/api/jobs/sync/run").status_code == 202
    assert client.get("/api/jobs/sync").status_code == 200
    assert not marker.exists()
    assert "boobytrap_module" not in sys.modules


def test_patch_changes_only_the_given_fields(client: TestClient, store: JobStore) -> None:
    client.post("/api/jobs", json=new_job(tags=["io"], kwargs={"a": 1}))
    response = client.patch("/api/jobs/sync", json={"schedule": "every 10 minutes", "tags": ["net"]})
    assert response.status_code == 200, response.text
    assert response.json()["schedule"] == "every 10 minutes" and response.json()["tags"] == ["net"]
    record = store.get_job("sync")
    assert record is not None and record.kwargs == {"a": 1} and record.task == "proj.sync"
    disabled = client.patch("/api/jobs/sync", json={"enabled": False})
    assert disabled.json()["state"] == "Disabled"


def test_patch_errors(client: TestClient) -> None:
    client.post("/api/jobs", json=new_job())
    assert_problem(client.patch("/api/jobs/sync", json={}), 422, "nothing to change")
    assert_problem(client.patch("/api/jobs/sync", json={"task": None}), 422, "task cannot be null")
    body = assert_problem(client.patch("/api/jobs/sync", json={"schedule": "every blue moon"}), 422, "bad timing")
    assert body["problems"][0]["column"] is not None
    assert_problem(client.patch("/api/jobs/heartbeat", json={"task": "x"}), 409, "is configured")
    body = assert_problem(client.patch("/api/jobs/synk", json={"task": "x"}), 404, "did you mean sync?")
    assert body["suggestions"] == {"synk": "sync"}


def test_delete_removes_a_runtime_job_once(client: TestClient, store: JobStore) -> None:
    client.post("/api/jobs", json=new_job())
    assert client.delete("/api/jobs/sync").json() == {"name": "sync", "removed": True}
    assert client.delete("/api/jobs/sync").json() == {"name": "sync", "removed": False}
    assert client.get("/api/jobs/sync").json()["state"] == "Removed"
    assert_problem(client.post("/api/jobs/sync/run"), 409, "it cannot be run")
    assert_problem(client.delete("/api/jobs/heartbeat"), 409, "is configured")
    assert_problem(client.delete("/api/jobs/nope"), 404, "no such job: nope")


def test_job_names_with_slashes_and_spaces_are_reachable(client: TestClient) -> None:
    response = client.post("/api/jobs", json=new_job(name="team a/sync"))
    assert response.headers["location"] == "/api/jobs/team%20a%2Fsync"
    assert client.get(response.headers["location"]).json()["name"] == "team a/sync"
    assert client.post("/api/jobs/team%20a%2Fsync/pause").json()["changed"] == ["team a/sync"]
    assert client.get("/api/jobs/team%20a%2Fsync/runs").json() == {"runs": [], "next_cursor": None}
    # A name ending in "/runs": its URL (the Location given) is the job, "<name>/runs" its runs.
    created = client.post("/api/jobs", json=new_job(name="rep/runs"))
    assert client.get(created.headers["location"]).json()["name"] == "rep/runs"
    assert client.get("/api/jobs/rep%2fruns").json()["name"] == "rep/runs"
    assert client.get("/api/jobs/rep%2Fruns/runs").json() == {"runs": [], "next_cursor": None}
    assert_problem(client.get("/api/jobs/rep/runs"), 404, "no such job: rep")  # the runs of a job "rep"


# ---------------------------------------------------------------------------- pause, resume, enable, disable


@pytest.mark.parametrize(
    ("action", "flag", "value"),
    [("pause", "paused", True), ("disable", "enabled", False)],
)
def test_one_job_actions_switch_the_store_and_say_so(
    client: TestClient, store: JobStore, action: str, flag: str, value: bool
) -> None:
    undo = {"pause": "resume", "disable": "enable"}[action]
    first = client.post(f"/api/jobs/heartbeat/{action}")
    assert first.status_code == 200
    assert first.json()["changed"] == ["heartbeat"] and first.json()["description"].endswith("heartbeat")
    assert getattr(store.get_job("heartbeat"), flag) is value
    assert client.post(f"/api/jobs/heartbeat/{action}").json()["unchanged"] == ["heartbeat"]
    assert client.post(f"/api/jobs/heartbeat/{undo}").json()["changed"] == ["heartbeat"]
    assert getattr(store.get_job("heartbeat"), flag) is not value
    assert_problem(client.post(f"/api/jobs/hartbeat/{action}"), 404, "did you mean heartbeat?")


def test_bulk_pause_and_resume_by_names_or_tags(client: TestClient, store: JobStore) -> None:
    by_names = client.post("/api/jobs/pause", json={"names": ["cleanup", "heartbeat"]}).json()
    assert by_names["changed"] == ["cleanup", "heartbeat"] and by_names["selector"] is None
    resumed = client.post("/api/jobs/resume", json={"tags": ["slow", "io"], "any_tag": False}).json()
    assert resumed["changed"] == ["cleanup"] and resumed["selector"] == "jobs with all of the tags slow, io"
    assert {r.name for r in store.all_jobs() if r.paused} == {"heartbeat"}
    assert client.post("/api/jobs/disable", json={"tags": ["reports"]}).json()["changed"] == [
        "berlin-lunch",
        "nightly-report",
    ]
    assert client.post("/api/jobs/enable", json={"names": ["berlin-lunch"]}).json()["changed"] == ["berlin-lunch"]


def test_bulk_errors(client: TestClient, store: JobStore) -> None:
    assert_problem(client.post("/api/jobs/pause", json={}), 422, 'give either "names" or "tags"')
    assert_problem(client.post("/api/jobs/pause", json={"names": ["a"], "tags": ["b"]}), 422, "not both")
    assert_problem(client.post("/api/jobs/pause", json={"tags": ["nothing"]}), 404, "no job has tag nothing")
    assert_problem(client.post("/api/jobs/pause", json={"names": ["heartbeat", "nope"]}), 404, "no such job: nope")
    assert_problem(client.post("/api/jobs/pause", json={"names": []}), 422, "no job names given")
    assert not any(record.paused for record in store.all_jobs())


# ---------------------------------------------------------------------------- runs


def test_run_now_answers_202_and_the_run_is_found_by_task_id(client: TestClient) -> None:
    response = client.post("/api/jobs/heartbeat/run")
    assert response.status_code == 202, response.text
    run = response.json()
    assert (run["job"], run["manual"], run["state"], run["confirmed"]) == ("heartbeat", True, "requested", False)
    found = client.get(f"/api/runs/{run['task_id']}")
    assert found.status_code == 200 and found.json()["task_id"] == run["task_id"]
    assert client.get("/api/jobs/heartbeat/runs").json()["runs"][0]["task_id"] == run["task_id"]
    assert_problem(client.get("/api/runs/not-a-task"), 404, "no recorded run has task id 'not-a-task'")


def sent_runs(store: JobStore, name: str, count: int, lag: timedelta = timedelta(seconds=1)) -> list[str]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [
        RunRecord(name, start + timedelta(minutes=i), start + timedelta(minutes=i) + lag, f"{name}-{i}", None)
        for i in range(count)
    ]
    record_runs(store, runs)
    return [run.task_id for run in reversed(runs)]


def test_runs_are_paged_by_cursor_newest_first_without_gaps(client: TestClient, store: JobStore) -> None:
    expected = sent_runs(store, "cleanup", 7)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = client.get("/api/jobs/cleanup/runs", params=params).json()
        seen.extend(run["task_id"] for run in page["runs"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and pages == 3
    first = client.get("/api/jobs/cleanup/runs", params={"limit": 1}).json()["runs"][0]
    assert first["state"] == "sent" and first["outcome"] is None


def test_runs_state_filter_and_bad_cursor(client: TestClient, store: JobStore) -> None:
    sent_runs(store, "cleanup", 2)
    client.post("/api/jobs/cleanup/run")
    requested = client.get("/api/jobs/cleanup/runs", params={"state": "requested"}).json()["runs"]
    assert [run["manual"] for run in requested] == [True]
    assert len(client.get("/api/jobs/cleanup/runs", params={"state": ["sent", "requested"]}).json()["runs"]) == 3
    assert_problem(client.get("/api/jobs/cleanup/runs", params={"cursor": "yesterday"}), 422, "cursor must be")
    assert_problem(client.get("/api/jobs/cleanup/runs", params={"cursor": "2026-11-01T00:00"}), 422, "UTC offset")
    assert_problem(client.get("/api/jobs/cleanupp/runs"), 404, "did you mean cleanup?")


@pytest.mark.redis
def test_runs_carry_outcomes_from_the_result_backend(store: JobStore, redis: RedisServer) -> None:
    app = Celery("web_outcomes", result_backend=redis.url(5), set_as_current=False)
    (newest, older) = sent_runs(store, "cleanup", 2)
    app.backend.mark_as_failure(newest, ValueError("disk full"))
    app.backend.mark_as_done(older, 42)
    client = TestClient(create_app(store, celery_app=app), base_url="http://127.0.0.1")
    runs = client.get("/api/jobs/cleanup/runs").json()["runs"]
    assert [run["outcome"]["state"] for run in runs] == ["FAILURE", "SUCCESS"]
    assert "disk full" in runs[0]["outcome"]["error"]
    assert client.get(f"/api/runs/{older}").json()["outcome"]["state"] == "SUCCESS"
    assert client.get("/api/jobs/cleanup").json()["last_run"]["outcome"]["state"] == "FAILURE"
    metrics = client.get("/metrics").text
    assert 'orchestra_job_last_run_failed{job="cleanup"} 1.0' in metrics
    assert 'orchestra_job_last_run_failed{job="heartbeat"} 0.0' in metrics


# ---------------------------------------------------------------------------- tags, beats, health


def test_tags_count_the_jobs_carrying_each(client: TestClient) -> None:
    assert client.get("/api/tags").json() == [
        {"tag": "fast", "jobs": 1},
        {"tag": "io", "jobs": 1},
        {"tag": "reports", "jobs": 2},
        {"tag": "slow", "jobs": 2},
    ]


def test_health_is_503_without_an_active_beat_and_200_with_one(client: TestClient, store: JobStore) -> None:
    down = client.get("/api/health")
    assert down.status_code == 503
    assert down.json()["healthy"] is False and "no beat is active" in down.json()["summary"]
    assert client.get("/api/beats").json()["active"] is None
    beat = BeatIdentity("b1", "worker-7", 4242, "0.1.0")
    assert store.acquire_lease(beat, timedelta(seconds=30)) is not None
    up = client.get("/api/health")
    assert up.status_code == 200 and up.json()["summary"].startswith("Active beat: worker-7 pid 4242 (epoch 1)")
    beats = client.get("/api/beats").json()
    assert beats["active"]["id"] == "b1" and beats["epoch"] == 1 and beats["beats"][0]["role"] == "active"


def test_health_goes_503_when_the_beat_stops_ticking(store: JobStore) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    store.acquire_lease(BeatIdentity("b1", "h", 1, "0"), timedelta(hours=1), now=long_ago)
    client = TestClient(create_app(store, config=ApiConfig(health_max_age=60)), base_url="http://127.0.0.1")
    response = client.get("/api/health")
    assert response.status_code == 503 and response.json()["max_age_seconds"] == 60


# ---------------------------------------------------------------------------- security


def test_without_a_token_configured_everything_is_open(client: TestClient) -> None:
    assert client.get("/api/jobs").status_code == 200


def test_a_token_is_required_and_checked(store: JobStore) -> None:
    client = secured(store)
    missing = assert_problem(client.get("/api/jobs"), 401, "needs a token")
    assert missing.keys() >= {"detail"}
    assert client.get("/api/jobs").headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.get("/api/jobs", headers=bearer("wrong")), 401, "not valid")
    assert_problem(client.get("/api/jobs", headers={"Authorization": f"Basic {TOKEN}"}), 401, "needs a token")
    assert client.get("/api/jobs", headers=bearer(TOKEN)).status_code == 200
    assert client.post("/api/jobs/heartbeat/pause", headers=bearer(TOKEN)).status_code == 200
    assert_problem(client.get("/metrics"), 401, "needs a token")
    assert client.get("/metrics", headers=bearer(READ_TOKEN)).status_code == 200
    assert client.get("/api/health").status_code == 503  # no token needed: it says only whether beat is alive
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
    latin = {"Authorization": "Bearer \xfcn\xefcode-token".encode("latin-1")}
    assert_problem(client.get("/api/jobs", headers=latin), 401, "not valid")


def test_the_read_only_token_may_only_read(store: JobStore) -> None:
    client = secured(store)
    assert client.get("/api/jobs", headers=bearer(READ_TOKEN)).status_code == 200
    for method, path in [
        ("POST", "/api/jobs/heartbeat/pause"),
        ("POST", "/api/jobs"),
        ("PATCH", "/api/jobs/heartbeat"),
        ("DELETE", "/api/jobs/heartbeat"),
        ("POST", "/api/jobs/pause"),
    ]:
        response = client.request(method, path, headers=bearer(READ_TOKEN), json={"names": ["heartbeat"]})
        assert_problem(response, 403, "read-only token allows GET requests only")
    assert not any(record.paused for record in store.all_jobs())


def test_tokens_are_compared_in_constant_time(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    secured(store).get("/api/jobs", headers=bearer("guess"))
    assert (b"guess", TOKEN.encode()) in compared and (b"guess", READ_TOKEN.encode()) in compared


def test_the_token_is_never_logged(store: JobStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    client = secured(store)
    client.get("/api/jobs", headers=bearer(TOKEN))
    client.get("/api/jobs", headers=bearer(TOKEN + "x"))
    assert TOKEN not in caplog.text


def test_bodies_over_the_limit_are_413(store: JobStore) -> None:
    client = TestClient(create_app(store, config=ApiConfig(max_body=2048)), base_url="http://127.0.0.1")
    big = new_job(kwargs={"blob": "x" * 4096})
    assert_problem(client.post("/api/jobs", json=big), 413, "larger than 2048 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield json.dumps(big).encode()[:1500]
        yield json.dumps(big).encode()[1500:]

    assert_problem(
        client.post("/api/jobs", content=chunks(), headers={"content-type": "application/json"}), 413, "larger than"
    )
    assert client.post("/api/jobs", json=new_job()).status_code == 201
    assert store.get_job("sync") is not None


def test_no_cors_unless_configured(store: JobStore) -> None:
    origin = {"Origin": "https://ops.example.com"}
    plain = TestClient(create_app(store), base_url="http://127.0.0.1")
    assert "access-control-allow-origin" not in plain.get("/api/jobs", headers=origin).headers
    allowed = TestClient(
        create_app(store, config=ApiConfig(cors_origins=("https://ops.example.com",))), base_url="http://127.0.0.1"
    )
    preflight = allowed.options(
        "/api/jobs",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert (
        "access-control-allow-origin"
        not in allowed.get("/api/jobs", headers={"Origin": "https://evil.example"}).headers
    )


# ---------------------------------------------------------------------------- errors, schema, docs


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/api/nothing"), 404, "Not Found")
    assert_problem(client.put("/api/jobs"), 405, "Method Not Allowed")


def test_the_store_unreachable_is_503_not_500(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    client = TestClient(create_app(store), raise_server_exceptions=False, base_url="http://127.0.0.1")
    response = client.get("/api/jobs")
    assert_problem(response, 503, "")
    store.close()


def test_the_schema_documents_every_error_as_problem_json(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    add = schema["paths"]["/api/jobs"]["post"]
    assert set(add["responses"]) >= {"201", "401", "403", "404", "409", "413", "422", "503"}
    assert add["responses"]["422"]["content"] == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    body = schema["components"]["schemas"]["JobCreate"]
    assert body["required"] == ["name", "task", "schedule"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/api/health" in schema["paths"] and "/metrics" in schema["paths"]


def test_the_docs_page_loads_nothing_from_the_network(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "http://" not in page and "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/static/{asset}" in page
        response = client.get(f"/docs/static/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000


def test_root_points_at_the_docs(client: TestClient) -> None:
    assert 'href="/docs"' in client.get("/").text  # the dashboard's page links the API docs


# ---------------------------------------------------------------------------- metrics


def test_metrics_are_read_from_the_store(client: TestClient, store: JobStore) -> None:
    client.post("/api/jobs/heartbeat/pause")
    now = datetime.now(UTC)
    lags = [0.05, 0.3, 0.3, 2.0, 40.0]
    record_runs(
        store,
        [
            RunRecord(
                "cleanup",
                now - timedelta(minutes=5 - i),
                now - timedelta(minutes=5 - i) + timedelta(seconds=lag),
                f"t{i}",
                None,
            )
            for i, lag in enumerate(lags)
        ],
    )
    record_runs(
        store,
        [RunRecord("cleanup", now - timedelta(hours=2), now - timedelta(hours=2) + timedelta(seconds=99), "old", None)],
    )
    store.acquire_lease(BeatIdentity("b1", "worker-7", 4242, "0.1.0"), timedelta(seconds=30))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(response.text.splitlines())
    assert 'orchestra_jobs{state="Running"} 3.0' in lines
    assert 'orchestra_jobs{state="Paused"} 1.0' in lines
    assert 'orchestra_job_runs_total{job="cleanup"} 6.0' in lines
    assert 'orchestra_job_runs_total{job="heartbeat"} 0.0' in lines
    # The run fired two hours ago is outside the window; the five recent ones are bucketed.
    assert 'orchestra_send_lag_seconds_bucket{le="0.1"} 1.0' in lines
    assert 'orchestra_send_lag_seconds_bucket{le="0.5"} 3.0' in lines
    assert 'orchestra_send_lag_seconds_bucket{le="2.5"} 4.0' in lines
    assert 'orchestra_send_lag_seconds_bucket{le="30"} 4.0' in lines
    assert 'orchestra_send_lag_seconds_bucket{le="+Inf"} 5.0' in lines
    assert "orchestra_send_lag_seconds_gcount 5.0" in lines
    assert "orchestra_lease_epoch 1.0" in lines
    assert 'orchestra_lease_holder_info{beat="b1",host="worker-7",pid="4242"} 1.0' in lines
    assert any(
        line.startswith('orchestra_beat_last_tick_age_seconds{beat="b1",host="worker-7",role="active"}')
        for line in lines
    )


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_the_core_routes_on_postgresql(fresh_postgres_url: str) -> None:
    store = JobStore(fresh_postgres_url)
    try:
        seed(store, JOBS)
        client = TestClient(create_app(store), base_url="http://127.0.0.1")
        assert client.get("/api/jobs").json()["total"] == 4
        assert client.post("/api/jobs", json=new_job()).status_code == 201
        assert_problem(client.post("/api/jobs", json=new_job()), 409, "taken by a job added at runtime")
        assert client.post("/api/jobs/pause", json={"tags": ["slow"]}).json()["changed"] == [
            "cleanup",
            "nightly-report",
        ]
        run = client.post("/api/jobs/sync/run").json()
        assert client.get(f"/api/runs/{run['task_id']}").json()["job"] == "sync"
        expected = sent_runs(store, "cleanup", 4)
        page = client.get("/api/jobs/cleanup/runs", params={"limit": 2}).json()
        rest = client.get("/api/jobs/cleanup/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert [r["task_id"] for r in page["runs"] + rest["runs"]] == expected
        assert_problem(client.get("/api/jobs/sink"), 404, "no such job: sink")
        # PostgreSQL cannot hold a NUL in text: refused up front, never a driver error and a 500.
        assert_problem(client.post("/api/jobs", json=new_job(name="a\x00b")), 422, "body.name")
        assert_problem(client.get("/api/jobs/a%00b"), 422, "NUL character")
        assert_problem(client.get("/api/runs/%00"), 422, "NUL character")
        assert_problem(client.get("/api/jobs", params={"q": "\x00"}), 422, "NUL character")
        assert_problem(client.post("/api/jobs/pause", json={"names": ["\x00"]}), 422, "body.names.0")
        assert 'orchestra_job_runs_total{job="cleanup"} 4.0' in client.get("/metrics").text
    finally:
        store.close()


def test_an_open_api_answers_loopback_names_only_and_refuses_writes_from_other_pages(store: JobStore) -> None:
    # Without a token, any page the operator's browser shows could otherwise pause or add jobs: a
    # cross-site form POST needs no permission, and DNS rebinding makes a page same-origin.
    client = TestClient(create_app(store), base_url="http://127.0.0.1:5000")
    rebound = TestClient(create_app(store), base_url="http://rebind.evil.example:5000")
    assert_problem(rebound.get("/api/jobs"), 403, "addressed to this machine only")
    body = {"name": "evil", "task": "os.system", "schedule": "every 10 seconds"}
    assert_problem(rebound.post("/api/jobs", json=body), 403, "'rebind.evil.example:5000'")
    assert store.get_job("evil") is None

    refused = client.post("/api/jobs/cleanup/pause", headers={"Origin": "https://evil.example"})
    assert_problem(refused, 403, "a POST from a page of another origin ('https://evil.example') is refused")
    assert_problem(client.post("/api/jobs/cleanup/pause", headers={"Origin": "null"}), 403, "another origin")
    cleanup = store.get_job("cleanup")
    assert cleanup is not None and not cleanup.paused

    # The dashboard (same origin), scripts (no Origin), other loopback names: let through.
    assert client.post("/api/jobs/cleanup/pause", headers={"Origin": "http://127.0.0.1:5000"}).status_code == 200
    assert client.post("/api/jobs/cleanup/resume").status_code == 200
    for name in ("localhost:5000", "[::1]:5000", "127.0.0.2"):
        assert TestClient(create_app(store), base_url=f"http://{name}").get("/api/jobs").status_code == 200

    # An origin CORS allows may write; with a token the token decides, whatever the names.
    allowed = TestClient(
        create_app(store, config=ApiConfig(cors_origins=("https://ops.example.com",))), base_url="http://127.0.0.1"
    )
    assert allowed.post("/api/jobs/cleanup/pause", headers={"Origin": "https://ops.example.com"}).status_code == 200
    tokened = TestClient(
        create_app(store, config=ApiConfig(access=Access(TOKEN, READ_TOKEN))), base_url="http://orchestra.internal"
    )
    assert tokened.get("/api/jobs", headers=bearer(TOKEN)).status_code == 200
