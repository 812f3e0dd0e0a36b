"""``celery orchestra serve``: the start-up checks, and a real server process answering on loopback."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celery_orchestra.errors import ControlError, SettingsError
from celery_orchestra.settings import ApiSettings, read_api_settings
from celery_orchestra.web.security import Access, check_bind, is_loopback
from celery_orchestra.web.serve import Bind, access_from, parse_bind
from tests.test_cli import Project, celery_process, seed_like_beat, write_app

TOKEN = "serve-token-0123456789abcdef"


# ---------------------------------------------------------------------------- start-up checks


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:5000", Bind("127.0.0.1", 5000)),
        ("localhost", Bind("localhost", 5000)),
        (":8080", Bind("127.0.0.1", 8080)),
        ("[::1]:9000", Bind("::1", 9000)),
        ("0.0.0.0:80", Bind("0.0.0.0", 80)),
    ],
)
def test_parse_bind(text: str, bind: Bind) -> None:
    assert parse_bind(text) == bind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::1:5000", "IPv6 address in brackets"),
        ("host:http", "the port must be a number"),
        ("host:70000", "the port must be a number"),
        ("[::1", "HOST:PORT or [IPv6]:PORT"),
    ],
)
def test_parse_bind_refuses_bad_addresses(text: str, message: str) -> None:
    with pytest.raises(ControlError, match=re.escape(message)):
        parse_bind(text)


def test_loopback_addresses() -> None:
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "10.0.0.1", "example.com"))


def test_binding_beyond_loopback_without_a_token_is_refused() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        with pytest.raises(ControlError, match=f"refusing to listen on {host} without a token"):
            access_from(ApiSettings(), Bind(host, 5000))
    assert access_from(ApiSettings(), Bind("127.0.0.1", 5000)).open
    assert access_from(ApiSettings(token=TOKEN), Bind("0.0.0.0", 5000)) == Access(TOKEN, None)
    with pytest.raises(ControlError, match="without a token"):
        check_bind("0.0.0.0", Access(None, None))


def test_token_files_win_over_settings_and_are_checked(tmp_path: Path) -> None:
    full = tmp_path / "token"
    full.write_text(TOKEN + "\n")
    read_only = tmp_path / "read-token"
    read_only.write_text("read-only-0123456789abcdef")
    access = access_from(
        ApiSettings(token="setting-token-0123456789"),
        Bind("0.0.0.0", 1),
        token_file=str(full),
        read_only_token_file=str(read_only),
    )
    assert access == Access(TOKEN, "read-only-0123456789abcdef")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ControlError, match=r"token file .*empty is empty"):
        access_from(ApiSettings(), Bind("127.0.0.1", 1), token_file=str(tmp_path / "empty"))
    with pytest.raises(ControlError, match="cannot read the token file"):
        access_from(ApiSettings(), Bind("127.0.0.1", 1), token_file=str(tmp_path / "absent"))
    with pytest.raises(ControlError, match="is 5 characters long; use at least 16"):
        access_from(ApiSettings(token="short"), Bind("127.0.0.1", 1))
    with pytest.raises(ControlError, match="must differ"):
        access_from(ApiSettings(token=TOKEN, read_only_token=TOKEN), Bind("127.0.0.1", 1))
    with pytest.raises(ControlError, match="needs an API token too"):
        access_from(ApiSettings(read_only_token=TOKEN), Bind("127.0.0.1", 1))


def test_api_settings_are_read_and_checked() -> None:
    settings = read_api_settings(
        {
            "orchestra_api_token": f" {TOKEN} ",
            "orchestra_api_cors_origins": "https://a.example",
            "orchestra_api_max_body": 4096,
        }
    )
    assert settings == ApiSettings(token=TOKEN, cors_origins=("https://a.example",), max_body=4096)
    with pytest.raises(SettingsError, match="orchestra_api_token must be a non-empty string, got a int"):
        read_api_settings({"orchestra_api_token": 12345})
    with pytest.raises(SettingsError, match="orchestra_api_cors_origins must be a list of origins"):
        read_api_settings({"orchestra_api_cors_origins": [1]})
    with pytest.raises(SettingsError, match="orchestra_api_max_body must be a number from 1024"):
        read_api_settings({"orchestra_api_max_body": 10})


# ---------------------------------------------------------------------------- a real process


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path)
    store_path = tmp_path / "celerybeat-schedule.orchestra.db"
    seed_like_beat(module, store_path)
    yield Project(module, tmp_path, store_path)
    sys.modules.pop(module, None)


def test_serve_refuses_a_public_bind_without_a_token(project: Project) -> None:
    result = celery_process(project, "serve", "--bind", "0.0.0.0:5999")
    assert result.returncode == 2  # bad usage, as every refused option value
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: refusing to listen on 0.0.0.0 without a token: anyone who can reach it could pause, change and "
        "run jobs; set orchestra_api_token or pass --token-file, or bind 127.0.0.1"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def request(url: str, *, token: str | None = None, method: str = "GET", body: Any = None) -> tuple[int, str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    call = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, response.headers["content-type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], json.loads(error.read())


@pytest.mark.slow
def test_a_real_serve_process_answers_on_loopback(project: Project, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.folder), env.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "celery", "-A", project.module, "orchestra", "serve"]
    process = subprocess.Popen(
        [*command, "--bind", f"127.0.0.1:{port}", "--token-file", str(token_file)],
        cwd=project.folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "serve did not listen within 60 s"
                time.sleep(0.1)
        status, kind, body = request(f"{base}/api/jobs")
        assert (status, kind, body["detail"]) == (
            401,
            "application/problem+json",
            "this API needs a token: send the header Authorization: Bearer <token>",
        )
        status, _, body = request(f"{base}/api/jobs", token=TOKEN)
        assert status == 200 and [job["name"] for job in body["jobs"]] == [
            "cleanup",
            "heartbeat",
            "nightly-report",
            "tokyo-lunch",
        ]
        # The app's timezone (Europe/Berlin) is the zone of jobs that name none.
        assert body["jobs"][0]["timezone"] == "Europe/Berlin"
        status, _, body = request(f"{base}/api/jobs/cleanup/pause", token=TOKEN, method="POST")
        assert status == 200 and body["changed"] == ["cleanup"]
        assert project.paused() == {"cleanup"}
        status, _, body = request(f"{base}/api/health")
        assert status == 503 and body["healthy"] is False
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    assert f"celery-orchestra API on http://127.0.0.1:{port}/ (token required)" in stderr
    assert "GET /api/jobs HTTP/1.1" in stdout  # uvicorn's access log: no headers, so no token
    assert TOKEN not in stdout + stderr
