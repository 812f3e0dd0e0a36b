"""A rounded table drawn straight as Rich segments: the status and history tables of thousands of rows.

Rich's ``Table`` measures, pads, wraps and crops every cell through its general layout machinery:
about 2.5 ms a row for the status table, 25 seconds for 10,000 jobs. When every cell fits on one
line, none of that is needed: :class:`FastTable` draws exactly what ``Table(box=box.ROUNDED,
header_style="bold", caption_justify="left")`` draws (tests compare the two character for
character), as one segment per cell, in a few milliseconds per thousand rows. :func:`fits` says
when it may be used; otherwise the caller builds Rich's table (folded names, a frame dropped on a
narrow terminal, a caption of several lines).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, Literal

from rich.segment import Segment
from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions

__all__ = ["FastTable", "fits"]

Justify = Literal["left", "right"]

_HEADER: Final = Style(bold=True)


def _widths(headers: Sequence[str], rows: Sequence[Sequence[Text]]) -> list[int]:
    widths = [len(header) for header in headers]
    for row in rows:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], text.cell_len)
    return widths


def fits(headers: Sequence[str], rows: Sequence[Sequence[Text]], caption: Text | None, width: int | None) -> bool:
    """Whether the framed table, its cells on one line each and its caption on one line, fits in ``width``."""
    if width is None:
        return False
    table_width = 1 + sum(column + 3 for column in _widths(headers, rows))
    if table_width > width:
        return False
    return caption is None or ("\n" not in caption.plain and caption.cell_len <= table_width)


class FastTable:
    """A framed table of one-line cells (see the module's docstring); use only when :func:`fits`."""

    def __init__(
        self,
        headers: Sequence[str],
        justify: Sequence[Justify],
        rows: Sequence[Sequence[Text]],
        caption: Text | None = None,
    ) -> None:
        self.headers = list(headers)
        self.justify = list(justify)
        self.rows = rows
        self.caption = caption

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        widths = _widths(self.headers, self.rows)
        line = Segment.line()
        yield Segment("╭" + "┬".join("─" * (width + 2) for width in widths) + "╮")
        yield line
        yield from self._row(console, [Text(header, style=_HEADER) for header in self.headers], widths)
        yield line
        yield Segment("├" + "┼".join("─" * (width + 2) for width in widths) + "┤")
        yield line
        for row in self.rows:
            yield from self._row(console, row, widths)
            yield line
        yield Segment("╰" + "┴".join("─" * (width + 2) for width in widths) + "╯")
        yield line
        if self.caption is not None:
            table_width = 1 + sum(width + 3 for width in widths)
            own = _style(console, self.caption)
            caption_style = console.get_style("table.caption")  # as Rich styles a caption: italic, dim
            yield Segment(self.caption.plain, caption_style if own is None else caption_style + own)
            yield Segment(" " * (table_width - self.caption.cell_len))
            yield line

    def _row(self, console: Console, row: Sequence[Text], widths: Sequence[int]) -> Iterator[Segment]:
        yield Segment("│")
        for text, width, justify in zip(row, widths, self.justify, strict=True):
            gap = width - text.cell_len
            yield Segment(" " + " " * gap if justify == "right" else " ")
            yield Segment(text.plain, _style(console, text))
            yield Segment(" " if justify == "right" else " " * (gap + 1))
            yield Segment("│")


def _style(console: Console, text: Text) -> Style | None:
    if not text.style:
        return None
    return text.style if isinstance(text.style, Style) else console.get_style(text.style)
