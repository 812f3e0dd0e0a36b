"""User text made safe to show: in a terminal, in Rich tables and in log lines.

Job names, tasks, tags, zone names, host names and the arguments of remote-control commands come
from configuration files, the store and any broker client. Shown raw, an escape sequence in one of
them (``\\x1b[2J``) clears an operator's screen or forges log lines, and Rich would read ``[link=…]``
or ``[/bold]`` as markup. :func:`visible` is the one rule for all of them: control and format
characters (Unicode categories Cc, Cf, Zl, Zp: ESC, newlines, DEL, C1 controls, bidi overrides,
zero-width characters) are shown as Python-style escapes such as ``\\x1b``, ``\\n`` or ``\\u202e``;
everything else, square brackets included, is shown as it is. :func:`cell` wraps the result in a
Rich ``Text`` so that no markup is interpreted.

:func:`guard_log_lines` applies :func:`visible` to every formatted log line of celery-orchestra's
own loggers, so that a name quoted by beat, the remote-control node or the store cannot break a log
line either. It runs when this module is imported (by :mod:`celery_orchestra.ops.control`, which
every ``celery`` process imports through the ``celery.commands`` entry point).
"""

from __future__ import annotations

import logging
import pkgutil
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["ELLIPSIS", "VisibleLogLines", "cell", "guard_log_lines", "visible", "visible_lines"]

#: Marks a shortened text; what follows it says how much was cut.
ELLIPSIS: Final = "…"

_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _shown(character: str) -> str:
    if character.isprintable() and unicodedata.category(character) not in _HIDDEN_CATEGORIES:
        return character
    escape = _ESCAPES.get(character)
    if escape is not None:
        return escape
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: object, limit: int | None = None) -> str:
    """``text`` (``str()`` of anything else) with invisible characters shown as escapes.

    With ``limit``, a longer result is cut to about ``limit`` characters and ends with
    ``… (N more characters)``.
    """
    raw = text if isinstance(text, str) else str(text)
    # The usual case, printable ASCII, has nothing to escape.
    shown = raw if raw.isprintable() and raw.isascii() else "".join(map(_shown, raw))
    if limit is not None and len(shown) > limit:
        return f"{shown[:limit]}{ELLIPSIS} ({len(shown) - limit} more characters)"
    return shown


def visible_lines(text: str) -> str:
    """:func:`visible` for each line of a multi-line message (its line breaks kept)."""
    return "\n".join(visible(line) for line in text.split("\n"))


def cell(text: object, style: str = "") -> Text:
    """A Rich ``Text`` showing :func:`visible` ``text`` literally: markup in it is not interpreted."""
    from rich.text import Text

    return Text(visible(text), style=style)


class VisibleLogLines(logging.Filter):
    """Formats a record's message with :func:`visible` applied to each of its lines.

    A message may span lines (a configuration problem and its caret), so line breaks are kept;
    but every line after the first is indented, so that no text quoted in a message (a job name
    with a line break in it) can pass for a log record of its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        first, *rest = message.split("\n")
        shown = "\n".join([visible(first), *(_continuation(visible(line)) for line in rest)])
        if shown != message or record.args:
            record.msg = shown
            record.args = None
        return True


def _continuation(line: str) -> str:
    return line if not line or line[0] == " " else f"    {line}"


_FILTER: Final = VisibleLogLines()

#: The loggers beat, the remote-control node and the operations log with (beat's modules share one).
_NAMED_LOGGERS: Final = (
    "celery_orchestra",
    "celery_orchestra.scheduler",
    "celery_orchestra.remote",
    "celery_orchestra.control",
)


def _module_logger_names() -> list[str]:
    """``celery_orchestra.<package>.<module>`` of every module (those that log under ``__name__``)."""
    root = Path(__file__).resolve().parent.parent
    names = []
    for package in pkgutil.iter_modules([str(root)]):
        if package.ispkg:
            prefix = f"celery_orchestra.{package.name}"
            names.append(prefix)
            names.extend(f"{prefix}.{module.name}" for module in pkgutil.iter_modules([str(root / package.name)]))
    return names


def guard_log_lines() -> None:
    """Add :class:`VisibleLogLines` to every celery-orchestra logger (once; idempotent)."""
    for name in (*_NAMED_LOGGERS, *_module_logger_names()):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


guard_log_lines()
