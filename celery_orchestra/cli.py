"""``celery_orchestra.cli:orchestra``: the ``celery.commands`` entry point users and packagers name.

The commands live in :mod:`celery_orchestra.ops.cli`; this path is kept because entry points and
scripts refer to it.
"""

from __future__ import annotations

from .ops.cli import orchestra

__all__ = ["orchestra"]
