"""The HTTP API (``pip install 'celery-orchestra[web]'``): :func:`create_app` builds it over a store,
``celery orchestra serve`` serves it (:mod:`.serve`)."""

from __future__ import annotations

from .app import ApiConfig, create_app
from .security import Access

__all__ = ["Access", "ApiConfig", "create_app"]
