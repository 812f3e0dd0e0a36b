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
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from .text import visible

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions

__all__ = ["Cell", "FastTable", "shown"]

Justify = Literal["left", "right"]

_HEADER: Final = Style(bold=True)


class Cell(NamedTuple):
    """A cell as drawn: its text (already :func:`~.text.visible`), its width in terminal cells, its
    style. Tables of thousands of rows are built from these rather than from Rich ``Text``
    objects, which cost several times more to create and to measure; :meth:`text` gives the
    ``Text`` that :func:`~.text.cell` would have given, for Rich's own table."""

    plain: str
    width: int
    style: str | Style = ""

    def text(self) -> Text:
        return Text(self.plain, style=self.style)


def shown(value: object, style: str = "") -> Cell:
    """``value`` as :func:`~.text.cell` shows it (literally, invisible characters escaped), measured:
    its length for ASCII (what :func:`~.text.visible` leaves of control characters is ASCII too),
    else Rich's measure (wide CJK characters take two cells)."""
    plain = visible(value)
    return Cell(plain, len(plain) if plain.isascii() else cell_len(plain), style)


class FastTable:
    """A framed table of one-line cells (see the module's docstring); draw it only when :meth:`fits`."""

    def __init__(
        self,
        headers: Sequence[str],
        justify: Sequence[Justify],
        rows: Sequence[Sequence[Cell]],
        caption: Text | None = None,
    ) -> None:
        self.headers = [Text(header, style=_HEADER) for header in headers]
        self.justify = list(justify)
        self.caption = caption
        self.rows = rows
        widths = [len(header) for header in headers]
        if rows:
            for column, row_cells in enumerate(zip(*rows, strict=True)):
                widths[column] = max(widths[column], max(cell.width for cell in row_cells))
        self.widths = widths
        self.width = 1 + sum(width + 3 for width in widths)

    def fits(self, width: int | None) -> bool:
        """Whether the table, its cells on one line each and its caption on one line, fits in ``width``."""
        if width is None or self.width > width:
            return False
        return self.caption is None or ("\n" not in self.caption.plain and self.caption.cell_len <= self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        widths = self.widths
        styles: dict[str | Style, Style | None] = {}  # each style name parsed once, not once per cell
        line = Segment.line()
        yield Segment("╭" + "┬".join("─" * (width + 2) for width in widths) + "╮")
        yield line
        header = [Cell(text.plain, len(text.plain), text.style) for text in self.headers]
        yield from self._row(console, styles, header, widths)
        yield line
        yield Segment("├" + "┼".join("─" * (width + 2) for width in widths) + "┤")
        yield line
        for row in self.rows:
            yield from self._row(console, styles, row, widths)
            yield line
        yield Segment("╰" + "┴".join("─" * (width + 2) for width in widths) + "╯")
        yield line
        if self.caption is not None:
            own = _style(console, self.caption.style)
            caption_style = console.get_style("table.caption")  # as Rich styles a caption: italic, dim
            yield Segment(self.caption.plain, caption_style if own is None else caption_style + own)
            yield Segment(" " * (self.width - self.caption.cell_len))
            yield line

    def _row(
        self, console: Console, styles: dict[str | Style, Style | None], row: Sequence[Cell], widths: Sequence[int]
    ) -> Iterator[Segment]:
        """One line: the unstyled text between styled cells joined into one segment (Rich's own
        rendering then handles a few segments a row, not one per cell)."""
        pending = ["│"]
        for (plain, length, style_name), width, justify in zip(row, widths, self.justify, strict=True):
            gap = width - length
            pending.append(" " + " " * gap if justify == "right" else " ")
            if not style_name:
                pending.append(plain)
            else:
                style = styles.get(style_name)
                if style is None:
                    style = styles[style_name] = _style(console, style_name)
                yield Segment("".join(pending))
                yield Segment(plain, style)
                pending = []
            pending.append(" │" if justify == "right" else " " * (gap + 1) + "│")
        yield Segment("".join(pending))


def _style(console: Console, style: str | Style) -> Style | None:
    if not style:
        return None
    return style if isinstance(style, Style) else console.get_style(style)
