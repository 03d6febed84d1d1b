"""What the benchmarks' plots share (matplotlib, the bench extra): the backend, a batch
size axis, saving."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def batch_axis(axis: Any, sizes: Iterable[int], xlabel: str, ylabel: str) -> None:
    """A log x axis of batch sizes labelled as plain numbers; y from 0, a grid, a legend."""
    import matplotlib.ticker

    axis.set_xscale("log")
    axis.set_xticks(sorted(sizes))
    axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    axis.legend()


def save(figure: Any, out: Path) -> Path:
    """Lay the figure out, write it to ``out`` (PNG) and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
