"""The example Prefect 3 flow on a temporary local server: a small job of the demo API end
to end into PostgreSQL (tableinator as a process), every slice in a process of its own.

Prefect lives in its own virtualenv (scripts/setup-orchestration.sh); scripts/test.sh runs
this file with that venv's pytest. Elsewhere it is skipped.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.orchestration.conftest import SIZE, job_rows, landed_rows

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("prefect") is None,
    reason="Prefect is installed in .local/venv/prefect (scripts/setup-orchestration.sh)",
)


@pytest.fixture
def prefect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ephemeral Prefect server with its database under a temporary PREFECT_HOME."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")
    # Its default 20 s is too short for the first start in a fresh venv on a busy 2-core
    # machine (CI: the server's modules are compiled and its database migrated then).
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def test_flow_runs_each_slice_in_a_fresh_process(
    prefect_home: None,
    extractor_env: None,
    demo_api: str,
    tableinator: None,
    demo_spec_file: Path,
    namespace: str,
) -> None:
    from orchestration.prefect.backfill_flow import backfill_flow

    account = backfill_flow(spec=str(demo_spec_file), source_url=demo_api)

    runs = account["slice_runs"]
    assert len(runs) == account["slices"]["done"] == 30
    assert {run["status"] for run in runs} == {"done"}
    pids = {run["pid"] for run in runs}
    assert len(pids) == 30 and os.getpid() not in pids  # a new process per slice
    assert account["status"] == "done" and account["records"] == SIZE
    assert account["landed"]["tableinator"]["replays"]["rows"] == SIZE
    assert landed_rows(namespace) == (SIZE, SIZE)
    assert [status for _, status in job_rows(namespace)] == ["done"]
