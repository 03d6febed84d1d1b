#!/usr/bin/env bash
# Builds the schedulers' virtualenvs (idempotent; fast when nothing changed):
#   .local/venv/airflow  the project + its `airflow` extra (Airflow 3) + pytest
#   .local/venv/prefect  the project + its `prefect` extra (Prefect 3) + pytest
# Each has its own, since Airflow and Prefect pin many packages that need not agree with
# .venv's (or each other's). The project is installed editable, so the DAG and the flow
# import this checkout's code.
# Under .local/venv/ so that linters and the house check, which skip `venv`, skip them too.
#   scripts/setup-orchestration.sh [airflow|prefect|all]    (default: all)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

build() {
    local name="$1" venv=".local/venv/$1"
    if [ ! -x "$venv/bin/python" ]; then
        mkdir -p .local/venv
        python3 -m venv "$venv"
    fi
    local stamp="$venv/.installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        local started=$SECONDS
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -e ".[$name]" "pytest>=8" "pytest-asyncio>=0.24"
        touch "$stamp"
        echo "setup-orchestration: $venv installed in $((SECONDS - started)) s"
    fi
}

case "${1:-all}" in
    airflow) build airflow ;;
    prefect) build prefect ;;
    all) build airflow; build prefect ;;
    *) echo "usage: $0 [airflow|prefect|all]" >&2; exit 2 ;;
esac
