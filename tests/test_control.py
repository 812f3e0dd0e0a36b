"""Remote control in one process: the beat node over kombu's memory:// transport, worker-side handlers,
argument checking, and Celery's own `celery control`/`inspect` CLI reaching the node."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.bin.celery import celery as celery_cli
from celery.bin.control import _compile_arguments
from celery.utils.collections import AttributeDict
from celery.worker.control import Panel
from click.testing import CliRunner
from kombu import Connection
from test_api import paused_names, seed

from celery_orchestra.ops import control
from celery_orchestra.ops.remote import OrchestraNode
from celery_orchestra.store import BeatIdentity, JobStore

REPLY_TIMEOUT = 3.0


def memory_app(name: str) -> Celery:
    app = Celery(name, broker="memory://", set_as_current=False)
    # The memory transport polls; keep round trips short.
    app.conf.broker_transport_options = {"polling_interval": 0.01}
    return app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    job_store = JobStore(f"sqlite:///{tmp_path / 'orchestra.db'}")
    seed(job_store)
    yield job_store
    job_store.close()


class Changes:
    """Counts the scheduler callback's calls, like the scheduler's request_refresh would be."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def app() -> Celery:
    return memory_app(f"remote-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def node(app: Celery, store: JobStore, changes: Changes) -> Iterator[OrchestraNode]:
    # A unique node name per test: the memory transport's exchanges outlive a test.
    running = OrchestraNode(
        app, store=store, on_change=changes, hostname=f"orchestra-{uuid.uuid4().hex[:8]}@%h", drain_timeout=0.2
    )
    running.start()
    assert running.wait_until_listening(10), "the node never started consuming"
    yield running
    running.stop()


def ask(
    app: Celery, node: OrchestraNode, method: str, timeout: float = REPLY_TIMEOUT, **arguments: Any
) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = app.control.broadcast(
        method, arguments=arguments, reply=True, timeout=timeout, destination=[node.hostname]
    )
    return replies


def answer(app: Celery, node: OrchestraNode, method: str, **arguments: Any) -> dict[str, Any]:
    replies = ask(app, node, method, **arguments)
    assert len(replies) == 1, replies
    reply: dict[str, Any] = replies[0][node.hostname]
    return reply


# ---------------------------------------------------------------------------- the beat node


def test_node_name_is_orchestra_at_host() -> None:
    node = OrchestraNode(memory_app("names"), store=JobStore("sqlite://"), on_change=lambda: None)
    assert node.hostname.startswith("orchestra@")
    assert "%h" not in node.hostname
    assert len(node.hostname) > len("orchestra@")


def test_pause_and_resume_over_the_broker(app: Celery, node: OrchestraNode, store: JobStore, changes: Changes) -> None:
    assert answer(app, node, "orchestra_pause", names=["heartbeat", "cleanup"]) == {"ok": "paused: heartbeat, cleanup"}
    assert paused_names(store) == {"heartbeat", "cleanup"}
    assert changes.calls == 1
    assert answer(app, node, "orchestra_pause", names=["heartbeat"]) == {"ok": "already paused: heartbeat"}
    assert answer(app, node, "orchestra_resume", names=["heartbeat"]) == {"ok": "resumed: heartbeat"}
    assert paused_names(store) == {"cleanup"}
    assert changes.calls == 3


def test_unknown_job_gets_an_error_reply_and_changes_nothing(
    app: Celery, node: OrchestraNode, store: JobStore, changes: Changes
) -> None:
    assert answer(app, node, "orchestra_pause", names=["heartbeat", "x"]) == {"error": "no such job: x"}
    assert paused_names(store) == set()
    assert changes.calls == 0


def test_tag_commands(app: Celery, node: OrchestraNode, store: JobStore) -> None:
    reply = answer(app, node, "orchestra_pause_tags", tags="reports,slow", match="all")
    assert reply == {"ok": "paused: nightly-report (jobs with all of the tags reports, slow)"}
    reply = answer(app, node, "orchestra_pause_tags", tags="reports")
    assert reply == {"ok": "paused: berlin-lunch; already paused: nightly-report (jobs with tag reports)"}
    assert paused_names(store) == {"berlin-lunch", "nightly-report"}
    reply = answer(app, node, "orchestra_resume_tags", tags="gpu")
    assert reply == {"error": "no job has tag gpu"}
    reply = answer(app, node, "orchestra_resume_tags", tags="slow,reports", match="ANY")
    assert reply == {
        "ok": "resumed: berlin-lunch, nightly-report; not paused: cleanup (jobs with any of the tags slow, reports)"
    }
    assert paused_names(store) == set()


def test_enable_and_disable_by_names_and_tags(
    app: Celery, node: OrchestraNode, store: JobStore, changes: Changes
) -> None:
    assert answer(app, node, "orchestra_disable", names=["heartbeat", "cleanup"]) == {
        "ok": "disabled: heartbeat, cleanup"
    }
    assert disabled_names(store) == {"heartbeat", "cleanup"}
    assert answer(app, node, "orchestra_enable", names=["heartbeat"]) == {"ok": "enabled: heartbeat"}
    assert answer(app, node, "orchestra_disable_tags", tags="reports,slow", match="all") == {
        "ok": "disabled: nightly-report (jobs with all of the tags reports, slow)"
    }
    assert answer(app, node, "orchestra_enable_tags", tags="slow") == {
        "ok": "enabled: cleanup, nightly-report (jobs with tag slow)"
    }
    assert disabled_names(store) == set()
    assert answer(app, node, "orchestra_enable", names=["nope"]) == {"error": "no such job: nope"}
    assert changes.calls == 4


def disabled_names(store: JobStore) -> set[str]:
    return {record.name for record in store.all_jobs() if not record.enabled}


def test_run_is_requested_by_the_active_beats_node_only(
    app: Celery, node: OrchestraNode, store: JobStore, changes: Changes
) -> None:
    # Not holding the lease (a standby): a broadcast reaches every beat, only the active one runs it.
    assert answer(app, node, "orchestra_run", name="heartbeat") == {
        "ok": "not run by this beat: it is a standby; the active one runs orchestra_run"
    }
    assert manual_runs(store) == []
    assert store.acquire_lease(BeatIdentity("beat-a", "host-1", 101, "0.1.0"), timedelta(seconds=30)) is not None

    reply = answer(app, node, "orchestra_run", name="heartbeat")

    [(job, task_id)] = manual_runs(store)
    assert (job, reply) == (
        "heartbeat",
        {"ok": f"requested a run of heartbeat now, task id {task_id}", "task_id": task_id},
    )
    assert changes.calls == 1  # the scheduler looks at once
    assert answer(app, node, "orchestra_run", name="nope") == {"error": "no such job: nope"}
    assert answer(app, node, "orchestra_run", name="") == {
        "error": "orchestra_run needs one job name (orchestra_run NAME), got ''"
    }
    assert answer(app, node, "orchestra_run", name="a\x1b[31mb") == {"error": "no such job: a\\x1b[31mb"}
    assert len(manual_runs(store)) == 1


def manual_runs(store: JobStore) -> list[tuple[str, str]]:
    return [(r.job_name, r.task_id) for name in ("heartbeat", "cleanup") for r in store.history(name) if r.manual]


def test_bad_arguments_get_a_clear_error(app: Celery, node: OrchestraNode, store: JobStore) -> None:
    assert answer(app, node, "orchestra_pause_tags", tags="slow", match="some") == {
        "error": "orchestra_pause_tags: the match must be 'any' or 'all', got 'some'"
    }
    assert answer(app, node, "orchestra_pause", names=[]) == {
        "error": "orchestra_pause needs at least one job name (orchestra_pause NAME [NAME ...])"
    }
    assert answer(app, node, "orchestra_pause", name="heartbeat") == {
        "error": "orchestra_pause takes 'names'; unexpected argument(s): 'name'"
    }
    assert answer(app, node, "orchestra_resume_tags", tags=" , ") == {
        "error": "orchestra_resume_tags: no tags given (expected tags like 'cpu' or 'cpu,nightly')"
    }
    assert paused_names(store) == set()


def test_jobs_inspect_command_lists_every_job(app: Celery, node: OrchestraNode, store: JobStore) -> None:
    store.set_paused(["cleanup"], True)
    replies = app.control.inspect(destination=[node.hostname], timeout=REPLY_TIMEOUT)._request("orchestra_jobs")
    jobs = replies[node.hostname]["jobs"]
    assert sorted(jobs) == ["berlin-lunch", "cleanup", "heartbeat", "nightly-report"]
    assert jobs["cleanup"]["state"] == "Paused"
    assert jobs["cleanup"]["due_at"] is None
    assert jobs["heartbeat"]["state"] == "Running"
    assert jobs["heartbeat"]["runs"] == 0
    assert jobs["heartbeat"]["tags"] == ["fast"]
    assert jobs["berlin-lunch"]["timezone"] == "Europe/Berlin"
    assert jobs["berlin-lunch"]["due_at"].endswith(("+01:00", "+02:00"))


def test_ping_is_answered(app: Celery, node: OrchestraNode) -> None:
    assert answer(app, node, "ping") == {"ok": "pong"}


def test_other_commands_are_ignored_silently(app: Celery, node: OrchestraNode, changes: Changes) -> None:
    assert ask(app, node, "active", timeout=1.0) == []
    assert ask(app, node, "shutdown", timeout=1.0) == []
    assert answer(app, node, "ping") == {"ok": "pong"}
    assert node.running
    assert changes.calls == 0


def test_expired_requests_are_dropped(app: Celery, node: OrchestraNode, store: JobStore) -> None:
    with app.connection_for_write() as connection:
        mailbox = app.control.mailbox(connection)
        # A request whose `expires` header lies a minute in the past, as a replaying transport delivers it.
        mailbox._broadcast("orchestra_pause", {"names": ["heartbeat"]}, destination=[node.hostname], timeout=-60)
    assert answer(app, node, "ping") == {"ok": "pong"}  # delivered after the stale request
    assert paused_names(store) == set()


def test_requests_for_other_nodes_are_not_answered(app: Celery, node: OrchestraNode, store: JobStore) -> None:
    replies = app.control.broadcast(
        "orchestra_pause", arguments={"names": ["heartbeat"]}, reply=True, timeout=1.0, destination=["celery@elsewhere"]
    )
    assert replies == []
    assert paused_names(store) == set()


def test_a_glob_pattern_reaches_the_node(app: Celery, node: OrchestraNode, store: JobStore) -> None:
    replies = app.control.broadcast(
        "orchestra_pause",
        arguments={"names": ["heartbeat"]},
        reply=True,
        timeout=REPLY_TIMEOUT,
        pattern="orchestra-*",
        matcher="glob",
        limit=1,
    )
    assert replies == [{node.hostname: {"ok": "paused: heartbeat"}}]


def test_a_failing_change_callback_does_not_spoil_the_reply(app: Celery, store: JobStore) -> None:
    def broken() -> None:
        raise RuntimeError("scheduler gone")

    failing = OrchestraNode(app, store=store, on_change=broken, hostname=f"orchestra-{uuid.uuid4().hex[:8]}@%h")
    failing.start()
    try:
        assert failing.wait_until_listening(10)
        assert answer(app, failing, "orchestra_pause", names=["cleanup"]) == {"ok": "paused: cleanup"}
        assert answer(app, failing, "ping") == {"ok": "pong"}
    finally:
        failing.stop()


# ---------------------------------------------------------------------------- lifecycle


def remote_threads(node: OrchestraNode) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if node.hostname in thread.name]


