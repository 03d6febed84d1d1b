#!/usr/bin/env bash
# The main job: the default (demo) dataset end to end into PostgreSQL and Neo4j.
# Starts what is needed (services, the demo API, tableinator, graphinator), runs the
# extractor with a progress bar, and prints what landed in each store and the rate.
#   scripts/demo.sh [extra extractor run arguments]
#   DEMO_API_SIZE=100000 (records in the demo API)
# The services keep running afterwards so you can look at the data;
# `scripts/services.sh stop` stops them.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
LOGS="$REPO/.local/logs"
mkdir -p "$LOGS"

scripts/setup.sh
scripts/services.sh start

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

export DEMO_API_PORT="${DEMO_API_PORT:-8899}"
export EXTRACTOR_SOURCE_URL="http://127.0.0.1:${DEMO_API_PORT}"
.venv/bin/demo-api --size "${DEMO_API_SIZE:-100000}" >"$LOGS/demo-api.log" 2>&1 &
pids+=($!)
METRICS_PORT=9101 .venv/bin/tableinator >"$LOGS/tableinator.log" 2>&1 &
pids+=($!)
METRICS_PORT=9102 .venv/bin/graphinator >"$LOGS/graphinator.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    .venv/bin/python -c "import urllib.request as u; u.urlopen('$EXTRACTOR_SOURCE_URL/health', timeout=1)" \
        2>/dev/null && break
    sleep 0.2
done
# Prometheus (started by services.sh on 127.0.0.1:9090) scrapes the three processes.
mkdir -p .local/prometheus/targets
cat > .local/prometheus/targets/demo.json <<'JSON'
[{"targets": ["127.0.0.1:9101"], "labels": {"job": "tableinator"}},
 {"targets": ["127.0.0.1:9102"], "labels": {"job": "graphinator"}},
 {"targets": ["127.0.0.1:9103"], "labels": {"job": "extractor"}}]
JSON
echo "demo API, tableinator and graphinator running (logs in .local/logs/;" \
    "metrics in Prometheus at http://127.0.0.1:9090)"
METRICS_PORT=9103 .venv/bin/extractor run "$@"
