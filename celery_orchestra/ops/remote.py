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
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from celery.utils.nodenames import host_format

from ..store import JobStore
from .control import CHANGE_COMMANDS, COMMANDS, ECHO_LIMIT, RUN, execute, not_carried_out
from .text import visible

__all__ = ["DEFAULT_NODENAME", "EXPIRY_GRACE_SECONDS", "OrchestraNode", "malformed_request"]

logger = logging.getLogger("celery_orchestra.remote")

#: The node name; ``%h`` is the host name. Distinct from ``celery@`` (workers) and ``celerybeat@``.
DEFAULT_NODENAME: Final = "orchestra@%h"

#: A request is dropped once this many seconds past its ``expires`` header. Not zero: the header is
#: the sender's clock plus its reply timeout (1 s by default), so a small skew between hosts or a
#: polling transport's delay would otherwise drop fresh requests.
EXPIRY_GRACE_SECONDS: Final = 2.0

#: Characters of a reply quoted in beat's log at most (a pause of thousands of jobs names them all).
LOG_LIMIT: Final = 1000

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
        #: Set once a connection reached listening; a failure after that starts the delays afresh.
        self._listened = False
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
        # kombu's own handler logs a traceback per undecodable message; one warning is enough.
        node.on_decode_error = self._on_undecodable
        self._node = node
        failures = 0
        while not self._stopping.is_set():
            self._listened = False
            try:
                self._consume(node)
            except Exception as error:
                self._listening.clear()
                if self._stopping.is_set():
                    break
                if self._listened:  # it was connected and listening: a new outage, not the same one
                    failures = 0
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
                self._listened = True
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
        """Answer one request; never raises (an exception here would end the broker connection)."""
        try:
            self._answer_message(body, message)
        except Exception as error:
            logger.warning("celery-orchestra: remote control dropped a request it could not answer: %r", error)

    def _answer_message(self, body: Any, message: Any) -> None:
        method = body.get("method") if isinstance(body, Mapping) else None
        if not isinstance(method, str) or method not in self._handlers:
            return
        headers = getattr(message, "headers", None)
        reason = malformed_request(body, headers)
        if reason is not None:
            logger.warning("celery-orchestra: dropping a malformed %s request: %s", method, reason)
            return
        expires = (headers or {}).get("expires")
        if expires and time.time() > float(expires) + EXPIRY_GRACE_SECONDS:
            logger.info(
                "celery-orchestra: dropping an expired %s request (sent for %.0f s ago)",
                method,
                time.time() - float(expires),
            )
            return
        node = self._node
        if node is None:
            return
        # Checks destination/pattern, runs the handler and publishes the reply.
        node.handle_message(dict(body), message)

    def _on_undecodable(self, message: Any, error: Exception) -> None:
        logger.warning("celery-orchestra: dropping a remote-control message that cannot be decoded: %r", error)

    # ------------------------------------------------------------------ handlers

    def _command_handler(self, method: str) -> Callable[..., dict[str, Any]]:
        def handler(state: Any, **arguments: Any) -> dict[str, Any]:
            return self.answer(method, arguments)

        handler.__name__ = method
        return handler

    def answer(self, method: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one command to the store; after a successful change, tell the scheduler.

        ``orchestra_run`` is carried out only while this beat holds the lease: a broadcast reaches
        every beat, and each would otherwise request a run of its own.
        """
        if method == RUN and not _holds_lease(self.store):
            return not_carried_out(
                method, arguments, f"not run by this beat: it is a standby; the active one runs {RUN}"
            )
        reply = execute(self.store, method, arguments, default_timezone=self.app.conf.get("timezone"))
        if method in CHANGE_COMMANDS and "ok" in reply:
            logger.info("celery-orchestra: remote control %s: %s", method, visible(reply["ok"], LOG_LIMIT))
            try:
                self.on_change()
            except Exception:
                logger.exception("celery-orchestra: the scheduler's change callback failed")
        elif "error" in reply:
            logger.warning(
                "celery-orchestra: remote control %s refused: %s", method, visible(reply["error"], LOG_LIMIT)
            )
        return reply

    @staticmethod
    def _ping(state: Any, **arguments: Any) -> dict[str, Any]:
        return {"ok": "pong"}


def _holds_lease(store: JobStore) -> bool:
    """The store's lease is this beat's now (its fence's epoch, live): it is the active beat."""
    fence = store.fence
    if fence is None:
        return False
    try:
        lease = store.read_lease()
    except Exception as error:
        logger.warning("celery-orchestra: cannot read the lease to answer %s (%s)", RUN, error)
        return False
    return lease.live and lease.epoch == fence.epoch


def malformed_request(body: Mapping[str, Any], headers: object) -> str | None:
    """Why a pidbox request cannot be handled as kombu would (a bad header or field), else ``None``.

    kombu's ``Node`` trusts what it receives: a non-numeric ``expires`` or ``clock`` header, a
    ``reply_to`` without an exchange or an ``arguments`` that is not a mapping would raise inside
    it. Any broker client can send such a message, so it is refused here, with a reason to log.
    """
    if headers is not None and not isinstance(headers, Mapping):
        return f"its headers are a {type(headers).__name__}, not a mapping"
    given = headers or {}
    for header in ("expires", "clock"):
        value = given.get(header)
        if value is not None and not _is_finite_number(value):
            return f"the {header} header must be a number, got {visible(repr(value), ECHO_LIMIT)}"
    arguments = body.get("arguments")
    if arguments is not None and not isinstance(arguments, Mapping):
        return f"arguments must be a mapping, got {type(arguments).__name__}"
    if arguments is not None and not all(isinstance(key, str) for key in arguments):
        return "argument names must be strings"
    reply_to = body.get("reply_to")
    if reply_to and not (
        isinstance(reply_to, Mapping)
        and isinstance(reply_to.get("exchange"), str)
        and isinstance(reply_to.get("routing_key"), str)
    ):
        return "reply_to must name an exchange and a routing_key"
    destination = body.get("destination")
    if destination and not (
        isinstance(destination, list | tuple) and all(isinstance(item, str) for item in destination)
    ):
        return "destination must be a list of node names"
    for field in ("pattern", "matcher"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            return f"{field} must be a string"
    return None


def _is_finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _quietly(cleanup: Callable[[], object]) -> None:
    """Run a teardown step whose failure (the connection is often already gone) must not mask why."""
    try:
        cleanup()
    except Exception as error:
        logger.debug("celery-orchestra: remote-control teardown step failed: %r", error)
