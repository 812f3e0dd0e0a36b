"""A graceful stop: SIGTERM and SIGINT wait for the pass in flight, then stop beat as Celery would.

Celery's beat handles both signals by syncing the scheduler (``Scheduler.close``) inside the
handler and raising ``SystemExit`` wherever the main thread happens to be. In the middle of a
batch that is the worst place: between claiming runs and publishing them, or between publishing
and confirming them, with the database connection closed under the send.

So while a pass (``tick``) runs, a first stop signal is only noted; when the pass ends the handler
that was installed before ours (Celery's) runs, which closes the scheduler and raises
``SystemExit`` at a point where every claimed run is settled. Outside a pass (beat sleeps between
passes) a signal goes straight to that handler, as before. Neither does a second signal during
the same pass wait, nor the first one for longer than :data:`STOP_DEADLINE`: a pass stuck on an
unreachable broker must not make a stop wait for ever, and a supervisor's kill (Docker's comes
10 s after its SIGTERM) should find the claims of the pass already settled.

While the scheduler is being built (loading jobs, waiting for the store) a stop signal stops at
once, without the previous handler: Celery's would build the scheduler a second time, inside the
handler, only to close it.

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

__all__ = ["STOP_DEADLINE", "STOP_SIGNALS", "GracefulStop"]

logger = logging.getLogger("celery_orchestra.scheduler")

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

#: Seconds a stop signal waits for the pass in flight before it takes effect regardless.
STOP_DEADLINE: Final = 8.0

Handler = Callable[[int, FrameType | None], Any] | int | None


class GracefulStop:
    """Defers stop signals received during a pass to the end of that pass."""

    def __init__(self, deadline: float = STOP_DEADLINE) -> None:
        self._deadline = deadline
        self._previous: dict[int, Handler] = {}
        self._in_pass = False
        self._starting = False
        self._pending: int | None = None
        self._overdue: threading.Timer | None = None

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
    def starting(self) -> Iterator[None]:
        """Build the scheduler: a stop signal received meanwhile raises ``SystemExit`` at once."""
        self._starting = True
        try:
            yield
        finally:
            self._starting = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Run a pass: a stop signal received meanwhile takes effect when it ends (or at the deadline)."""
        self._in_pass = True
        try:
            yield
        finally:
            self._in_pass = False
            overdue, self._overdue = self._overdue, None
            if overdue is not None:
                overdue.cancel()
            pending, self._pending = self._pending, None
            if pending is not None:
                self._deliver(pending, None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._starting:
            if self._previous.get(signum) == signal.SIG_IGN:
                return
            logger.warning("celery-orchestra: %s received while starting: stopping", signal.Signals(signum).name)
            raise SystemExit()
        if self._in_pass and self._pending is None:
            self._pending = signum
            logger.warning(
                "celery-orchestra: %s received: finishing the runs in flight (at most %g s), then stopping",
                signal.Signals(signum).name,
                self._deadline,
            )
            self._overdue = threading.Timer(self._deadline, self._signal_again, (signum,))
            self._overdue.daemon = True
            self._overdue.start()
            return
        self._deliver(signum, frame)

    def _signal_again(self, signum: int) -> None:
        """The pass outlived the deadline: the signal again, now taken as a second one."""
        logger.warning(
            "celery-orchestra: the pass in flight has not finished %g s after %s: stopping now",
            self._deadline,
            signal.Signals(signum).name,
        )
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signum)

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
