"""What the benchmarks' printed tables share (rich): table, ratio and verdict cells, and
the closing lines (machine, versions, load, commit)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
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


def measurements_table(
    title: str,
    columns: Iterable[str],
    result: dict[str, Any],
    figures: Callable[[dict[str, Any]], Iterable[str]],
    notes: Callable[[dict[str, Any]], list[str]],
) -> Table:
    """One row per measured path: its label and records, the benchmark's ``figures``, the
    process's peak RSS during it, and the ``notes`` on its details."""
    table = new_table(title, (*columns, "peak RSS MiB", "notes"), ("path", "notes"))
    for m in result["measurements"]:
        cells = (*figures(m), rss_cell(m["peak_rss_mib"]), "; ".join(notes(m["details"])))
        table.add_row(*head_cells(m), *cells)
    return table


def head_cells(m: dict[str, Any]) -> tuple[str, str]:
    """A measurement row's first cells: its label and its records."""
    return m["label"], f"{m['records']:,}"


def rss_cell(mib: float | None) -> str:
    return "-" if mib is None else f"{mib:,.0f}"


def figure(summary: dict[str, Any], key: str, form: str) -> str:
    """A summary figure in ``form``, and with several runs each run's figure after it."""
    text = form.format(summary[key])
    each = summary.get("each_run")
    if each:
        text += " (each run: " + ", ".join(form.format(run[key]) for run in each) + ")"
    return text


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:,.1f}x" if reference else "-"


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "MISSED")


# A note of a results row: the detail it needs, when it shows ("present": the detail is
# there; "nonzero": and is not 0; "set": and is not None) and its text over the details.
Note = tuple[str, str, str]


def notes(details: dict[str, Any], rules: Iterable[Note]) -> list[str]:
    """The notes column of a row: each rule's text whose detail shows."""
    shown = []
    for key, when, text in rules:
        value = details.get(key)
        if when == "present":
            show = key in details
        elif when == "set":
            show = value is not None
        else:
            show = bool(value)
        if show:
            shown.append(text.format(**details))
    return shown


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


def print_tables(
    out: Console,
    result: dict[str, Any],
    tables: Iterable[Callable[[dict[str, Any]], Table] | None],
    middle: str,
) -> None:
    """Each table drawn from the result (None: left out), then the footer."""
    for table in tables:
        if table is not None:
            out.print(table(result))
    print_footer(out, result, middle)
