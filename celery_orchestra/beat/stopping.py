"""A graceful stop: SIGTERM and SIGINT wait for the pass in flight, then stop beat as Celery would.

Celery's beat handles both signals by syncing the scheduler (``Scheduler.close``) inside the
handler and raising ``SystemExit`` wherever the main thread happens to be. In the middle of a
batch that is the worst place: between claiming runs and publishing them, or between publishing
and confirming them, with the database connection closed under the send.

So while a pass (``tick``) runs, a first stop signal is only noted; when the pass ends the handler
that was installed before ours (Celery's) runs, which closes the scheduler and raises
``SystemExit`` at a point where every claimed run is settled. Outside a pass (beat sleeps between
passes) a signal goes straight to that handler, as before. A second signal during the same pass
does not wait: a pass stuck on an unreachable broker must not make a stop wait for ever.

Only the main thread can install signal handlers: beat embedded in a worker thread keeps Celery's.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Final

__all__ = ["STOP_SIGNALS", "GracefulStop"]

logger = logging.getLogger("celery_orchestra.scheduler")

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any] | int | None


class GracefulStop:
    """Defers stop signals received during a pass to the end of that pass."""

    def __init__(self) -> None:
        self._previous: dict[int, Handler] = {}
        self._in_pass = False
        self._pending: int | None = None

    def install(self) -> None:
        """Put our handler in front of the current ones (main thread only; idempotent)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        """Give the signals back to the handlers found at :meth:`install`."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Run a pass: a stop signal received meanwhile takes effect when it ends."""
        self._in_pass = True
        try:
            yield
        finally:
            self._in_pass = False
            pending, self._pending = self._pending, None
            if pending is not None:
                self._deliver(pending, None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._in_pass and self._pending is None:
            self._pending = signum
            logger.warning(
                "celery-orchestra: %s received: finishing the runs in flight, then stopping",
                signal.Signals(signum).name,
            )
            return
        self._deliver(signum, frame)

    def _deliver(self, signum: int, frame: FrameType | None) -> None:
        handler = self._previous.get(signum, signal.SIG_DFL)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_IGN:
            return
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)
