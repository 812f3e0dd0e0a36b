"""``celery orchestra serve``: the HTTP API on uvicorn, refusing an unsafe configuration at start.

Every check runs before anything listens, with a message naming what to change: a bind address
beyond loopback without a token, an unreadable or empty token file, a token shorter than
:data:`~.security.MIN_TOKEN_LENGTH`, the same token given as both full and read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import ControlError
from ..settings import ApiSettings
from .security import MIN_TOKEN_LENGTH, Access, check_bind

__all__ = ["DEFAULT_BIND", "Bind", "access_from", "parse_bind", "read_token_file"]

DEFAULT_BIND: Final = "127.0.0.1:5000"


@dataclass(frozen=True, slots=True)
class Bind:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` (port 5000) or ``:PORT`` (127.0.0.1)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ControlError(f"--bind must be HOST:PORT or [IPv6]:PORT, got {text!r}")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    elif value.count(":") > 1:
        raise ControlError(f"--bind: write an IPv6 address in brackets, e.g. [::1]:5000, got {text!r}")
    host = host or "127.0.0.1"
    if not port_text:
        return Bind(host, 5000)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ControlError(f"--bind: the port must be a number from 1 to 65535, got {port_text!r}")
    return Bind(host, int(port_text))


def read_token_file(path: str, what: str) -> str:
    """The token in ``path`` (surrounding whitespace and the final newline dropped)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ControlError(f"cannot read the {what} file {path}: {error.__class__.__name__}: {error}") from None
    if not token:
        raise ControlError(f"the {what} file {path} is empty")
    return token


def access_from(
    settings: ApiSettings, bind: Bind, *, token_file: str | None = None, read_only_token_file: str | None = None
) -> Access:
    """The tokens to accept (a file given on the command line wins over the setting), checked."""
    token = read_token_file(token_file, "token") if token_file else settings.token
    read_only = (
        read_token_file(read_only_token_file, "read-only token") if read_only_token_file else settings.read_only_token
    )
    for value, what in ((token, "the API token"), (read_only, "the read-only token")):
        if value is not None and len(value) < MIN_TOKEN_LENGTH:
            raise ControlError(
                f"{what} is {len(value)} characters long; use at least {MIN_TOKEN_LENGTH} random ones, e.g. "
                'from python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
    if read_only is not None and token is None:
        raise ControlError("a read-only token needs an API token too (orchestra_api_token or --token-file)")
    if token is not None and read_only is not None and token == read_only:
        raise ControlError("the API token and the read-only token must differ")
    access = Access(token, read_only)
    check_bind(bind.host, access)
    return access


def run(asgi_app: Any, bind: Bind) -> None:
    """Serve until interrupted (uvicorn's own signal handling stops it cleanly)."""
    import uvicorn

    uvicorn.run(asgi_app, host=bind.host, port=bind.port, server_header=False, log_level="info")
