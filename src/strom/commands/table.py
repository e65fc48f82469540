"""Aligned plain-text tables for the client commands, in the layout of Kafka's own tools.

Columns are padded to their widest cell and separated by two spaces; numbers align right so offsets and lag
line up. The last column is not padded, so lines carry no trailing blanks.
"""

from __future__ import annotations

from collections.abc import Sequence

Cell = str | int | None


def _text(cell: Cell) -> str:
    return "-" if cell is None else str(cell)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """The table as one string: a header line, then one line per row (None prints as `-`)."""
    texts = [[_text(cell) for cell in row] for row in rows]
    numeric = [
        bool(rows) and all(isinstance(row[i], int) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h), *(len(row[i]) for row in texts)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in texts)])
