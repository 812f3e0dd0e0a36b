"""Building thousands of objects at once (a status of 10,000 jobs) without the cyclic garbage collector.

A status of 10,000 jobs creates about a million short-lived objects (rows, records, statuses,
cells, segments) while keeping many of them alive until the table is drawn. CPython's cyclic
collector then runs a full pass over every live object each time enough new ones have piled up:
0.3 of the 1.5 CPU seconds of such a status, measured, for nothing, since none of them is part
of a reference cycle waiting to be freed (reference counting frees them as usual). The collector
is paused for the one bounded piece of work and runs again afterwards; never around a loop that
lasts (``status --watch`` pauses it for each refresh, not for the session).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block; left as it was afterwards (also on error)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
