"""Command line of the demo API: `python -m demoapi` or the `demo-api` script."""

import argparse
import asyncio
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from pydantic import ValidationError

from demoapi.app import serve_demo_api
from demoapi.dataset import Dataset
from demoapi.faults import Faults
from demoapi.settings import DemoApiSettings

ARGUMENT_GROUPS = {
    "server": ("host", "port"),
    "dataset": ("size", "seed", "days", "end", "tie_seconds"),
    "faults": tuple(Faults.model_fields),
}

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FLAG_TYPES: dict[object, Callable[[str], object]] = {int: int, float: float}


def build_parser(defaults: DemoApiSettings) -> argparse.ArgumentParser:
    """One flag per setting, its default taken from the DEMO_API_* environment."""
    parser = argparse.ArgumentParser(
        prog="demo-api",
        description="Serve generated Showdown-style replays over a paginated search API.",
        epilog="Every flag also reads DEMO_API_<NAME>, e.g. DEMO_API_PORT=8899.",
    )
    for title, names in ARGUMENT_GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            field = DemoApiSettings.model_fields[name]
            group.add_argument(
                f"--{name.replace('_', '-')}",
                type=FLAG_TYPES.get(field.annotation, str),
                default=getattr(defaults, name),
                help=f"{field.description} (default: %(default)s)",
            )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> DemoApiSettings:
    """Read settings: flags over DEMO_API_* variables over built-in defaults."""
    try:
        defaults = DemoApiSettings()
    except ValidationError as exc:
        raise SystemExit(f"demo-api: bad DEMO_API_* setting: {exc}") from None
    parser = build_parser(defaults)
    try:
        return DemoApiSettings(**vars(parser.parse_args(argv)))
    except ValidationError as exc:
        parser.error(str(exc))


@contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """Yield an event that SIGTERM or SIGINT sets, for as long as the block runs."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def serve(dataset: Dataset, settings: DemoApiSettings) -> None:
    """Serve `dataset` until SIGTERM or SIGINT."""
    faults = settings.faults().model_dump()
    # Handlers go in before the ready line, so a signal sent on seeing it is never missed.
    with stop_signals() as stop:
        async with serve_demo_api(dataset, settings.host, settings.port, **faults) as url:
            print(f"demo-api listening on {url} size={dataset.size}", flush=True)
            await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m demoapi` and the `demo-api` console script."""
    settings = parse_settings(argv)
    try:
        dataset = Dataset(
            settings.size, settings.seed, settings.days, settings.end, settings.tie_seconds
        )
    except ValueError as exc:
        raise SystemExit(f"demo-api: {exc}") from None
    asyncio.run(serve(dataset, settings))


if __name__ == "__main__":
    main()
