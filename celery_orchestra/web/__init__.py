"""The HTTP API (``pip install 'celery-orchestra[web]'``): :func:`create_app` builds it over a store,
``celery orchestra serve`` (:mod:`.command`) serves it.

Names are loaded on first use: every ``celery`` process imports :mod:`.command` for the CLI, and
must not need FastAPI to do so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ApiConfig, create_app
    from .security import Access

__all__ = ["Access", "ApiConfig", "create_app"]

_LAZY = {"ApiConfig": ".app", "create_app": ".app", "Access": ".security"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'celery_orchestra.web' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
