"""Errors as RFC 9457 ``application/problem+json``, carrying the CLI's messages.

Every error the operator functions raise on purpose maps to one status here (:func:`status_of`),
so a wrong request never becomes a 500: an unknown job is 404 with "did you mean", a bad timing
422 with its line, column and caret text, a job its owner or state keeps from the change 409, a
database that cannot be reached 503. FastAPI's own validation errors and Starlette's HTTP errors
(404 for an unknown route, 405) are answered in the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BrokerUnavailableError,
    ConfigProblem,
    InvalidJobError,
    JobConflictError,
    JobNotFound,
    JobSpecError,
    NoMatchingJobsError,
    NoSuchJobError,
    NoSuchRunError,
    OrchestraError,
    StoreError,
    StoreNotFoundError,
    TimingError,
    shortened,
)
from ..ops.text import visible, visible_lines

__all__ = ["PROBLEM_JSON", "ProblemResponse", "install_handlers", "problem", "status_of"]

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
#: At most this many request validation errors are listed in one problem.
_LISTED: Final = 20


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    problems: Sequence[Mapping[str, Any]] | None = None,
    suggestions: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """A problem+json response; ``detail`` is shown with control characters made visible."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": visible_lines(detail),
    }
    if instance is not None:
        body["instance"] = instance
    if problems is not None:
        body["problems"] = list(problems)
    if suggestions:
        body["suggestions"] = dict(suggestions)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def status_of(error: OrchestraError) -> int:
    """The HTTP status of an error the operator functions raise on purpose."""
    if isinstance(error, JobNotFound | NoSuchRunError | NoMatchingJobsError):
        return 404
    if isinstance(error, JobSpecError):
        return 422
    if isinstance(error, JobConflictError | InvalidJobError):
        return 409
    if isinstance(error, StoreNotFoundError | StoreError | BrokerUnavailableError):
        return 503
    return 422  # every other deliberate error is about the input: a bad timing, zone, tag, limit...


def error_problem(error: OrchestraError, request: Request, *, expression: str | None = None) -> ProblemResponse:
    """The problem for ``error``; ``expression`` is the timing string the request gave, if any
    (it places a bad timing's line)."""
    status = status_of(error)
    detail = str(error)
    if status == 503:
        log.warning("%s %s: %s", request.method, request.url.path, " ".join(detail.split()))
    suggestions = error.suggestions if isinstance(error, NoSuchJobError) else None
    items = _items(error, expression)
    # One line, as the CLI prints it; the located items keep the multi-line caret text.
    return problem(status, " ".join(detail.split()) if items else detail, problems=items, suggestions=suggestions)


def _items(error: OrchestraError, expression: str | None) -> list[dict[str, Any]] | None:
    if isinstance(error, JobSpecError):
        return [_config_item(item, expression) for item in error.problems]
    if isinstance(error, TimingError):
        return [
            {"message": error.reason, "line": error.line, "column": error.column, "text": visible_lines(str(error))}
        ]
    return None


def _config_item(item: ConfigProblem, expression: str | None) -> dict[str, Any]:
    column = item.excerpt_column if item.excerpt_column is not None else item.column
    line = item.line
    if item.excerpt is not None and line is None:
        # A runtime job's problem has no file line; a timing's excerpt is one line of the expression.
        lines = expression.split("\n") if expression is not None else []
        line = lines.index(item.excerpt) + 1 if item.excerpt in lines else 1
    return {
        "message": visible(item.message),
        "job": item.job,
        "line": line,
        "column": column,
        "text": visible_lines(item.format()),
    }


async def _orchestra_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, OrchestraError)
    return error_problem(error, request)


async def _validation_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)
    found = list(error.errors())
    items = [
        {"message": shortened(str(entry.get("msg", "invalid")), 200), "field": _field(entry.get("loc", ()))}
        for entry in found[:_LISTED]
    ]
    listed = "; ".join(f"{item['field']}: {item['message']}" for item in items[:5])
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return problem(422, f"invalid request: {listed}{more}", problems=items)


def _field(location: Sequence[Any]) -> str:
    return shortened(".".join(str(part) for part in location), 200)


async def _http_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    return problem(error.status_code, detail, headers=error.headers)


async def _unexpected(request: Request, error: Exception) -> ProblemResponse:
    # A bug, not the request's fault: logged with its traceback, answered without internals.
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return problem(500, "internal error: the server's log has the details")


def install_handlers(app: Any) -> None:
    """Answer every error raised while handling a request of ``app`` (a FastAPI app) as problem+json."""
    app.add_exception_handler(OrchestraError, _orchestra_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
