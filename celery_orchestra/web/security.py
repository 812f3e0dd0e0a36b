"""Who may call the HTTP API, and how much they may send.

* **Tokens.** With a token configured, every request but ``GET /api/health`` and the docs needs
  ``Authorization: Bearer <token>``; a second, read-only token allows ``GET`` only.
  Tokens are compared with :func:`hmac.compare_digest` (constant time: a wrong guess takes as long
  whatever its first differing character), never logged, never read from a URL.
* **Where it listens.** Without a token the API is open to whoever can connect, so
  :func:`check_bind` refuses any address but loopback unless a token is set.
* **Without a token, from this machine only.** A browser on this machine can still be made to call
  an open API by any web page it shows: a cross-site form ``POST`` needs no permission, and a name
  that an attacker's DNS points at 127.0.0.1 (DNS rebinding) makes the page same-origin.
  :class:`OpenAccessGuard` answers only requests addressed to a loopback name (``Host``), and
  refuses a write that a page of another origin sends (``Origin``), unless CORS allows it.
* **Body size.** :class:`BodyLimit` reads a request body up to its limit before the app sees it and
  answers 413 past it, so a huge body costs the limit, not the server's memory.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ControlError

__all__ = [
    "MIN_TOKEN_LENGTH",
    "Access",
    "AccessDenied",
    "BodyLimit",
    "OpenAccessGuard",
    "bearer",
    "check_bind",
    "is_loopback",
    "tokens_match",
]

#: A shorter token is refused at start: a bearer token is the API's only secret.
MIN_TOKEN_LENGTH: Final = 16
#: Methods a read-only token may use.
_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

#: The ``Authorization: Bearer`` scheme, as OpenAPI shows it; missing credentials are ours to refuse.
bearer = HTTPBearer(auto_error=False, description="The API token, or the read-only token (GET only).")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AccessDenied(Exception):
    """A request without the right token: ``status`` is 401 (no or wrong token) or 403 (read-only)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison (bytes, so any character may appear in a token)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Access:
    """The tokens the API accepts; with neither, every request is let through (loopback only)."""

    token: str | None = None
    read_only_token: str | None = None

    @property
    def open(self) -> bool:
        return self.token is None and self.read_only_token is None

    def check(self, method: str, credentials: HTTPAuthorizationCredentials | None) -> None:
        """Let the request through or raise :class:`AccessDenied`."""
        if self.open:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise AccessDenied(401, "this API needs a token: send the header Authorization: Bearer <token>")
        given = credentials.credentials
        # Both comparisons always run, so timing does not tell which token was nearly guessed.
        full = self.token is not None and tokens_match(given, self.token)
        read_only = self.read_only_token is not None and tokens_match(given, self.read_only_token)
        if full:
            return
        if not read_only:
            raise AccessDenied(401, "the token is not valid")
        if method.upper() not in _READ_METHODS:
            raise AccessDenied(403, f"the read-only token allows GET requests only, not {method.upper()}")

    def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        """A FastAPI dependency: the route's security requirement (so OpenAPI shows the bearer scheme)."""
        self.check(request.method, credentials)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, access: Access) -> None:
    """Refuse to listen beyond this machine without a token (see the module's docstring)."""
    if access.token is None and not is_loopback(host):
        raise ControlError(
            f"refusing to listen on {host} without a token: anyone who can reach it could pause, change and "
            "run jobs; set orchestra_api_token or pass --token-file, or bind 127.0.0.1"
        )


class BodyLimit:
    """ASGI middleware: request bodies over ``max_bytes`` are answered 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"the request body is larger than {self.max_bytes} bytes",
            }
        ).encode()
        headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class OpenAccessGuard:
    """ASGI middleware for an API without a token (see the module's docstring): a request must be
    addressed to a loopback name, and a write from a browser page must come from the API's own
    origin or one CORS allows. Scripts (curl, the Python clients) send no ``Origin``: they pass."""

    def __init__(self, app: ASGIApp, allowed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.allowed_origins = frozenset(origin.rstrip("/").lower() for origin in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope.get("headers", ())}
        host = headers.get(b"host", "")
        refusal = None
        if not is_loopback(_host_name(host)):
            refusal = (
                f"this API has no token, so it answers requests addressed to this machine only "
                f"(localhost, 127.0.0.1, [::1]), not to {host!r}; set a token to serve other names"
            )
        elif scope["method"].upper() not in _READ_METHODS and b"origin" in headers:
            origin = headers[b"origin"].rstrip("/").lower()
            own = {f"{scheme}://{host.lower()}" for scheme in ("http", "https")}
            if origin not in own and origin not in self.allowed_origins:
                refusal = (
                    f"a {scope['method'].upper()} from a page of another origin ({headers[b'origin']!r}) is refused: "
                    "this API has no token; list the origin in orchestra_api_cors_origins, or set a token"
                )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"type": "about:blank", "title": "Forbidden", "status": 403, "detail": refusal}).encode()
        response_headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:5000`` -> ``::1``)."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first returns ``messages`` (the body already read), then the real ones."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
