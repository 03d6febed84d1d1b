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
echo "== pytest"
.venv/bin/pytest "$@"