def test_nothing_connects_or_starts_before_start(monkeypatch: pytest.MonkeyPatch, store: JobStore) -> None:
    app = memory_app("lazy")
    opened: list[Connection] = []
    original = app.connection_for_read

    def counting(*args: Any, **kwargs: Any) -> Connection:
        connection = original(*args, **kwargs)
        opened.append(connection)
        return connection

    monkeypatch.setattr(app, "connection_for_read", counting)
    node = OrchestraNode(app, store=store, on_change=lambda: None, hostname=f"orchestra-{uuid.uuid4().hex[:8]}@%h")
    assert opened == []
    assert remote_threads(node) == []
    assert not node.running
    node.stop()  # stopping a node that never started is fine
    assert opened == []


def test_start_and_stop_are_idempotent(store: JobStore) -> None:
    app = memory_app("twice")
    node = OrchestraNode(app, store=store, on_change=lambda: None, hostname=f"orchestra-{uuid.uuid4().hex[:8]}@%h")
    node.start()
    node.start()
    assert node.wait_until_listening(10)
    assert len(remote_threads(node)) == 1
    assert node.running
    started = time.monotonic()
    node.stop()
    assert time.monotonic() - started < 5
    assert not node.running
    assert remote_threads(node) == []
    node.stop()
    node.start()  # a stopped node can be started again
    assert node.wait_until_listening(10)
    assert answer(app, node, "ping") == {"ok": "pong"}
    node.stop()
    assert remote_threads(node) == []


