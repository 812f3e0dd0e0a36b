"""The errors the store raises on purpose.

They are separate from the database driver's exceptions so that callers (the scheduler, the CLI,
remote control) can catch one class and print its message as-is: the message names the database
with its password masked, the operation that failed and the jobs involved. The driver's exception
stays available as ``__cause__`` for debugging.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import OrchestraError

__all__ = ["InvalidJobError", "JobNotFound", "StoreError"]


class StoreError(OrchestraError, RuntimeError):
    """The database could not be used: bad URL, unreachable server, missing schema, lock timeout.

    ``url`` is the database URL with its password masked (``None`` when the URL itself could not
    be read).
    """

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.url))


class JobNotFound(OrchestraError, KeyError):
    """One or more job names are not in the store; the operation changed nothing.

    A ``KeyError`` so that ``except KeyError`` keeps working for callers that treat the store like
    a mapping, but with a readable message (``KeyError`` would otherwise print the repr).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        super().__init__(self.names)

    def __str__(self) -> str:
        listed = ", ".join(repr(name) for name in self.names)
        noun = "job" if len(self.names) == 1 else "jobs"
        return f"unknown {noun}: {listed}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.names,))


class InvalidJobError(OrchestraError, ValueError):
    """A job definition the store cannot keep: a duplicate name, data that is not JSON, and so on.

    The message names the job and where it was defined (its ``source``).
    """
