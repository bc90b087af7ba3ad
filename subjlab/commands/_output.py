"""Output helpers shared by the commands: JSON to stdout and rich tables."""

from __future__ import annotations

import json
import sys
from typing import Any, Sequence

import click

FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts (a stable interface; see the README).",
)


def emit_json(obj: Any) -> None:
    """Print `obj` as indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False))


def emit_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table with a title on stdout (rich; plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    Console(file=sys.stdout, width=max(100, Console().width)).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