def test_no_fanout_means_no_thread_and_one_warning(
    tmp_path: Path, store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("sqla", broker=f"sqla+sqlite:///{tmp_path / 'broker.db'}", set_as_current=False)
    node = OrchestraNode(app, store=store, on_change=lambda: None, hostname=f"orchestra-{uuid.uuid4().hex[:8]}@%h")
    with caplog.at_level(logging.WARNING, logger="celery_orchestra.remote"):
        node.start()
        node.start()
    warnings = [record for record in caplog.records if record.name == "celery_orchestra.remote"]
    assert len(warnings) == 1
    assert "does not support broadcast" in warnings[0].getMessage()
    assert "celery orchestra pause" in warnings[0].getMessage()
    assert not node.running
    assert remote_threads(node) == []
    node.stop()


# ---------------------------------------------------------------------------- Panel registration and workers


def test_commands_are_registered_for_the_control_cli() -> None:
    for name in control.CHANGE_COMMANDS:
        assert Panel.meta[name].type == "control"
        assert Panel.meta[name].visible
    assert Panel.meta[control.JOBS].type == "inspect"
    assert Panel.meta[control.PAUSE].variadic == "names"
    assert not Panel.meta[control.PAUSE].args
    assert Panel.meta[control.PAUSE_TAGS].variadic is None
    assert [name for name, _ in Panel.meta[control.PAUSE_TAGS].args] == ["tags", "match"]
    assert Panel.meta[control.DISABLE].variadic == "names"
    assert [name for name, _ in Panel.meta[control.ENABLE_TAGS].args] == ["tags", "match"]
    assert [name for name, _ in Panel.meta[control.RUN].args] == ["name"]


@pytest.mark.parametrize(
    ("command", "argv", "expected"),
    [
        ("orchestra_pause", ["a", "b c"], {"names": ["a", "b c"]}),
        ("orchestra_resume", ["a"], {"names": ["a"]}),
        ("orchestra_pause_tags", ["x,y", "all"], {"tags": "x,y", "match": "all"}),
        ("orchestra_resume_tags", ["x"], {"tags": "x"}),
        ("orchestra_jobs", [], {}),
        ("orchestra_enable", ["a", "b"], {"names": ["a", "b"]}),
        ("orchestra_disable_tags", ["x", "any"], {"tags": "x", "match": "any"}),
        ("orchestra_run", ["a"], {"name": "a"}),
    ],
)
def test_celerys_cli_maps_arguments_without_duplicating_any(
    command: str, argv: list[str], expected: dict[str, Any]
) -> None:
    assert _compile_arguments(command, list(argv)) == expected


def test_worker_without_a_database_url_says_beat_applies_it(tmp_path: Path, store: JobStore) -> None:
    worker_app = memory_app("plain-worker")
    state = AttributeDict(app=worker_app, hostname="celery@test")
    reply = Panel.data["orchestra_pause"](state, names=["heartbeat"])
    assert set(reply) == {"ok"}
    assert "not applied by this worker" in reply["ok"]
    assert "orchestra@" in reply["ok"]
    reply = Panel.data["orchestra_jobs"](state)
    assert "not listed by this worker" in reply["ok"]
    assert paused_names(store) == set()


def test_a_worker_never_runs_a_job_even_with_a_database_url(tmp_path: Path, store: JobStore) -> None:
    worker_app = memory_app("db-worker-run")
    worker_app.conf.orchestra_database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    state = AttributeDict(app=worker_app, hostname="celery@test")
    reply = Panel.data["orchestra_run"](state, name="heartbeat")
    assert reply == {
        "ok": "not run by this worker: the active beat's node (orchestra@<its host>) runs orchestra_run, once"
    }
    assert Panel.data["orchestra_run"](state, name=5) == {
        "error": "orchestra_run needs one job name (orchestra_run NAME), got 5"
    }
    assert manual_runs(store) == []
    assert Panel.data["orchestra_disable"](state, names=["heartbeat"]) == {"ok": "disabled: heartbeat"}
    assert disabled_names(store) == {"heartbeat"}


def test_worker_with_a_database_url_applies_the_command(tmp_path: Path, store: JobStore) -> None:
    worker_app = memory_app("db-worker")
    worker_app.conf.orchestra_database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    state = AttributeDict(app=worker_app, hostname="celery@test")
    assert Panel.data["orchestra_pause"](state, names=["heartbeat"]) == {"ok": "paused: heartbeat"}
    assert paused_names(store) == {"heartbeat"}
    assert Panel.data["orchestra_resume_tags"](state, tags="fast") == {"ok": "resumed: heartbeat (jobs with tag fast)"}
    assert Panel.data["orchestra_pause"](state, names=["nope"]) == {"error": "no such job: nope"}
    jobs = Panel.data["orchestra_jobs"](state)["jobs"]
    assert jobs["heartbeat"]["state"] == "Running"


def test_worker_refuses_bad_arguments_even_without_a_database_url() -> None:
    state = AttributeDict(app=memory_app("strict-worker"), hostname="celery@test")
    reply = Panel.data["orchestra_pause_tags"](state, tags="a", match="most")
    assert reply == {"error": "orchestra_pause_tags: the match must be 'any' or 'all', got 'most'"}


def test_worker_with_a_bad_setting_gets_an_error_not_an_exception() -> None:
    worker_app = memory_app("bad-setting")
    worker_app.conf.orchestra_database_url = 42
    reply = Panel.data["orchestra_resume"](AttributeDict(app=worker_app), names=["x"])
    assert reply == {"error": "setting orchestra_database_url must be a database URL string, got 42"}


def test_worker_with_an_unreachable_database_gets_an_error_reply() -> None:
    worker_app = memory_app("no-db")
    worker_app.conf.orchestra_database_url = "postgresql+psycopg2://u:secret@127.0.0.1:9/none?connect_timeout=2"
    reply = Panel.data["orchestra_pause"](AttributeDict(app=worker_app), names=["x"])
    assert set(reply) == {"error"}
    assert "127.0.0.1:9" in reply["error"]
    assert "secret" not in reply["error"]


@pytest.mark.parametrize(
    ("method", "arguments", "expected"),
    [
        ("orchestra_pause", {"names": "solo"}, control.Command("orchestra_pause", names=("solo",))),
        ("orchestra_resume", {"names": ["a", "a", "b"]}, control.Command("orchestra_resume", names=("a", "b"))),
        ("orchestra_pause_tags", {"tags": ["x", "y,z"]}, control.Command("orchestra_pause_tags", tags=("x", "y", "z"))),
        (
            "orchestra_resume_tags",
            {"tags": "x", "match": " All "},
            control.Command("orchestra_resume_tags", tags=("x",), any_tag=False),
        ),
        ("orchestra_jobs", None, control.Command("orchestra_jobs")),
        ("orchestra_run", {"name": "solo"}, control.Command("orchestra_run", names=("solo",))),
        ("orchestra_disable", {"names": ["a"]}, control.Command("orchestra_disable", names=("a",))),
    ],
)
def test_parse_command(method: str, arguments: dict[str, Any] | None, expected: control.Command) -> None:
    assert control.parse_command(method, arguments) == expected


@pytest.mark.parametrize(
    ("method", "arguments", "message"),
    [
        ("orchestra_pause", {"names": [""]}, "job names must be non-empty strings"),
        ("orchestra_pause", {"names": 5}, "job names must be non-empty strings"),
        ("orchestra_pause_tags", {}, "needs tags"),
        ("orchestra_pause_tags", {"tags": 3}, "needs tags"),
        ("orchestra_jobs", {"state": "x"}, "orchestra_jobs takes no arguments; unexpected argument(s): 'state'"),
        ("orchestra_delete", {}, "unknown orchestra command 'orchestra_delete'"),
        ("orchestra_run", {"names": ["a"]}, "orchestra_run takes 'name'; unexpected argument(s): 'names'"),
        ("orchestra_run", {"name": ["a"]}, "orchestra_run needs one job name (orchestra_run NAME), got "),
        ("orchestra_enable", {}, "orchestra_enable needs at least one job name"),
    ],
)
def test_parse_command_errors(method: str, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(control.CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        control.parse_command(method, arguments)


# ---------------------------------------------------------------------------- Celery's own CLI, in process


@pytest.fixture
def cli_app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module holding a memory:// app, for `celery -A`."""
    name = f"remote_cli_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from celery import Celery\n"
        "app = Celery('remote_cli', broker='memory://')\n"
        "app.conf.broker_transport_options = {'polling_interval': 0.01}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def run_celery(argv: list[str]) -> Any:
    return CliRunner().invoke(celery_cli, argv, catch_exceptions=False)


def test_celery_control_reaches_the_node(cli_app_module: str, node: OrchestraNode, store: JobStore) -> None:
    result = run_celery(
        ["-A", cli_app_module, "control", "-t", str(REPLY_TIMEOUT), "-d", node.hostname, "orchestra_pause", "heartbeat"]
    )
    assert result.exit_code == 0, result.output
    assert f"{node.hostname}: OK" in result.output
    assert "paused: heartbeat" in result.output
    assert paused_names(store) == {"heartbeat"}

    result = run_celery(
        [
            "-A",
            cli_app_module,
            "control",
            "-t",
            str(REPLY_TIMEOUT),
            "-d",
            node.hostname,
            "orchestra_pause_tags",
            "io,reports",
            "all",
        ]
    )
    assert result.exit_code == 0, result.output
    assert f"{node.hostname}: ERROR" in result.output
    assert "no job has all of the tags io, reports" in result.output


def test_celery_control_runs_a_job_through_the_active_beats_node(
    cli_app_module: str, node: OrchestraNode, store: JobStore
) -> None:
    assert store.acquire_lease(BeatIdentity("beat-a", "host-1", 101, "0.1.0"), timedelta(seconds=30)) is not None
    argv = ["-A", cli_app_module, "control", "-t", str(REPLY_TIMEOUT), "-d", node.hostname, "orchestra_run", "cleanup"]
    result = run_celery(argv)
    assert result.exit_code == 0, result.output
    [(job, task_id)] = manual_runs(store)
    assert job == "cleanup"
    assert result.output.splitlines() == [
        f"->  {node.hostname}: OK",
        f"        requested a run of cleanup now, task id {task_id}",
    ]


def test_celery_control_json_output(cli_app_module: str, node: OrchestraNode) -> None:
    result = run_celery(
        [
            "-A",
            cli_app_module,
            "control",
            "--json",
            "-t",
            str(REPLY_TIMEOUT),
            "-d",
            node.hostname,
            "orchestra_resume_tags",
            "fast",
        ]
    )
    assert result.exit_code == 0, result.output
    assert f'[{{"{node.hostname}": {{"ok": "not paused: heartbeat (jobs with tag fast)"}}}}]' in result.output


def test_celery_inspect_orchestra_jobs(cli_app_module: str, node: OrchestraNode, store: JobStore) -> None:
    store.set_paused(["nightly-report"], True)
    result = run_celery(
        ["-A", cli_app_module, "inspect", "-t", str(REPLY_TIMEOUT), "-d", node.hostname, "orchestra_jobs"]
    )
    assert result.exit_code == 0, result.output
    assert f"{node.hostname}: OK" in result.output
    assert '"nightly-report"' in result.output
    assert '"state": "Paused"' in result.output
    assert "1 node online." in result.output


def test_celery_control_lists_the_commands(cli_app_module: str) -> None:
    result = run_celery(["-A", cli_app_module, "control", "--list"])
    assert result.exit_code == 0, result.output
    assert "orchestra_pause NAME [NAME ...]" in result.output
    assert "orchestra_resume_tags TAG[,TAG...] [any|all]" in result.output
    result = run_celery(["-A", cli_app_module, "inspect", "--list"])
    assert "orchestra_jobs" in result.output


# ---------------------------------------------------------------------------- hostile messages


def publish_raw(app: Celery, node: OrchestraNode, body: dict[str, Any], headers: dict[str, Any]) -> None:
    """Put a request on the node's queue as any broker client could, bypassing kombu's Mailbox."""
    with app.connection_for_write() as connection:
        mailbox = app.control.mailbox(connection)
        exchange = mailbox._get_exchange(mailbox.namespace, "fanout")
        producer = connection.Producer(serializer="json")
        producer.publish(body, exchange=exchange, headers=headers, declare=[exchange])


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"method": "orchestra_pause", "arguments": {"names": ["heartbeat"]}}, {"expires": "abc"}),
        ({"method": "orchestra_pause", "arguments": {"names": ["heartbeat"]}}, {"expires": float("nan")}),
        ({"method": "orchestra_pause", "arguments": {"names": ["heartbeat"]}}, {"clock": "abc"}),
        ({"method": "orchestra_pause", "arguments": ["heartbeat"]}, {}),
        ({"method": "orchestra_pause", "arguments": {"names": ["heartbeat"]}, "reply_to": "nowhere"}, {}),
        ({"method": "orchestra_pause", "arguments": {"names": ["heartbeat"]}, "destination": 5}, {}),
        ({"method": ["orchestra_pause"], "arguments": {"names": ["heartbeat"]}}, {}),
    ],
)
def test_a_malformed_request_is_dropped_with_one_warning_and_the_node_stays_up(
    app: Celery,
    node: OrchestraNode,
    store: JobStore,
    caplog: pytest.LogCaptureFixture,
    body: dict[str, Any],
    headers: dict[str, Any],
) -> None:
    caplog.set_level(logging.INFO, logger="celery_orchestra.remote")
    publish_raw(app, node, body, headers)
    assert answer(app, node, "ping") == {"ok": "pong"}  # delivered after the malformed request
    assert paused_names(store) == set()
    lines = [record.getMessage() for record in caplog.records if record.name == "celery_orchestra.remote"]
    assert not any("lost the broker" in line or "listening as" in line for line in lines), lines  # no reconnect
    warnings = [r for r in caplog.records if r.name == "celery_orchestra.remote" and r.levelno >= logging.WARNING]
    if isinstance(body["method"], str):
        assert len(warnings) == 1 and "dropping a malformed orchestra_pause request" in warnings[0].getMessage()
    assert all(record.exc_info is None for record in caplog.records)


