"""``extractor dlq list|show|replay|purge``: the dead letters of a dataset, for people."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
from rich.console import Console
from rich.table import Table

from common.errors import ConfigError
from common.settings import ExtractorSettings
from common.spec import load_spec
from common.topology import Topology
from extractor.dlq.queues import DeadLetter, DeadLetterQueues, Selection, group

DESCRIPTION = """\
The dead-letter queues of a dataset (<consumer>.<dataset>.<entity>.dlq): messages and
records a consumer could not process, each with its reason (x-reason) and error code
(x-error-code: not_json, bad_envelope, bad_version, bad_record, bad_key, nul_character,
rejected_by_store, too_large, ...).

  list     dead letters grouped by consumer, entity and code: count, first and last seen
  show     one dead letter (headers and body, records pretty); --raw prints the record
           alone (or the whole message body), ready to edit
  replay   put the selected dead letters back on the queue they came from, after a fix
           (spec, schema, or an edited record: --id X --from-file fixed.json); a record is
           replayed as a one-record page of its original job, slice and page
  purge    drop the selected dead letters (--yes to do it; without it, a dry run)

Listing takes nothing away: messages are read unacked and go back in their place. Replay
publishes with a confirm and drops a dead letter only after it, so a crash replays one twice
at worst (the upserts make that harmless). Select with --all, or any of --reason CODE,
--entity, --consumer, --id (repeatable) and --job; all given criteria must match.
"""
Action = Callable[[argparse.Namespace, DeadLetterQueues, Console], Awaitable[int]]


def add_parser(commands: Any, spec_parent: argparse.ArgumentParser) -> None:
    """The ``dlq`` subcommand and its actions, under ``extractor``."""
    dlq = commands.add_parser(
        "dlq",
        help="dead letters: list, show, replay, purge",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dlq.add_subparsers(dest="dlq_action", required=True)
    select = _selection_parent()
    listing = actions.add_parser("list", parents=[spec_parent, select], help="grouped by reason")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", parents=[spec_parent], help="one dead letter")
    show.add_argument("--id", required=True, dest="ids", action="append", help="its message id")
    show.add_argument("--consumer", help="when both consumers dead-lettered the same message")
    show.add_argument("--raw", action="store_true", help="only the record (or body), as JSON")
    replay = actions.add_parser("replay", parents=[spec_parent, select], help="back to the queue")
    replay.add_argument("--all", action="store_true", dest="everything", help="every dead letter")
    replay.add_argument(
        "--from-file", type=Path, help="replay this edited record (or message body); needs --id"
    )
    purge = actions.add_parser("purge", parents=[spec_parent, select], help="drop dead letters")
    purge.add_argument("--all", action="store_true", dest="everything", help="every dead letter")
    purge.add_argument("--yes", action="store_true", help="really drop them (else a dry run)")


def _selection_parent() -> argparse.ArgumentParser:
    select = argparse.ArgumentParser(add_help=False)
    select.add_argument(
        "--reason", action="append", default=[], metavar="CODE", help="error code (x-error-code)"
    )
    select.add_argument("--entity", help="entity name")
    select.add_argument("--consumer", help="tableinator, graphinator, ...")
    select.add_argument("--id", dest="ids", action="append", default=[], help="message id")
    select.add_argument("--job", dest="job_id", help="job id of the page it came in")
    return select


def selection(args: argparse.Namespace) -> Selection:
    return Selection(
        codes=tuple(getattr(args, "reason", []) or ()),
        entity=getattr(args, "entity", None),
        consumer=getattr(args, "consumer", None),
        ids=tuple(args.ids or ()),
        job_id=getattr(args, "job_id", None),
        everything=getattr(args, "everything", False),
    )


async def run(args: argparse.Namespace, settings: ExtractorSettings) -> int:
    """``extractor dlq ...``: open the broker, run the action."""
    spec = load_spec(settings.dataset.dataset_spec)
    chosen = selection(args)
    if args.dlq_action in ("replay", "purge") and chosen.empty:
        raise ConfigError("dlq: say which: --all, --reason, --entity, --consumer, --id or --job")
    if chosen.everything and chosen != Selection(everything=True):
        raise ConfigError("dlq: --all takes no other selection")
    if getattr(args, "from_file", None) and not chosen.ids:
        raise ConfigError("dlq: --from-file replays one dead letter: give its --id")
    connection = await aio_pika.connect(
        settings.amqp.url, client_properties={"connection_name": "extractor-dlq"}
    )
    async with connection:
        topology = Topology(settings.amqp.amqp_exchange)
        queues = DeadLetterQueues(connection, topology, spec, settings.amqp.consumers)
        return await ACTIONS[args.dlq_action](args, queues, Console())


async def _list(args: argparse.Namespace, queues: DeadLetterQueues, console: Console) -> int:
    letters = await queues.scan(selection(args))
    groups = group(letters)
    if args.json:
        print(orjson.dumps(groups, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not letters:
        console.print(f"no dead letters in {len(queues.queues)} queues of {queues.spec.name}")
        return 0
    console.print(groups_table(groups, f"dead letters of {queues.spec.name}: {len(letters):,}"))
    console.print(
        f"see one: extractor dlq show --id {letters[0].message_id}; after a fix: "
        "extractor dlq replay --reason CODE (or --entity, --id, --all)"
    )
    return 0


def groups_table(groups: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("consumer", "entity", "code", "count", "first seen", "last seen", "reason"):
        table.add_column(column, justify="right" if column == "count" else "left", overflow="fold")
    for g in groups:
        more = f" (+{g['reasons'] - 1} other reasons)" if g["reasons"] > 1 else ""
        table.add_row(
            g["consumer"],
            g["entity"],
            g["code"],
            f"{g['count']:,}",
            g["first_seen"] or "-",
            g["last_seen"] or "-",
            g["reason"][:160] + more + f"\ne.g. {g['example_id']}",
        )
    return table


async def _show(args: argparse.Namespace, queues: DeadLetterQueues, console: Console) -> int:
    letters = await queues.scan(selection(args))
    if not letters:
        console.print(f"no dead letter with id {args.ids[0]} in {queues.spec.name}'s queues")
        return 1
    if args.raw:
        bodies = {raw_body(letter) for letter in letters}
        if len(bodies) > 1:
            raise ConfigError("dlq: that id is in several queues: add --consumer")
        sys.stdout.buffer.write(bodies.pop() + b"\n")
        return 0
    for letter in letters:
        console.print(describe(letter))
    return 0


def raw_body(letter: DeadLetter) -> bytes:
    """What ``--from-file`` takes back: the record alone, or the whole message body."""
    if letter.kind == "record":
        return orjson.dumps(letter.record(), option=orjson.OPT_INDENT_2)
    return letter.body


def describe(letter: DeadLetter) -> str:
    headers = "\n".join(f"  {name}: {_plain(value)}" for name, value in letter.headers.items())
    lines = [
        f"[bold]{letter.message_id}[/bold] in {letter.queue.name} ({letter.kind})",
        headers,
        _pretty(letter.body),
    ]
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _pretty(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"body ({len(body):,} bytes, not JSON): {body[:2000]!r}"
    return orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode()


async def _replay(args: argparse.Namespace, queues: DeadLetterQueues, console: Console) -> int:
    replacement = _read_replacement(args.from_file) if args.from_file else None

    def replayed(letter: DeadLetter) -> None:
        console.print(f"replayed {letter.message_id} ({letter.code}) -> {letter.queue.source}")

    done = await queues.replay(selection(args), replacement, on_replayed=replayed)
    console.print(f"{len(done):,} dead letters replayed")
    return 0 if done else 1


def _read_replacement(path: Path) -> bytes:
    body = path.read_bytes()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        sys.exit(f"extractor dlq: {path}: not JSON: {exc}")
    return body


async def _purge(args: argparse.Namespace, queues: DeadLetterQueues, console: Console) -> int:
    chosen = selection(args)
    if not args.yes:
        letters = await queues.scan(chosen)
        console.print(groups_table(group(letters), f"would purge {len(letters):,} dead letters"))
        console.print("nothing dropped: add --yes to purge them")
        return 1
    dropped = await queues.purge(chosen)
    console.print(f"{dropped:,} dead letters purged")
    return 0


ACTIONS: dict[str, Action] = {
    "list": _list,
    "show": _show,
    "replay": _replay,
    "purge": _purge,
}
