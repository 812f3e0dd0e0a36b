"""The beat process's remote-control node, ``orchestra@<host>``.

Celery's own ``BeatPidbox`` (5.7+) answers only ``ping`` and has no hook for more commands, so the
beat process runs this node itself: a kombu pidbox ``Node`` consumed in its own thread over its own
broker connection (a connection is not thread-safe, and beat's main thread owns its own), like the
worker's ``gPidbox`` loop. It answers the ``orchestra_*`` commands by applying them to the store
through :mod:`celery_orchestra.ops.api` and then calls ``on_change`` so that the scheduler re-reads
the store on its next tick instead of at its next poll.

What it deliberately does not do:

* answer any other command: ``celery inspect active`` and friends stay the workers' business, and a
  reply here would be a confusing ``KeyError`` (kombu replies ``repr(exc)`` for unknown methods);
* run requests that expired: the ``filesystem://`` transport keeps bindings of dead nodes and
  replays their old requests to a restarted node;
* start on a transport without fanout (``sqla+...``): broadcasts never arrive there, so it logs
  one warning saying to use ``celery orchestra pause|resume`` (which writes the store) instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from celery.utils.nodenames import host_format

from ..store import JobStore
from .control import CHANGE_COMMANDS, COMMANDS, execute

__all__ = ["DEFAULT_NODENAME", "EXPIRY_GRACE_SECONDS", "OrchestraNode"]

logger = logging.getLogger("celery_orchestra.remote")

#: The node name; ``%h`` is the host name. Distinct from ``celery@`` (workers) and ``celerybeat@``.
DEFAULT_NODENAME: Final = "orchestra@%h"

#: A request is dropped once this many seconds past its ``expires`` header. Not zero: the header is
#: the sender's clock plus its reply timeout (1 s by default), so a small skew between hosts or a
#: polling transport's delay would otherwise drop fresh requests.
EXPIRY_GRACE_SECONDS: Final = 2.0

#: Seconds between reconnection attempts after the broker connection failed, growing per failure.
RECONNECT_DELAYS: Final = (1.0, 2.0, 5.0, 10.0, 30.0)


class OrchestraNode:
    """Answers ``orchestra_*`` commands (and ``ping``) for one beat process.

    Nothing connects and no thread exists before :meth:`start`; :meth:`start` and :meth:`stop` may
    each be called any number of times. ``drain_timeout`` bounds how long :meth:`stop` waits for
    the thread to notice (one ``drain_events`` call).
    """

    def __init__(
        self,
        app: Any,
        *,
        store: JobStore,
        on_change: Callable[[], None],
        hostname: str | None = None,
        drain_timeout: float = 1.0,
    ) -> None:
        self.app = app
        self.store = store
        self.on_change = on_change
        self.hostname: str = host_format(hostname or DEFAULT_NODENAME)
        self.drain_timeout = drain_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self._node: Any = None
        self._fanout_warned = False
        self._handlers: dict[str, Callable[..., dict[str, Any]]] = {
            method: self._command_handler(method) for method in COMMANDS
        }
        self._handlers["ping"] = self._ping

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """Whether the node's thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start answering in a daemon thread; does nothing if running or if the broker has no fanout."""
        with self._lock:
            if self.running:
                return
            if not self._broker_has_fanout():
                if not self._fanout_warned:
                    self._fanout_warned = True
                    logger.warning(
                        "celery-orchestra: the broker transport (%s) does not support broadcast, so beat "
                        "answers no remote-control commands; use `celery orchestra pause|resume` (it "
                        "writes the store) instead of `celery control orchestra_*`",
                        self._transport_name(),
                    )
                return
            self._stopping.clear()
            self._listening.clear()
            thread = threading.Thread(target=self._serve, name=f"orchestra-remote-control ({self.hostname})")
            thread.daemon = True
            self._thread = thread
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop answering and wait (``timeout``, default a few drain periods) for the thread to end."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is None:
            return
        thread.join(timeout if timeout is not None else self.drain_timeout * 3 + 2.0)
        if thread.is_alive():
            logger.warning("celery-orchestra: the remote-control thread did not stop in time; leaving it (daemon)")

    def wait_until_listening(self, timeout: float) -> bool:
        """Block until the node consumes its queue (broadcasts sent before that are not received)."""
        return self._listening.wait(timeout)

    def _broker_has_fanout(self) -> bool:
        connection = self.app.connection_for_read()
        try:
            return bool(connection.supports_exchange_type("fanout"))
        finally:
            connection.release()

    def _transport_name(self) -> str:
        connection = self.app.connection_for_read()
        try:
            return str(connection.transport_cls)
        finally:
            connection.release()

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        node = self.app.control.mailbox.Node(self.hostname, state=self, handlers=self._handlers)
        self._node = node
        failures = 0
        while not self._stopping.is_set():
            try:
                self._consume(node)
                failures = 0
            except Exception as error:
                self._listening.clear()
                if self._stopping.is_set():
                    break
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                logger.warning(
                    "celery-orchestra: remote control lost the broker (%s); reconnecting in %.0f s", error, delay
                )
                self._stopping.wait(delay)

    def _consume(self, node: Any) -> None:
        """Consume the node's queue until stopped; raises on broker errors (the caller reconnects)."""
        with self.app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            node.channel = channel
            consumer = node.listen(channel=channel, callback=self._on_message)
            try:
                self._listening.set()
                logger.info("celery-orchestra: remote control listening as %s", self.hostname)
                while not self._stopping.is_set():
                    try:
                        connection.drain_events(timeout=self.drain_timeout)
                    except TimeoutError:  # socket.timeout is the same class: nothing arrived
                        continue
            finally:
                self._listening.clear()
                _quietly(consumer.cancel)
                _quietly(channel.close)

    def _on_message(self, body: Any, message: Any) -> None:
        if not isinstance(body, Mapping) or body.get("method") not in self._handlers:
            return
        headers = getattr(message, "headers", None) or {}
        expires = headers.get("expires")
        if expires and time.time() > float(expires) + EXPIRY_GRACE_SECONDS:
            logger.info(
                "celery-orchestra: dropping an expired %s request (sent for %.0f s ago)",
                body.get("method"),
                time.time() - float(expires),
            )
            return
        node = self._node
        if node is None:
            return
        try:
            # Checks destination/pattern, runs the handler and publishes the reply.
            node.handle_message(dict(body), message)
        except Exception:
            logger.exception("celery-orchestra: could not answer a %s request", body.get("method"))

    # ------------------------------------------------------------------ handlers

    def _command_handler(self, method: str) -> Callable[..., dict[str, Any]]:
        def handler(state: Any, **arguments: Any) -> dict[str, Any]:
            return self.answer(method, arguments)

        handler.__name__ = method
        return handler

    def answer(self, method: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one command to the store; after a successful change, tell the scheduler."""
        reply = execute(self.store, method, arguments, default_timezone=self.app.conf.get("timezone"))
        if method in CHANGE_COMMANDS and "ok" in reply:
            logger.info("celery-orchestra: remote control %s: %s", method, reply["ok"])
            try:
                self.on_change()
            except Exception:
                logger.exception("celery-orchestra: the scheduler's change callback failed")
        elif "error" in reply:
            logger.warning("celery-orchestra: remote control %s refused: %s", method, reply["error"])
        return reply

    @staticmethod
    def _ping(state: Any, **arguments: Any) -> dict[str, Any]:
        return {"ok": "pong"}


def _quietly(cleanup: Callable[[], object]) -> None:
    """Run a teardown step whose failure (the connection is often already gone) must not mask why."""
    try:
        cleanup()
    except Exception as error:
        logger.debug("celery-orchestra: remote-control teardown step failed: %r", error)
