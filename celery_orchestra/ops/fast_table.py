"""A rounded table drawn straight as Rich segments: the status and history tables of thousands of rows.

Rich's ``Table`` measures, pads, wraps and crops every cell through its general layout machinery:
about 2.5 ms a row for the status table, 25 seconds for 10,000 jobs. When every cell fits on one
line, none of that is needed: :class:`FastTable` draws exactly what ``Table(box=box.ROUNDED,
header_style="bold", caption_justify="left")`` draws (tests compare the two character for
character), as one segment per cell, in a few milliseconds per thousand rows. :meth:`FastTable.fits` says
when it may be used; otherwise the caller builds Rich's table (folded names, a frame dropped on a
narrow terminal, a caption of several lines).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, Literal

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions

__all__ = ["FastTable", "cell_length"]

Justify = Literal["left", "right"]

_HEADER: Final = Style(bold=True)
#: A cell as drawn: its text, its width in terminal cells, its style.
_Cell = tuple[str, int, "str | Style"]


def cell_length(text: Text) -> int:
    """The terminal cells ``text`` takes: its length for ASCII (what :func:`~.text.visible` leaves
    of control characters is ASCII too), else Rich's measure (wide CJK characters take two)."""
    plain = text.plain
    return len(plain) if plain.isascii() else cell_len(plain)


class FastTable:
    """A framed table of one-line cells (see the module's docstring); draw it only when :meth:`fits`."""

    def __init__(
        self,
        headers: Sequence[str],
        justify: Sequence[Justify],
        rows: Sequence[Sequence[Text]],
        caption: Text | None = None,
    ) -> None:
        self.headers = [Text(header, style=_HEADER) for header in headers]
        self.justify = list(justify)
        self.caption = caption
        #: Each cell's text, width and style, measured once.
        self.rows = [[(text.plain, cell_length(text), text.style) for text in row] for row in rows]
        widths = [len(header) for header in headers]
        for row_cells in self.rows:
            widths = [max(width, length) for width, (_, length, _) in zip(widths, row_cells, strict=True)]
        self.widths = widths
        self.width = 1 + sum(width + 3 for width in widths)

    def fits(self, width: int | None) -> bool:
        """Whether the table, its cells on one line each and its caption on one line, fits in ``width``."""
        if width is None or self.width > width:
            return False
        return self.caption is None or ("\n" not in self.caption.plain and self.caption.cell_len <= self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        widths = self.widths
        line = Segment.line()
        yield Segment("╭" + "┬".join("─" * (width + 2) for width in widths) + "╮")
        yield line
        header = [(text.plain, len(text.plain), text.style) for text in self.headers]
        yield from self._row(console, header, widths)
        yield line
        yield Segment("├" + "┼".join("─" * (width + 2) for width in widths) + "┤")
        yield line
        for row in self.rows:
            yield from self._row(console, row, widths)
            yield line
        yield Segment("╰" + "┴".join("─" * (width + 2) for width in widths) + "╯")
        yield line
        if self.caption is not None:
            own = _style(console, self.caption.style)
            caption_style = console.get_style("table.caption")  # as Rich styles a caption: italic, dim
            yield Segment(self.caption.plain, caption_style if own is None else caption_style + own)
            yield Segment(" " * (self.width - self.caption.cell_len))
            yield line

    def _row(self, console: Console, row: Sequence[_Cell], widths: Sequence[int]) -> Iterator[Segment]:
        """One line: the unstyled text between styled cells joined into one segment (Rich's own
        rendering then handles a few segments a row, not one per cell)."""
        pending = ["│"]
        for (plain, length, style_name), width, justify in zip(row, widths, self.justify, strict=True):
            gap = width - length
            pending.append(" " + " " * gap if justify == "right" else " ")
            style = _style(console, style_name)
            if style is None:
                pending.append(plain)
            else:
                yield Segment("".join(pending))
                yield Segment(plain, style)
                pending = []
            pending.append(" │" if justify == "right" else " " * (gap + 1) + "│")
        yield Segment("".join(pending))


def _style(console: Console, style: str | Style) -> Style | None:
    if not style:
        return None
    return style if isinstance(style, Style) else console.get_style(style)
