"""A bad spec stops the extractor before anything is published."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest
import yaml

from common.errors import SpecError
from common.settings import AmqpSettings
from extractor.backfill import JobOptions, run_backfill
from tests.support.pipeline import extractor_settings


async def queue_exists(name: str) -> bool:
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


async def test_spec_with_unknown_field_publishes_nothing(
    demo_spec_file: Path, namespace: str
) -> None:
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["entities"]["replays"]["paginator"]["page_sise"] = 10
    demo_spec_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as caught:
        await run_backfill(extractor_settings(demo_spec_file, "http://127.0.0.1:9"), JobOptions())
    assert caught.value.field == "entities.replays.paginator.page_sise"
    assert not await queue_exists(f"tableinator.{namespace}.replays")


def test_cli_exits_with_the_error(demo_spec_file: Path) -> None:
    raw = yaml.safe_load(demo_spec_file.read_text())
    del raw["entities"]["replays"]["key"]
    demo_spec_file.write_text(yaml.safe_dump(raw))
    done = subprocess.run(
        [sys.executable, "-m", "extractor", "run", "--spec", str(demo_spec_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"{demo_spec_file}: entities.replays.key: required field is missing" in done.stderr
