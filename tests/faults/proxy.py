"""A small loopback TCP proxy whose link can be frozen or cut, for fault injection.

One :class:`ProxyHub` runs an asyncio loop in a daemon thread; each :class:`Proxy` on it listens on
``127.0.0.1:<port>`` and forwards every connection to one upstream (``127.0.0.1:<upstream>``).
A proxy is in one of three modes, switched from any thread:

* ``forward``: bytes are copied both ways as they arrive.
* ``freeze``: nothing is read from either side any more, nothing is written; connections stay
  open (the peers see a silent link, like a partition without resets). New connections are
  accepted by the kernel but not connected upstream until the link thaws. The kernel's socket
  buffers still take what a peer writes until they are full: that is what a real stalled link does.
* ``drop``: every open connection is closed (both sides) and the listening socket is closed, so
  new connections are refused: an outage. Switching back to ``forward`` listens on the same port.

Only loopback addresses are used, on the listening side and upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LOOPBACK", "Mode", "Proxy", "ProxyHub"]

LOOPBACK = "127.0.0.1"
Mode = Literal["forward", "freeze", "drop"]
T = TypeVar("T")

logger = logging.getLogger("faults.proxy")


class Proxy:
    """One listening port forwarding to one upstream port; see the module docstring."""

    def __init__(self, hub: ProxyHub, name: str, upstream_port: int) -> None:
        self.hub = hub
        self.name = name
        self.upstream_port = upstream_port
        self.port = 0
        self.mode: Mode = "forward"
        self.connections_total = 0
        self._server: asyncio.AbstractServer | None = None
        self._flowing = asyncio.Event()  # set while forwarding; pumps wait on it before each read/write
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    # ---- control (any thread)

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode``; returns once the switch is done (connections closed for ``drop``)."""
        self.hub.call(self._set_mode(mode))

    # ---- the loop's side

    def _dropped(self) -> bool:
        return self.mode == "drop"

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, self.port or 0, reuse_address=True)
        if not self.port:
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_mode(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        logger.info("proxy %s: %s -> %s", self.name, previous, mode)
        if mode == "forward":
            if self._server is None:
                await self._listen()
            self._flowing.set()
        elif mode == "freeze":
            self._flowing.clear()
        else:  # drop
            self._flowing.clear()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
            for writer in list(self._writers):
                _abort(writer)
            self._writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.mode == "drop":
            _abort(client_writer)
            return
        self.connections_total += 1
        self._writers.add(client_writer)
        try:
            await self._flowing.wait()  # a connection made while frozen waits here, unconnected upstream
            if self._dropped():  # dropped while it waited
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(LOOPBACK, self.upstream_port)
            except OSError:
                return
            self._writers.add(upstream_writer)
            try:
                await asyncio.gather(
                    self._pump(client_reader, upstream_writer),
                    self._pump(upstream_reader, client_writer),
                )
            finally:
                self._writers.discard(upstream_writer)
                _abort(upstream_writer)
        finally:
            self._writers.discard(client_writer)
            _abort(client_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until EOF or an error; closing ``writer`` ends the other direction too."""
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # frozen between reading and writing: hold it, read nothing more
                if writer.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        transport = writer.transport
        if not transport.is_closing():
            transport.abort()


class ProxyHub:
    """The thread and event loop that run every proxy of a scenario."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.proxies: list[Proxy] = []
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def add(self, name: str, upstream_port: int) -> Proxy:
        """A new proxy forwarding to ``127.0.0.1:upstream_port``, listening on a free port."""
        proxy = Proxy(self, name, upstream_port)

        self.call(proxy._listen())
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                proxy.set_mode("drop")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()
