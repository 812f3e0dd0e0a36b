"""Schemathesis against the served OpenAPI schema: generated requests to every operation, checking
that none is answered with a 5xx and that every response (status, content type, headers, body)
is the one the schema documents.

The checks that judge what a request *should* get (schema-valid data accepted, schema-invalid data
refused) are left out: a timing string the schema allows as a string may still be a bad timing
(422), and that is the point of the API. Examples are few and derandomised, so the run (SQLite, then
PostgreSQL) stays about a minute and fails the same way twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from celery_orchestra.store import BeatIdentity, JobStore
from celery_orchestra.web import Access, ApiConfig, create_app
from tests.servers import unique_database_name
from tests.test_api import seed

TOKEN = "schema-token-0123456789abcdef"

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def web_schema(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The served schema over a seeded store: SQLite, and PostgreSQL (whose driver refuses what SQLite takes)."""
    server = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'orchestra.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = unique_database_name()
        url = server.create_database(name)
    store = JobStore(url)
    seed(store)
    # An active beat, so that /api/health answers 200: its 503 is by design, and would read as a server error.
    store.acquire_lease(BeatIdentity("b1", "worker-1", 1, "0.1.0"), timedelta(hours=1))
    config = ApiConfig(access=Access(TOKEN, None), max_body=64 * 1024, health_max_age=3600)
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(store, config=config))
    store.close()
    if server is not None:
        server.drop_database(name)


def test_no_server_errors_and_every_response_matches_the_schema(web_schema: Any) -> None:
    """Each operation in turn, with data the schema allows and data it does not, each its own
    Hypothesis run (schemathesis's pytest plugin is not used: its per-operation subtests break
    with pytest 9.2); every failure is reported together."""
    failures = []
    operations = [result.ok() for result in web_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            # No data can break the schema of an operation without parameters or body (GET /api/tags).
            if mode is not GenerationMode.NEGATIVE:
                raise
        except Exception as error:  # every operation is checked; all their failures are shown at the end
            failures.append(f"{operation.label} ({mode.value} data): {error}")
    assert not failures, "\n\n".join(failures)


def test_the_schema_covers_every_route(web_schema: Any, tmp_path: Path) -> None:
    paths = set(web_schema.raw_schema["paths"])
    assert {
        "/api/jobs",
        "/api/jobs/{name}",
        "/api/jobs/{name}/runs",
        "/api/jobs/{name}/run",
        "/api/jobs/{name}/pause",
        "/api/jobs/pause",
        "/api/runs/{task_id}",
        "/api/tags",
        "/api/beats",
        "/api/health",
        "/metrics",
    } <= paths
