"""Arguments declared as data, the options dataclass built from them, and ``--json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

T = TypeVar("T")

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class ConsumerOptions:
    """What a consumer benchmark (tableinator, graphinator) measures, and how much."""

    records: int = 100_000
    baseline_records: int = 3_000
    baseline_seconds: float = 60.0  # each baseline stops then, rated on what it committed
    skip_baseline: bool = False
    repeat: int = 1
    sweep: bool = False
    sweep_records: int = 50_000
    sweep_batch_sizes: tuple[int, ...] = (100, 500, 1000, 2000, 5000, 10000)
    timeout: float = 600.0


def numbers(text: str) -> tuple[int, ...]:
    """``1000,2000`` -> (1000, 2000)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Arg:
    """One option: its flag, its type (None for a switch), metavar and help; the default is
    the options dataclass's field of the same name, unless ``default`` is False."""

    flag: str
    kind: Callable[[str], Any] | None = None
    metavar: str | None = None
    help: str | None = None
    default: bool = True

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def add_args(parser: argparse.ArgumentParser, defaults: object, args: Iterable[Arg]) -> None:
    """Add each ``Arg`` to ``parser``, its default read from ``defaults``."""
    for arg in args:
        if arg.kind is None:
            parser.add_argument(arg.flag, action="store_true", help=arg.help)
            continue
        extra = {"default": getattr(defaults, arg.dest)} if arg.default else {}
        parser.add_argument(arg.flag, type=arg.kind, metavar=arg.metavar, help=arg.help, **extra)


def consumer_args(repeat_help: str, sweep: list[Arg], plot_help: str) -> list[Arg]:
    """The options the consumer benchmarks (tableinator, graphinator) share."""
    return [
        Arg("--records", int, "N"),
        Arg(
            "--baseline-records",
            int,
            "N",
            "records for each baseline (default %(default)s; rates are rates)",
        ),
        Arg(
            "--baseline-seconds",
            float,
            "S",
            "stop a baseline after this long and rate what it committed (default %(default)s)",
        ),
        Arg("--skip-baseline"),
        Arg("--repeat", int, "N", repeat_help),
        *sweep,
        Arg("--timeout", float, "S", "give up on one measurement after this many seconds"),
        *output_args(plot_help),
    ]


def output_args(plot_help: str) -> list[Arg]:
    return [
        Arg("--json", Path, "PATH", "write the results as JSON", default=False),
        Arg("--plot", Path, "PNG", plot_help, default=False),
    ]


def options_from(cls: type[T], args: argparse.Namespace) -> T:
    """The options dataclass from the parsed arguments of the same names."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    if "repeat" in values:
        values["repeat"] = max(1, values["repeat"])
    return cls(**values)


def write_json(path: Path, result: dict[str, Any], indent: int = 2) -> None:
    """Write the results file (``--json``) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent, default=str) + "\n")
    print(f"wrote {path}")
