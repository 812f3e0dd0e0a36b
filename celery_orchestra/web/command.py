"""``celery orchestra serve``: the click command, registered on the ``orchestra`` group by
:mod:`celery_orchestra.cli`.

Every ``celery`` process imports the group (Celery loads its command plugins at start), so this
module imports nothing heavy: FastAPI, uvicorn and the store are imported when ``serve`` runs,
and their absence is one line naming the ``web`` extra.
"""

from __future__ import annotations

from typing import Any

import click
from celery.bin.base import CeleryCommand

from ..ops.cli import CommandFailed, app_timezone, one_line_errors, opened_store, preload, store_options

__all__ = ["serve"]


@click.command(cls=CeleryCommand)
@click.option(
    "--bind",
    default="127.0.0.1:5000",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen. Anything but loopback needs a token.",
)
@click.option(
    "--token-file",
    metavar="PATH",
    default=None,
    help="A file holding the API token (overrides the orchestra_api_token setting).",
)
@click.option(
    "--read-only-token-file",
    metavar="PATH",
    default=None,
    help="A file holding a second token that may only read (GET); overrides orchestra_api_read_only_token.",
)
@store_options
@click.pass_context
@preload
@one_line_errors
def serve(
    ctx: click.Context,
    /,
    bind: str,
    token_file: str | None,
    read_only_token_file: str | None,
    schedule_filename: str | None,
    database_url: str | None,
    **kwargs: Any,
) -> None:
    """Serve the HTTP API (JSON, OpenAPI at /openapi.json, Swagger UI at /docs, metrics at /metrics).

    Needs `pip install 'celery-orchestra[web]'`. It reads and writes the store, so it works whether
    beat runs or not; a running beat applies changes within its poll interval.
    """
    try:
        from .app import ApiConfig, create_app
        from .serve import access_from, parse_bind, run
    except ImportError as error:
        raise CommandFailed(
            f"the HTTP API needs the web extra: pip install 'celery-orchestra[web]' ({error})"
        ) from None
    from ..settings import read_api_settings

    app = ctx.obj.app
    settings = read_api_settings(app.conf)
    where = parse_bind(bind)
    access = access_from(settings, where, token_file=token_file, read_only_token_file=read_only_token_file)
    with opened_store(ctx, schedule_filename, database_url) as store:
        config = ApiConfig(
            access=access,
            cors_origins=settings.cors_origins,
            max_body=settings.max_body,
            health_max_age=settings.health_max_age,
            default_timezone=app_timezone(ctx),
        )
        web = create_app(store, celery_app=app, config=config)
        mode = "no token (loopback only)" if access.open else "token required"
        click.echo(f"celery-orchestra API on http://{where}/ ({mode}), store {store.safe_url}; docs at /docs", err=True)
        run(web, where)
