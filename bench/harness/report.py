"""What the benchmarks' printed tables share (rich): table, ratio and verdict cells, and
the closing lines (machine, versions, load, commit)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table


def console(width: int) -> Console:
    """The terminal's width on a terminal, ``width`` when the output is piped."""
    return Console(width=None if sys.stdout.isatty() else width)


def new_table(title: str, columns: Iterable[str], left: Iterable[str] = ()) -> Table:
    """A table whose columns are right-aligned (figures) except those in ``left``."""
    table = Table(title=title)
    names = set(left)
    for column in columns:
        table.add_column(column, justify="left" if column in names else "right")
    return table


def plain_table(title: str, columns: Iterable[str]) -> Table:
    """A table of text columns (the targets tables)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    return table


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:,.1f}x" if reference else "-"


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "MISSED")


def print_footer(out: Console, result: dict[str, Any], middle: str) -> None:
    """The machine, the versions, ``middle`` (the benchmark's own facts), the load and the
    commit measured."""
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    machine, load = result["machine"], result["load_average"]
    out.print(
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}; {versions}; {middle}"
        f"load average {load['start'][0]} at start, {load['end'][0]} at end"
    )
    if result.get("git"):
        dirty = " with uncommitted changes" if result["git"]["dirty"] else ""
        out.print(f"measured at commit {result['git']['commit']}{dirty}")
