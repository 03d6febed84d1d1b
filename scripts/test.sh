#!/usr/bin/env bash
# The test command: installs the project and its test tools, starts RabbitMQ, PostgreSQL and
# Neo4j on 127.0.0.1 (scripts/services.sh), lints, type-checks and runs pytest against them.
#   scripts/test.sh [pytest arguments]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

scripts/setup.sh --test
if [ "${BACKFILL_TESTCONTAINERS:-0}" != "1" ]; then
    scripts/services.sh start
fi
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
if [ $# -eq 0 ]; then
    # Airflow and Prefect each have their own venv; their tests are skipped in .venv's run.
    echo "== orchestration: Airflow DAG and Prefect flow (tests/orchestration)"
    scripts/setup-orchestration.sh
    .local/venv/airflow/bin/pytest -q tests/orchestration/test_airflow_dag.py
    .local/venv/prefect/bin/pytest -q tests/orchestration/test_prefect_flow.py
fi
echo "== pytest"
.venv/bin/pytest "$@"
