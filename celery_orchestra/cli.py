"""``celery_orchestra.cli:orchestra``: the ``celery.commands`` entry point users and packagers name.

The commands live in :mod:`celery_orchestra.ops.cli`, and ``serve`` in
:mod:`celery_orchestra.web.command` (after the operations in the data flow, so the HTTP API builds
on them, never the reverse); this path is kept because entry points and scripts refer to it.
"""

from __future__ import annotations

from .ops.cli import orchestra
from .web.command import serve

orchestra.add_command(serve)

__all__ = ["orchestra"]
