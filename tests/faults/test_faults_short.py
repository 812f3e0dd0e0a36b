"""The short fault-injection runs: each scenario for a few cycles, held to issue 8's targets.

Run them alone with ``python -m pytest -m faults tests/faults -s`` (``-s`` shows each report).
They start real beat processes and throwaway Redis/PostgreSQL servers (skipped when a binary is
missing, failed under ``CI=true``) and take about four minutes together. Until the fenced lease
and ledger recovery of issue 8 land, some of them are expected to fail: the failure message is the
list of targets missed, and the report above it the figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import PostgresServer, RedisServer

from .harness import Servers
from .scenarios import SCENARIOS, failed_targets, run_scenario

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def fault_servers(redis: RedisServer, request: pytest.FixtureRequest) -> Iterator[Servers]:
    """The session's Redis, and its PostgreSQL when a selected scenario needs one."""
    needs_postgres = any(
        SCENARIOS[str(item.callspec.params["name"])].backend == "postgresql"
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module and hasattr(item, "callspec")
    )
    postgres: PostgresServer | None = request.getfixturevalue("postgres") if needs_postgres else None
    yield Servers(redis, postgres)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.postgres] if scenario.backend == "postgresql" else [])
        for name, scenario in SCENARIOS.items()
    ],
)
def test_short(name: str, fault_servers: Servers, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    report = run_scenario(scenario, fault_servers, tmp_path / name, scenario.short)
    print()
    print(report.HEADER)
    print(report.row())
    print(report.details())
    missed = failed_targets(report, scenario, scenario.short)
    assert not missed, f"{name}: {'; '.join(missed)}\n{report.row()}\n{report.details()}"
