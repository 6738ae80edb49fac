"""How the CLI prints: one JSON document for machines (``--output json``), rich tables for people.

JSON goes out as ``json.dumps`` writes it (stable keys, nothing added for the terminal); tables go through
rich, which wraps and aligns for a terminal and prints plain text when the output is piped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

PIPED_WIDTH = 200
"""Columns a table may use when stdout is not a terminal (rich would assume 80 and fold every row)."""


def print_json(document: Any, file: TextIO | None = None) -> None:
    print(json.dumps(document, indent=2, default=str), file=file or sys.stdout)


class _Console(Console):
    """rich's console, but a closed pipe is the CLI's to handle (rich would exit 1 on its own)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def console(file: TextIO | None = None) -> Console:
    """A rich console on ``file`` (stdout): as wide as the terminal, or ``PIPED_WIDTH`` when piped."""
    out = file or sys.stdout
    terminal = out.isatty()
    width = None if terminal else int(os.environ.get("COLUMNS") or PIPED_WIDTH)
    return _Console(file=out, width=width, soft_wrap=False, highlight=False, emoji=False)


@contextmanager
def progress(file: TextIO, what: str) -> Iterator[Callable[[str], None]]:
    """Print lines as they come; on a terminal, under a spinner that says what is awaited (rich's status).

    Piped (CI logs), the lines alone: no control characters in a log file.
    """
    if not file.isatty():
        yield lambda line: print(line, file=file, flush=True)
        return
    terminal = console(file)
    with terminal.status(what, spinner="dots"):
        yield lambda line: terminal.print(line, markup=False, highlight=False)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """A table of ``rows`` under ``columns``; a cell that is None prints as ``-``."""
    table = Table(title=title, box=None, header_style="bold", pad_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console().print(table)


def human_duration(seconds: float | None) -> str:
    """``seconds`` as a person reads it: ``850 ms``, ``4.2 s``, ``3 min 20 s``, ``2 h 5 min``, ``3 d 4 h``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def when(moment: datetime | str | None) -> str:
    """A moment in UTC to the second (``2026-12-03 15:21:36Z``); ``-`` for none."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        try:
            return when(datetime.fromisoformat(moment))
        except ValueError:
            return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
