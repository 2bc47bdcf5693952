"""Tables that fit the terminal: the columns a user must copy (ids, states) are never cut;
less useful columns are dropped first, in a stated order, until the table fits. Output to a
pipe or file is plain tab-separated text with every column, never cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from labimage_cli.safe_text import clean_str, plain

WIDE = 10_000


@dataclass(frozen=True)
class Column:
    name: str
    keep: bool = False  # never dropped nor cut (ids, states)
    wraps: bool = False  # may wrap instead of being dropped (messages)


def table_width(widths: Sequence[int]) -> int:
    """Width of rich's default table: one space of padding each side, a rule between cells
    and one at each edge."""
    return sum(widths) + 3 * len(widths) + 1


def fitting_columns(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: int,
    drop_order: Sequence[str],
) -> list[int]:
    """Indexes of the columns to show at `width`, dropping `drop_order` names first."""
    shown = list(range(len(columns)))
    natural = [
        max([len(columns[i].name), *(len(row[i]) for row in rows)]) for i in range(len(columns))
    ]

    def needed() -> int:
        # A wrapping column needs only a little room; the rest need their widest cell.
        return table_width([min(natural[i], 20) if columns[i].wraps else natural[i] for i in shown])

    for name in drop_order:
        if needed() <= width:
            break
        index = next(i for i, c in enumerate(columns) if c.name == name)
        if index in shown and not columns[index].keep:
            shown.remove(index)
    return shown


def print_rows(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    drop_order: Sequence[str] = (),
    wide: bool = False,
    styles: dict[str, dict[str, str]] | None = None,
) -> None:
    """Print `rows` as a table that fits `console`, or as plain text when it is not a terminal.

    `styles` maps a column name to {cell value: style} (e.g. states in colour)."""
    styles = styles or {}
    if not console.is_terminal:
        # Straight to the file: rich would expand the tabs a script splits on.
        for line in ([c.name for c in columns], *rows):
            console.file.write("\t".join(clean_str(v) for v in line) + "\n")
        console.file.flush()
        return
    shown = list(range(len(columns)))
    if not wide:
        shown = fitting_columns(columns, rows, console.width, drop_order)
    table = Table(expand=False)
    for i in shown:
        column = columns[i]
        table.add_column(
            column.name,
            no_wrap=not column.wraps,
            overflow="fold" if column.wraps else "ellipsis",
            min_width=len(max((r[i] for r in rows), key=len, default="")) if column.keep else None,
        )
    for row in rows:
        cells: list[Text] = []
        for i in shown:
            style = styles.get(columns[i].name, {}).get(row[i], "")
            cells.append(plain(row[i], style))
        table.add_row(*cells)
    if not wide:
        console.print(table)
        return
    # --wide: every column whole, even if the terminal has to wrap the lines: render at a
    # width no terminal has, then print those lines uncropped.
    wide_console = Console(
        width=WIDE, force_terminal=console.is_terminal, no_color=console.no_color
    )
    with wide_console.capture() as captured:
        wide_console.print(table)
    for line in captured.get().splitlines():
        console.print(Text.from_ansi(line), soft_wrap=True, crop=False)
