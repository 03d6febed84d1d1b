#!/usr/bin/env bash
# Toxiproxy (Shopify's TCP fault proxy) for the fault-injection suite (python -m bench chaos).
#
#   scripts/toxiproxy.sh {install|start|stop|status}
#
# install: `go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0` into .local/bin
#          (GOPATH and the module cache under .local/go, git-ignored), once.
# start:   installs if missing, then runs the server on 127.0.0.1:${TOXIPROXY_PORT:-8474}
#          (log .local/logs/toxiproxy.log, pid .local/run/toxiproxy.pid); idempotent.
# The suite creates and deletes its proxies over the HTTP API; nothing else is configured here.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$REPO/.local"
BIN="$LOCAL/bin/server"
PORT="${TOXIPROXY_PORT:-8474}"
PID_FILE="$LOCAL/run/toxiproxy.pid"
LOG_FILE="$LOCAL/logs/toxiproxy.log"
VERSION=v2.5.0

log() { printf '[toxiproxy] %s\n' "$*"; }

answers() { curl -fsS -m 2 "http://127.0.0.1:$PORT/version" >/dev/null 2>&1; }

install() {
    [ -x "$BIN" ] && return 0
    command -v go >/dev/null || { log "ERROR: go is not installed"; exit 1; }
    mkdir -p "$LOCAL/bin" "$LOCAL/go"
    log "building toxiproxy $VERSION with go install (cached in .local/go)"
    GOBIN="$LOCAL/bin" GOPATH="$LOCAL/go" GOMODCACHE="$LOCAL/go/pkg/mod" \
        GOCACHE="$LOCAL/go/cache" GOFLAGS=-modcacherw \
        go install "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION"
}

start() {
    if answers; then log "already running on 127.0.0.1:$PORT"; return 0; fi
    install
    mkdir -p "$LOCAL/run" "$LOCAL/logs"
    nohup "$BIN" -host 127.0.0.1 -port "$PORT" >>"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 100); do
        if answers; then log "running on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"; return 0; fi
        sleep 0.1
    done
    log "ERROR: did not answer on 127.0.0.1:$PORT; see $LOG_FILE"; tail -n 20 "$LOG_FILE" >&2; exit 1
}

stop() {
    [ -f "$PID_FILE" ] || { log "not started by this script"; return 0; }
    local pid; pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; log "stopped (pid $pid)"; fi
    rm -f "$PID_FILE"
}

case "${1:-start}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) if answers; then log "running on 127.0.0.1:$PORT"; else log "down"; exit 3; fi ;;
    *) echo "usage: $0 {install|start|stop|status}" >&2; exit 1 ;;
esac
