"""The web dashboard: two static pages over the HTTP API, mounted on its app by :func:`mount_dashboard`.

The pages hold no data: their scripts (``static/``, plain JavaScript, no build step, nothing
fetched from elsewhere, so it works offline) call ``/api/...`` like any client, with the same
bearer token, so the dashboard needs no authentication, routes or representation of its own and
can show nothing the API would refuse. Serving the files needs no token; the data does.

The pages are sent with a Content-Security-Policy that allows scripts and styles from this server
only and no inline script: even a value that slipped into the page as markup could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "mount_dashboard"]

#: The dashboard's files, installed with the package.
STATIC: Final = Path(__file__).resolve().parent / "static"

_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def mount_dashboard(app: FastAPI) -> None:
    """Serve the status page at ``/``, a job's page at ``/jobs/<name>`` and their files at ``/static``.

    Call it before any other route for ``/`` is added: the first route registered for a path wins.
    """

    @app.get("/", include_in_schema=False)
    def status_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=_HEADERS)

    # A name may hold slashes (sent as %2F, decoded before routing): the page reads it from its URL.
    @app.get("/jobs/{name:path}", include_in_schema=False)
    def job_page(name: str) -> FileResponse:
        return FileResponse(STATIC / "job.html", headers=_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
