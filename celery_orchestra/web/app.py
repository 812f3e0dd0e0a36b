"""The HTTP API as a FastAPI app: :func:`create_app` over an open store (and the Celery app).

Each route calls the operator function the CLI calls for the same command (``list_jobs_page``,
``add_job``, ``pause_job``...) and returns that function's ``as_dict()``: one implementation,
one representation. Routes are plain functions, run in FastAPI's thread pool, because the store
blocks. Task names are strings kept in the store: nothing is imported because a request names it.

``/`` is the dashboard (:mod:`.dashboard`), a client of these routes like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from ..errors import ControlError, OrchestraError
from ..ops import api, jobs_api
from ..ops.liveness import beat_liveness
from ..ops.snapshot import JobsSnapshot
from ..store import JobStore
from . import models
from .dashboard import mount_dashboard
from .metrics import ApiMetrics
from .problems import PROBLEM_JSON, error_problem, install_handlers, problem
from .security import Access, AccessDenied, BodyLimit, OpenAccessGuard

__all__ = ["DEFAULT_MAX_BODY", "ApiConfig", "create_app"]

#: Request bodies up to this many bytes (a job's definition is a few hundred).
DEFAULT_MAX_BODY: Final = 1024 * 1024
#: Jobs per page unless ``limit`` says otherwise, and the most one page may hold.
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
#: Error statuses any API route may answer, each as problem+json.
_ERRORS: Final = (400, 401, 403, 404, 409, 413, 422, 503)


@dataclass(frozen=True)
class ApiConfig:
    """How the API is served: its tokens, CORS origins, body limit and health threshold."""

    access: Access = field(default_factory=Access)
    #: Origins allowed to call the API from a browser page of another origin; none by default.
    cors_origins: tuple[str, ...] = ()
    max_body: int = DEFAULT_MAX_BODY
    #: ``/api/health`` is 200 when the active beat ticked at most this many seconds ago.
    health_max_age: float = 30.0
    #: The zone of jobs that name none (default: the Celery app's ``timezone``, else UTC).
    default_timezone: str | None = None


def create_app(store: JobStore, *, celery_app: Any = None, config: ApiConfig | None = None) -> FastAPI:
    """The HTTP API over ``store`` (left open; the caller closes it).

    With ``celery_app``, runs carry their outcomes from its result backend, and jobs without a zone
    use its ``timezone``.
    """
    config = config or ApiConfig()
    zone = config.default_timezone
    if zone is None and celery_app is not None and celery_app.conf.get("timezone"):
        zone = str(celery_app.conf.get("timezone"))
    app = FastAPI(
        title="celery-orchestra",
        version=_version(),
        summary="Jobs, runs and beats of a celery-orchestra store.",
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(app)
    app.add_exception_handler(AccessDenied, _access_denied)
    _docs(app)
    mount_dashboard(app)
    metrics = ApiMetrics(store, celery_app=celery_app, default_timezone=zone)
    authorised = [Depends(config.access)]
    router = APIRouter(prefix="/api", dependencies=[*authorised, Depends(_no_nul)])
    _routes(router, store, celery_app, zone)
    app.include_router(router)
    _open_routes(app, store, config, metrics, authorised)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if config.access.open:
        app.add_middleware(OpenAccessGuard, allowed_origins=config.cors_origins)
    app.add_middleware(BodyLimit, max_bytes=config.max_body)
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("celery-orchestra")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


async def _access_denied(request: Request, error: Exception) -> Response:
    assert isinstance(error, AccessDenied)
    headers = {"WWW-Authenticate": 'Bearer realm="celery-orchestra"'} if error.status == 401 else None
    return problem(error.status, error.detail, headers=headers)


# ---------------------------------------------------------------------------- routes


def _no_nul(request: Request) -> None:
    """Refuse a NUL character in the path or the query (the body's fields refuse it by pattern):
    PostgreSQL cannot hold one in text, and no job name or tag has one."""
    if "\x00" in request.url.path or any("\x00" in value for _, value in request.query_params.multi_items()):
        raise ControlError("the request's path or query contains a NUL character (\\x00), which no name may hold")


JobName = Annotated[str, Path(min_length=1, max_length=200, description="The job's name.")]


def _routes(router: APIRouter, store: JobStore, celery_app: Any, zone: str | None) -> None:
    _listing_routes(router, store, celery_app, zone)
    _job_routes(router, store, celery_app, zone)
    _other_routes(router, store, celery_app, zone)


def _listing_routes(router: APIRouter, store: JobStore, celery_app: Any, zone: str | None) -> None:
    snapshot = JobsSnapshot(store)  # a state filter needs every row: it reads those written since last time

    @router.get("/jobs", response_model=models.JobListOut, summary="List jobs (filtered, paged, by name)")
    def list_jobs(
        tag: Annotated[list[str], Query(description="Jobs with this tag (repeatable).")] = [],  # noqa: B006
        any_tag: Annotated[bool, Query(description="With several tags: any of them (else all).")] = True,
        state: Annotated[list[str], Query(description="Jobs in this state (repeatable): Running, Paused...")] = [],  # noqa: B006
        owner: Annotated[Literal["config", "runtime"] | None, Query()] = None,
        q: Annotated[str | None, Query(max_length=200, description="Name contains (case-insensitive).")] = None,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> dict[str, Any]:
        page = api.list_jobs_page(
            store,
            tags=tag,
            any_tag=any_tag,
            states=state,
            owner=owner,
            name_contains=q,
            offset=offset,
            limit=limit,
            default_timezone=zone,
            app=celery_app,
            snapshot=snapshot,
        )
        following = offset + len(page.jobs)
        return {
            "jobs": [job.as_dict() for job in page.jobs],
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "next_offset": following if following < page.total else None,
        }

    @router.post("/jobs", status_code=201, response_model=models.JobOut, summary="Add a job at runtime")
    def add_job(body: models.JobCreate, request: Request, response: Response) -> Any:
        expression = body.schedule if isinstance(body.schedule, str) else None
        try:
            job = jobs_api.add_job(
                store,
                body.name,
                body.task,
                _schedule_value(body.schedule),
                args=body.args,
                kwargs=body.kwargs,
                options=body.options,
                timezone=body.timezone,
                tags=body.tags,
                enabled=body.enabled,
                default_timezone=zone,
                app=celery_app,
            )
        except OrchestraError as error:
            return error_problem(error, request, expression=expression)
        response.headers["Location"] = f"/api/jobs/{quote(job.name, safe='')}"
        return job.as_dict()

    for action in ("pause", "resume", "enable", "disable"):
        _register_bulk_change(router, store, action)


def _ends_in_an_encoded_slash_runs(request: Request) -> bool:
    """Whether the path as sent ends in ``%2Fruns``: Starlette decodes ``%2F`` before routing, so
    the runs route also receives ``GET /api/jobs/x%2Fruns``, which names the job ``x/runs``."""
    raw = request.scope.get("raw_path") or b""
    return bool(raw.lower().endswith(b"%2fruns"))


def _job_routes(router: APIRouter, store: JobStore, celery_app: Any, zone: str | None) -> None:
    # Before GET /jobs/{name}: a path parameter takes slashes, so it would take "x/runs" too.
    @router.get("/jobs/{name:path}/runs", response_model=models.RunListOut, summary="A job's runs, newest first")
    def job_runs(
        request: Request,
        name: JobName,
        state: Annotated[
            list[str], Query(description="Runs whose result is this (repeatable): SUCCESS, FAILURE, sent...")
        ] = [],  # noqa: B006
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page.")] = None,
    ) -> Any:
        if _ends_in_an_encoded_slash_runs(request):  # GET /api/jobs/x%2Fruns: the job named "x/runs"
            job = jobs_api.get_job(store, f"{name}/runs", default_timezone=zone, app=celery_app).as_dict()
            return JSONResponse(models.JobOut.model_validate(job).model_dump(mode="json"))
        before = _cursor_time(cursor)
        runs = api.job_history(store, name, limit, before=before, default_timezone=zone, app=celery_app)
        wanted = {value.casefold() for value in state}
        shown = [run for run in runs if not wanted or run.result.casefold() in wanted]
        following = runs[-1].fire_time.astimezone(UTC).isoformat() if len(runs) == limit else None
        return {"runs": [_run_dict(run) for run in shown], "next_cursor": following}

    @router.get("/jobs/{name:path}", response_model=models.JobOut, summary="One job, with its newest run")
    def get_job(name: JobName) -> dict[str, Any]:
        return jobs_api.get_job(store, name, default_timezone=zone, app=celery_app).as_dict()

    @router.patch("/jobs/{name:path}", response_model=models.JobOut, summary="Change a job added at runtime")
    def update_job(name: JobName, body: models.JobUpdate, request: Request) -> Any:
        given = {key: getattr(body, key) for key in body.model_fields_set}
        for key in ("task", "schedule", "args", "kwargs", "options", "tags", "enabled"):
            if key in given and given[key] is None:
                raise ControlError(f"{key} cannot be null (leave it out to keep the job's {key})")
        expression = given.get("schedule") if isinstance(given.get("schedule"), str) else None
        if "schedule" in given:
            given["schedule"] = _schedule_value(given["schedule"])
        try:
            return jobs_api.update_job(store, name, **given, default_timezone=zone, app=celery_app).as_dict()
        except OrchestraError as error:
            return error_problem(error, request, expression=expression)

    @router.delete("/jobs/{name:path}", response_model=models.RemovedOut, summary="Remove a job added at runtime")
    def remove_job(name: JobName) -> dict[str, Any]:
        return {"name": name, "removed": jobs_api.remove_job(store, name)}

    for action in ("pause", "resume", "enable", "disable"):
        _register_change(router, store, action)

    @router.post("/jobs/{name:path}/run", status_code=202, response_model=models.RunOut, summary="Run a job once now")
    def run_job(name: JobName) -> dict[str, Any]:
        return jobs_api.run_job_now(store, name, default_timezone=zone).as_dict()


def _other_routes(router: APIRouter, store: JobStore, celery_app: Any, zone: str | None) -> None:
    @router.get("/runs/{task_id}", response_model=models.RunOut, summary="One run, by its Celery task id")
    def get_run(task_id: Annotated[str, Path(min_length=1, max_length=200)]) -> dict[str, Any]:
        return _run_dict(api.find_run(store, task_id, default_timezone=zone, app=celery_app))

    @router.get("/tags", response_model=list[models.TagOut], summary="Every tag, with its number of jobs")
    def tags() -> list[dict[str, Any]]:
        return [{"tag": tag, "jobs": count} for tag, count in api.tag_counts(store).items()]

    @router.get("/beats", response_model=models.LivenessOut, summary="The beats: which is active, when each ticked")
    def beats() -> dict[str, Any]:
        liveness = beat_liveness(store)
        return {**liveness.as_dict(), "summary": liveness.summary()}


def _register_change(router: APIRouter, store: JobStore, action: str) -> None:
    change: Callable[[Any, str], api.ChangeResult] = getattr(api, f"{action}_job")

    def one(name: JobName) -> dict[str, Any]:
        return _change_dict(change(store, name))

    router.add_api_route(
        f"/jobs/{{name:path}}/{action}",
        one,
        methods=["POST"],
        response_model=models.ChangeOut,
        summary=f"{action.capitalize()} one job",
        name=f"{action}_job",
    )


def _register_bulk_change(router: APIRouter, store: JobStore, action: str) -> None:
    def many(body: models.BulkSelection) -> dict[str, Any]:
        return _change_many(store, action, body)

    router.add_api_route(
        f"/jobs/{action}",
        many,
        methods=["POST"],
        response_model=models.ChangeOut,
        summary=f"{action.capitalize()} jobs by names or tags",
        name=f"{action}_jobs",
    )


def _change_many(store: JobStore, action: str, body: models.BulkSelection) -> dict[str, Any]:
    if (body.names is None) == (body.tags is None):
        raise ControlError('give either "names" or "tags" (with "any_tag"), not both and not neither')
    if body.names is not None:
        result = getattr(api, f"{action}_jobs")(store, body.names)
    else:
        result = getattr(api, f"{action}_jobs_with_tags")(store, body.tags, any_tag=body.any_tag)
    return _change_dict(result)


def _change_dict(result: api.ChangeResult) -> dict[str, Any]:
    return {**result.as_dict(), "description": result.describe()}


def _run_dict(run: api.RunInfo) -> dict[str, Any]:
    return run.as_dict()


def _cursor_time(cursor: str | None) -> datetime | None:
    if cursor is None:
        return None
    try:
        moment = datetime.fromisoformat(cursor)
    except ValueError:
        raise ControlError(f"cursor must be the next_cursor of a page (an ISO 8601 time), got {cursor!r}") from None
    if moment.utcoffset() is None:
        raise ControlError(f"cursor must be the next_cursor of a page (with its UTC offset), got {cursor!r}")
    return moment


def _schedule_value(schedule: models.Schedule) -> Any:
    """The request's schedule as ``add_job`` takes it: a timing string, seconds, or Celery's crontab or solar."""
    if isinstance(schedule, str):
        return schedule
    if isinstance(schedule, models.IntervalSchedule):
        seconds = schedule.interval
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(schedule, models.CrontabSchedule):
        from celery.schedules import crontab

        try:
            return crontab(**schedule.crontab.model_dump())
        except Exception as error:  # Celery raises ValueError, TypeError or IndexError for bad fields
            raise ControlError(f"invalid crontab {schedule.crontab.model_dump()}: {error}") from None
    from celery.exceptions import ImproperlyConfigured
    from celery.schedules import solar

    fields = schedule.solar
    try:
        return solar(fields.event, fields.lat, fields.lon)
    except (ImproperlyConfigured, ImportError):
        raise ControlError(
            "solar schedules need the 'ephem' package on the server: pip install 'celery-orchestra[solar]'"
        ) from None
    except ValueError as error:
        raise ControlError(f"invalid solar schedule: {error}") from None


# ---------------------------------------------------------------------------- health, metrics, docs


def _open_routes(app: FastAPI, store: JobStore, config: ApiConfig, metrics: ApiMetrics, authorised: list[Any]) -> None:
    @app.get(
        "/api/health",
        response_model=models.HealthOut,
        summary="200 when the active beat ticked recently, else 503 (no token needed)",
        responses={503: {"model": models.HealthOut, "description": "No active beat ticked recently"}},
    )
    def health() -> Any:
        try:
            liveness = beat_liveness(store)
        except OrchestraError as error:
            body = {"healthy": False, "summary": " ".join(str(error).split()), "max_age_seconds": config.health_max_age}
            return JSONResponse(body, status_code=503)
        healthy = liveness.healthy(config.health_max_age)
        body = {"healthy": healthy, "summary": liveness.summary(), "max_age_seconds": config.health_max_age}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=authorised,
        summary="Prometheus metrics, read from the store at each scrape",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)


_STATIC: Final = "/docs/static"


def _docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from files installed with the package (no CDN: it works offline)."""
    from pathlib import Path as FilePath

    import fastapi_offline

    files = FilePath(fastapi_offline.__file__).parent / "static"
    app.mount(_STATIC, StaticFiles(directory=files), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="celery-orchestra API",
            swagger_js_url=f"{_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{_STATIC}/favicon.png",
        )


def _openapi_with_problems(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema with every error response documented as problem+json (RFC 9457)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in (
            models.Problem.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items()
        ):
            components[name] = definition
        problem_schema = models.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        problem_schema.pop("$defs", None)
        components["Problem"] = problem_schema
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        reference = {"$ref": "#/components/schemas/Problem"}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status in (422,) if path == "/api/health" else _ERRORS:
                    responses[str(status)] = {
                        "description": _ERROR_TEXT[status],
                        "content": {PROBLEM_JSON: {"schema": reference}},
                    }
        app.openapi_schema = schema
        return schema

    return openapi


_ERROR_TEXT: Final = {
    400: "The request body cannot be read (not UTF-8 JSON)",
    401: "No token, or a wrong one",
    403: "The read-only token on a request that changes something",
    404: "No such job, run or tag",
    409: "The job's owner or state forbids the change (a configured job, a removed one)",
    413: "The request body is too large",
    422: "The request is not valid (a bad timing, zone, field, filter)",
    503: "The store cannot be reached",
}