def test_an_undecodable_message_is_dropped_with_one_warning(
    app: Celery, node: OrchestraNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with app.connection_for_write() as connection:
        mailbox = app.control.mailbox(connection)
        exchange = mailbox._get_exchange(mailbox.namespace, "fanout")
        connection.Producer().publish(
            b"{not json", exchange=exchange, content_type="application/json", content_encoding="utf-8"
        )
    assert answer(app, node, "ping") == {"ok": "pong"}
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(messages) == 1 and "cannot be decoded" in messages[0], messages
    assert not any("lost the broker" in message for message in messages)


def test_the_reconnect_delay_starts_afresh_after_a_connection_that_worked(
    monkeypatch: pytest.MonkeyPatch, store: JobStore
) -> None:
    node = OrchestraNode(memory_app("flaky"), store=store, on_change=lambda: None, hostname="orchestra-flaky@%h")
    # Two failed connections, one that listened and then broke, then a failure: delays 1, 2, then 1 again.
    outcomes = iter([False, False, True, False])
    delays: list[float] = []

    def consume(_node: Any) -> None:
        if next(outcomes):
            node._listened = True
        raise ConnectionError("broker gone")

    def wait(delay: float) -> bool:
        delays.append(delay)
        if len(delays) == 4:
            node._stopping.set()
        return node._stopping.is_set()

    monkeypatch.setattr(node, "_consume", consume)
    monkeypatch.setattr(node._stopping, "wait", wait)
    node._serve()
    assert delays == [1.0, 2.0, 1.0, 2.0]


def test_control_arguments_reach_the_log_visible_and_shortened(
    app: Celery, node: OrchestraNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hostile = "\x1b[2J\nFAKE celery-orchestra: all jobs resumed " + "x" * 5000
    reply = answer(app, node, "orchestra_pause_tags", tags="fast", match=hostile)
    assert "\x1b" not in reply["error"] and "\n" not in reply["error"]
    assert len(reply["error"]) < 300
    [line] = [
        r.getMessage() for r in caplog.records if r.name == "celery_orchestra.remote" and "refused" in r.getMessage()
    ]
    assert "\x1b" not in line and "\n" not in line
    assert "\\x1b[2J" in line and "more characters" in line
    assert len(line) < 400


def test_worker_answers_nothing_when_remote_control_is_off(tmp_path: Path, store: JobStore) -> None:
    worker_app = memory_app("off-worker")
    worker_app.conf.orchestra_database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    worker_app.conf.orchestra_remote_control = False
    state = AttributeDict(app=worker_app, hostname="celery@test")
    reply = Panel.data["orchestra_pause"](state, names=["heartbeat"])
    assert reply == {
        "error": "orchestra_pause: remote control of celery-orchestra is off (orchestra_remote_control = False)"
    }
    assert paused_names(store) == set()
