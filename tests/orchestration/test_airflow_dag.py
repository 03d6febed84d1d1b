"""The example Airflow 3 DAG: it loads with no import errors, and ``dag.test()`` runs a
small job of the demo API end to end, into PostgreSQL (tableinator as a process).

Airflow lives in its own virtualenv (scripts/setup-orchestration.sh); scripts/test.sh runs
this file with that venv's pytest. Elsewhere it is skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.orchestration.conftest import SIZE, job_rows, landed_rows

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("airflow") is None,
    reason="Airflow is installed in .local/venv/airflow (scripts/setup-orchestration.sh)",
)
DAGS = Path(__file__).resolve().parents[2] / "orchestration" / "airflow" / "dags"


@pytest.fixture
def airflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A metadata DB (sqlite) in a temporary AIRFLOW_HOME, set before Airflow is imported."""
    home = tmp_path / "airflow"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home


def test_dag_runs_a_job_end_to_end(
    airflow_home: Path,
    extractor_env: None,
    demo_api: str,
    tableinator: None,
    demo_spec_file: Path,
    namespace: str,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.get_dag("backfill")
    assert dag is not None
    run = dag.test(run_conf={"spec": str(demo_spec_file), "source_url": demo_api})

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {
        "plan": "success",
        "submit": "success",
        "work": "success",
        "wait": "success",
        "report": "success",
        "slices_failed": "success",
        "retry_failed_slices": "skipped",  # no slice failed
    }
    assert str(run.state) == "success"
    assert landed_rows(namespace) == (SIZE, SIZE)
    assert [status for _, status in job_rows(namespace)] == ["done"]
