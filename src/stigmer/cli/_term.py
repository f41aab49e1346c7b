"""How the CLI draws: Rich at a terminal, plain text everywhere else.

A person at a terminal gets Rich tables, spinners and progress bars; a pipe, a file, a test or CI
gets plain aligned text with the same header names, no colour, no cursor movement and no
box-drawing, so ``stigmer token list | awk ...`` keeps working. ``NO_COLOR`` (any non-empty value,
https://no-color.org) takes the colour away even at a terminal; the layout stays. ``FORCE_COLOR`` (non-empty)
draws as at a terminal whatever the stream (a CI log that renders colour), as Rich itself would.

Rich costs ~100 ms to import, more than ``stigmer --help`` may spend in total, so it is imported
here, inside the functions that draw, and only when the stream is a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO, Any

import click


def no_color() -> bool:
    """``NO_COLOR`` is set to something: no colour, whatever the stream."""
    return bool(os.environ.get("NO_COLOR"))


def is_terminal(stream: IO[str] | None = None) -> bool:
    """A person is reading ``stream`` (stdout by default), or ``FORCE_COLOR`` says to draw as if one were."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def click_color() -> bool | None:
    """What click's ``color=`` should be: off under ``NO_COLOR``, on under ``FORCE_COLOR``, else click decides."""
    if no_color():
        return False
    return True if os.environ.get("FORCE_COLOR") else None


def console(stream: IO[str] | None = None) -> Any:
    """A Rich console on ``stream`` (stdout by default), built now so it writes where ``sys.stdout`` points now."""
    from rich.console import Console

    stream = stream if stream is not None else sys.stdout
    return Console(file=stream, force_terminal=is_terminal(stream), no_color=no_color(), highlight=False,
                   soft_wrap=False)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    """Columns padded to the widest cell, two spaces apart: what a pipe gets (``split()`` finds the cells)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(_pad(c, w, i in right) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in cells]


def _pad(cell: str, width: int, right: bool) -> str:
    return cell.rjust(width) if right else cell.ljust(width)


# The colour of a state word at a terminal (STATUS/STATE columns, `local status`, `doctor`).
STATE_STYLES = {
    **dict.fromkeys(("completed", "ready", "active", "approved", "ok", "running"), "green"),
    **dict.fromkeys(("failed", "error", "revoked", "rejected", "expired", "crashed", "fail"), "red"),
    **dict.fromkeys(("pending", "starting", "waiting", "queued", "cancelled", "restarting", "warn",
                     "stopped", "degraded"), "yellow"),
}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = (),
          styles: dict[int, str] | None = None, stream: IO[str] | None = None) -> None:
    """Print ``rows`` under ``headers``: a Rich table at a terminal, :func:`plain_table` otherwise.

    A column headed STATUS or STATE is coloured by its word (:data:`STATE_STYLES`).

    Args:
        right: indexes of the columns to right-align (numbers).
        styles: a Rich style per column index, e.g. ``{0: "bold"}``; ignored without a terminal.
        stream: where to print (stdout by default).
    """
    stream = stream if stream is not None else sys.stdout
    if not is_terminal(stream):
        for line in plain_table(headers, rows, right):
            click.echo(line, file=stream)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for i, header in enumerate(headers):
        grid.add_column(header, justify="right" if i in right else "left", style=(styles or {}).get(i),
                        overflow="fold", no_wrap=i == 0)  # the first column names the row: whole, to copy
    states = {i for i, header in enumerate(headers) if header in ("STATUS", "STATE")}
    for row in rows:
        grid.add_row(*(Text(str(c), style=STATE_STYLES.get(str(c), "")) if i in states else Text(str(c))
                       for i, c in enumerate(row)))
    console(stream).print(grid)


class Spinner:
    """One status line naming the current step: a Rich spinner at a terminal, a line per new step otherwise.

    Always stop it (:meth:`done`, or use it as a context manager) before printing anything else or asking a
    question: the spinner redraws its line from a thread of its own.
    """

    def __init__(self, stream: IO[str] | None = None, *, plain_prefix: str = "… ") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream)
        self.plain_prefix = plain_prefix
        self.last = ""
        self._status: Any = None

    def update(self, text: str) -> None:
        if self.tty:
            if self._status is None:
                self._status = console(self.stream).status(text, spinner="dots")
                self._status.start()
            else:
                self._status.update(text)
        elif text != self.last:
            click.echo(f"{self.plain_prefix}{text}", file=self.stream)
        self.last = text

    def done(self) -> None:
        """Take the spinner's line away (transient); safe to call more than once."""
        if self._status is not None:
            status, self._status = self._status, None
            status.stop()

    def __enter__(self) -> Spinner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()


class Progress:
    """Byte progress of downloads, one bar per item: Rich at a terminal, a line per item (and per 25%) otherwise."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream)
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        self._quarter: dict[str, int] = {}

    def _bars(self) -> Any:
        if self._rich is None:
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TransferSpeedColumn(), TimeRemainingColumn(), console=console(self.stream))
            self._rich.start()
        return self._rich

    def update(self, key: str, label: str, completed: int, total: int) -> None:
        """``completed`` of ``total`` bytes of item ``key`` (shown as ``label``)."""
        if self.tty:
            bars = self._bars()
            if key not in self._tasks:
                self._tasks[key] = bars.add_task(label, total=total)
            bars.update(self._tasks[key], completed=completed, total=total)
            return
        quarter = min(4, completed * 4 // total) if total else 4
        if quarter > self._quarter.get(key, -1):
            self._quarter[key] = quarter
            click.echo(f"{label}: {quarter * 25}% of {total / 1e6:.1f} MB", file=self.stream)

    def note(self, text: str) -> None:
        """A status line between the bars (``verifying sha256 digest``...)."""
        if self._rich is not None:
            self._rich.console.print(text, markup=False, highlight=False)
        else:
            click.echo(text, file=self.stream)

    def close(self) -> None:
        if self._rich is not None:
            bars, self._rich = self._rich, None
            bars.stop()
