"""Fixtures for the dump readers' tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.extractor.dumps.samples import ENTITIES, gzipped_copy, sample


@pytest.fixture
def gz_samples(tmp_path: Path) -> dict[str, Path]:
    """Every hand-written sample, gzipped into the test's directory."""
    return {entity: gzipped_copy(sample(entity), tmp_path) for entity in ENTITIES}
