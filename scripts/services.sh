#!/usr/bin/env bash
# Local services for development and CI, without systemd or Docker:
#   RabbitMQ (AMQP 127.0.0.1:5672, Prometheus metrics 127.0.0.1:15692), PostgreSQL 15
#   (127.0.0.1:5432), Neo4j 5.26 (Bolt 127.0.0.1:7687), Prometheus (http://127.0.0.1:9090).
#
#   scripts/services.sh {start|stop|status|restart} [rabbitmq|postgres|neo4j|prometheus|all]
#   (default: all)
#
# Idempotent: installs what is missing (Debian packages via apt-get, Neo4j via Maven), starts
# what is down, leaves alone what is up. Works as root (or with sudo), with or without stdin.
# Everything it creates for RabbitMQ and Neo4j lives under .local/ of the repository
# (git-ignored): .local/m2 (Maven), .local/neo4j, .local/rabbitmq, .local/prometheus, .local/logs,
# .local/run. Prometheus (Debian's package) scrapes the targets listed in files under
# .local/prometheus/targets/ (see deploy/prometheus/local.yml).
# PostgreSQL is Debian's cluster 15/main (log: /var/log/postgresql/postgresql-15-main.log) with
# role and database "backfill" (password "backfill").
#
# Environment overrides:
#   RABBITMQ_NODE_PORT (5672)  RABBITMQ_PROMETHEUS_PORT (15692)  PGPORT (5432)
#   NEO4J_BOLT_PORT (7687)  PROMETHEUS_PORT (9090)
#   NEO4J_HOME_DIR (.local/neo4j)  NEO4J_HEAP (1g)  NEO4J_AUTH_ENABLED (false)  NEO4J_PASSWORD
#   (a Neo4j on a port other than 7687 has its own pid file, log and lock: neo4j-PORT.*)
#   SERVICES_START_TIMEOUT (seconds to wait for each service to become ready, 120)
#
# Exit status: 0 on success; for status, 3 if a requested service is down; 1 on failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$REPO/.local"
LOG_DIR="$LOCAL/logs"
RUN_DIR="$LOCAL/run"
M2_REPO="$LOCAL/m2"

HOST=127.0.0.1
RABBITMQ_PORT="${RABBITMQ_NODE_PORT:-5672}"
PG_VERSION=15
PG_CLUSTER=main
PG_PORT="${PGPORT:-5432}"
PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
PG_LOG="/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
PG_ROLE=backfill
PG_PASSWORD=backfill
PG_DB=backfill
NEO4J_PORT="${NEO4J_BOLT_PORT:-7687}"
NEO4J_SRC="$REPO/scripts/neo4j"
NEO4J_HOME="$(realpath -m "${NEO4J_HOME_DIR:-$LOCAL/neo4j}")"
NEO4J_HEAP="${NEO4J_HEAP:-1g}"
# A second server on another port (a test's throwaway one) keeps its own pid, log and lock.
NEO4J_TAG=neo4j
[ "$NEO4J_PORT" = 7687 ] || NEO4J_TAG="neo4j-$NEO4J_PORT"
NEO4J_LOG="$LOG_DIR/$NEO4J_TAG.log"
NEO4J_PID="$RUN_DIR/$NEO4J_TAG.pid"
NEO4J_MAIN=local.backfill.neo4j.Neo4jServer
RABBITMQ_BIN=/usr/lib/rabbitmq/bin
RABBITMQ_BASE="$LOCAL/rabbitmq"
RABBITMQ_LOG="$LOG_DIR/rabbitmq.log"           # the node's own log
RABBITMQ_OUT="$LOG_DIR/rabbitmq-console.log"   # stdout/stderr of the launcher
RABBITMQ_LAUNCHER_PID="$RUN_DIR/rabbitmq-launcher.pid"
RABBITMQ_PROMETHEUS_PORT="${RABBITMQ_PROMETHEUS_PORT:-15692}"
PROM_PORT="${PROMETHEUS_PORT:-9090}"
PROM_BIN=/usr/bin/prometheus
PROM_BASE="$LOCAL/prometheus"
PROM_TARGETS="$PROM_BASE/targets"
PROM_CONFIG="$REPO/deploy/prometheus/local.yml"
PROM_LOG="$LOG_DIR/prometheus.log"
PROM_PID="$RUN_DIR/prometheus.pid"
TIMEOUT="${SERVICES_START_TIMEOUT:-120}"

T0="$EPOCHREALTIME"
MAIN_PID=$$
APT_UPDATED_FLAG="$RUN_DIR/apt-updated.$MAIN_PID"

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo -n); fi

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '[%s] %s\n' "$1" "${*:2}"; }
die() { log "$1" "ERROR: ${*:2}" >&2; exit 1; }

# seconds since $1 (an $EPOCHREALTIME value), one decimal
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# prints the last lines of a log file to stderr, indented
tail_log() {
    local file="$1" n="${2:-30}"
    if [ -r "$file" ]; then
        printf '  --- last %s lines of %s ---\n' "$n" "$file" >&2
        tail -n "$n" "$file" | sed 's/^/  | /' >&2
    else
        printf '  (no log at %s)\n' "$file" >&2
    fi
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() { [ -r "$1" ] && tr -dc '0-9' <"$1" || true; }

# true if process $1 is alive and its command line contains $2 (guards against pid reuse)
pid_matches() {
    pid_alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# Serialise start/stop of one service across concurrent runs of this script (fd 8). Daemons are
# always launched with 8>&- 9>&- so they do not keep the lock.
lock_service() { exec 8>"$RUN_DIR/$1.lock"; flock 8; }

# apt-get install of the packages whose marker file ($1=file:package pairs) is missing. One
# apt-get at a time (fd 9 lock, also across runs); 'apt-get update' at most once per run.
apt_ensure() {
    local tag="$1"; shift
    local pair missing=()
    for pair in "$@"; do
        [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local t="$EPOCHREALTIME" apt_log="$LOG_DIR/apt.log"
    (
        exec 9>"$RUN_DIR/apt.lock"
        flock 9
        # another job may have installed them while we waited for the lock
        local still=()
        for pair in "$@"; do
            [ -e "${pair%%:*}" ] || still+=("${pair#*:}")
        done
        [ "${#still[@]}" -eq 0 ] && exit 0
        log "$tag" "apt-get install ${still[*]} (log: $apt_log)"
        export DEBIAN_FRONTEND=noninteractive
        if [ ! -e "$APT_UPDATED_FLAG" ]; then
            if ! "${SUDO[@]}" apt-get update -q </dev/null >>"$apt_log" 2>&1 8>&- 9>&-; then
                tail_log "$apt_log"; die "$tag" "apt-get update failed"
            fi
            : >"$APT_UPDATED_FLAG"
        fi
        # Services must not be started by package scripts (no systemd here; we start them
        # ourselves, bound to 127.0.0.1): add a policy-rc.d for the install if there is none.
        local policy=/usr/sbin/policy-rc.d added_policy=
        if [ ! -e "$policy" ] && [ "${#SUDO[@]}" -eq 0 ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
        fi
        local rc=0
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o DPkg::Lock::Timeout=600 \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${still[@]}" </dev/null >>"$apt_log" 2>&1 8>&- 9>&- || rc=$?
        [ -n "$added_policy" ] && rm -f "$policy"
        if [ "$rc" -ne 0 ]; then
            tail_log "$apt_log"; die "$tag" "apt-get install ${still[*]} failed"
        fi
        : >"$RUN_DIR/apt-installed.$MAIN_PID"
        log "$tag" "installed ${still[*]} in $(since "$t") s"
    )
}

RABBITMQ_PKGS=("$RABBITMQ_BIN/rabbitmq-server:rabbitmq-server")
POSTGRES_PKGS=("$PG_BIN/postgres:postgresql" "/usr/bin/pg_ctlcluster:postgresql-common")
PROMETHEUS_PKGS=("$PROM_BIN:prometheus")
NEO4J_PKGS=()
neo4j_pkgs() {
    NEO4J_PKGS=()
    local java javac mvn
    java="$(command -v java || true)"; javac="$(command -v javac || true)"; mvn="$(command -v mvn || true)"
    [ -n "$java" ] && [ -n "$javac" ] || NEO4J_PKGS+=("/usr/lib/jvm/java-17-openjdk-amd64/bin/javac:openjdk-17-jdk-headless")
    [ -n "$mvn" ] || NEO4J_PKGS+=("/usr/bin/mvn:maven")
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ: a node of our own (rabbit@localhost), run as the invoking user, with its data,
# config, cookie and logs under .local/; only 127.0.0.1 is bound (AMQP, Erlang distribution,
# epmd). Debian's rabbitmq-server package provides the binaries; its own instance stays unused.

rabbitmq_env() {
    export HOME="$RABBITMQ_BASE"   # Erlang cookie lives in $HOME/.erlang.cookie
    export RABBITMQ_NODENAME=rabbit@localhost
    export RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_NODE_IP_ADDRESS="$HOST"
    export RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
    export RABBITMQ_DIST_PORT=$((RABBITMQ_PORT + 20000))
    export RABBITMQ_CONF_ENV_FILE="$RABBITMQ_BASE/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="$RABBITMQ_BASE/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBITMQ_BASE/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_BASE/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$RABBITMQ_BASE/mnesia"
    export RABBITMQ_PLUGINS_EXPAND_DIR="$RABBITMQ_BASE/plugins-expand"
    export RABBITMQ_LOG_BASE="$LOG_DIR"
    export RABBITMQ_LOGS="$RABBITMQ_LOG"
    export RABBITMQ_PID_FILE="$RUN_DIR/rabbitmq.pid"
    # Erlang distribution (server and CLI tools) and epmd on loopback only.
    export ERL_EPMD_ADDRESS="$HOST"
    export ERL_ZFLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbitmq_cli() {  # rabbitmq_cli TOOL ARGS... ; output to $RUN_DIR/rabbitmq-cli.out
    ( rabbitmq_env; "$RABBITMQ_BIN/$1" "${@:2}" ) </dev/null >"$RUN_DIR/rabbitmq-cli.out" 2>&1 8>&- 9>&-
}

rabbitmq_up() { port_open "$HOST" "$RABBITMQ_PORT"; }

rabbitmq_managed() {
    pid_alive "$(read_pid "$RUN_DIR/rabbitmq.pid")" || pid_alive "$(read_pid "$RABBITMQ_LAUNCHER_PID")"
}

rabbitmq_prepare() {
    mkdir -p "$RABBITMQ_BASE/mnesia"
    local cookie="$RABBITMQ_BASE/.erlang.cookie"
    if [ ! -s "$cookie" ]; then
        (umask 077; LC_ALL=C tr -dc 'A-Z' </dev/urandom | head -c 32 >"$cookie")
        chmod 400 "$cookie"
    fi
    : >"$RABBITMQ_CONF_ENV_FILE"  # do not read /etc/rabbitmq/rabbitmq-env.conf
    cat >"$RABBITMQ_CONFIG_FILE" <<EOF
# generated by scripts/services.sh
# AMQP listener: RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT in the environment
loopback_users.guest = true
log.file.level = info
log.console = false
# rabbitmq_prometheus: queue depths for Prometheus, on loopback only
prometheus.tcp.ip = $HOST
prometheus.tcp.port = $RABBITMQ_PROMETHEUS_PORT
EOF
    [ -e "$RABBITMQ_ADVANCED_CONFIG_FILE" ] || echo '[].' >"$RABBITMQ_ADVANCED_CONFIG_FILE"
    grep -q rabbitmq_prometheus "$RABBITMQ_ENABLED_PLUGINS_FILE" 2>/dev/null \
        || echo '[rabbitmq_prometheus].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
}

# A node of ours started before the plugin was part of its set: enable it without a restart.
rabbitmq_ensure_prometheus() {
    local port="$RABBITMQ_PROMETHEUS_PORT" wildcard=
    # listening on every interface (enabled by hand without our settings): rebind it
    ss -Hltn "sport = :$port" 2>/dev/null | grep -qvF "$HOST:$port" && wildcard=1
    port_open "$HOST" "$port" && [ -z "$wildcard" ] && return 0
    if ! rabbitmq_managed; then
        log rabbitmq "not started by this script: enable rabbitmq_prometheus on it yourself (port $port)"
        return 0
    fi
    rabbitmq_prepare
    [ -n "$wildcard" ] && rabbitmq_cli rabbitmq-plugins disable rabbitmq_prometheus
    # the running node read rabbitmq.conf before the plugin was in its set: set the listener
    rabbitmq_cli rabbitmqctl eval \
        "application:set_env(rabbitmq_prometheus, tcp_config, [{ip, \"$HOST\"}, {port, $port}])."
    if rabbitmq_cli rabbitmq-plugins enable rabbitmq_prometheus; then
        log rabbitmq "enabled rabbitmq_prometheus on http://$HOST:$RABBITMQ_PROMETHEUS_PORT/metrics"
    else
        tail_log "$RUN_DIR/rabbitmq-cli.out"; log rabbitmq "could not enable rabbitmq_prometheus"
    fi
}

start_rabbitmq() {
    local t="$EPOCHREALTIME"
    apt_ensure rabbitmq "${RABBITMQ_PKGS[@]}"
    lock_service rabbitmq
    rabbitmq_env
    if rabbitmq_up; then
        if rabbitmq_managed; then
            log rabbitmq "already up on amqp://$HOST:$RABBITMQ_PORT"
            rabbitmq_ensure_prometheus
        else
            log rabbitmq "port $HOST:$RABBITMQ_PORT already answers (a broker not started by this script); using it"
        fi
        record rabbitmq "$t"; return 0
    fi
    local launcher
    launcher="$(read_pid "$RABBITMQ_LAUNCHER_PID")"
    if ! pid_matches "$launcher" rabbitmq-server; then
        rabbitmq_prepare
        [ -e "$RABBITMQ_OUT" ] && mv -f "$RABBITMQ_OUT" "$RABBITMQ_OUT.1"
        [ -e "$RABBITMQ_LOG" ] && mv -f "$RABBITMQ_LOG" "$RABBITMQ_LOG.1"
        rm -f "$RABBITMQ_PID_FILE"
        # foreground mode in our own session: the launcher (sh) waits for the Erlang VM and
        # forwards SIGTERM; we keep its pid.
        (cd "$RABBITMQ_BASE" && exec nohup setsid "$RABBITMQ_BIN/rabbitmq-server") \
            </dev/null >"$RABBITMQ_OUT" 2>&1 8>&- 9>&- &
        launcher=$!
        echo "$launcher" >"$RABBITMQ_LAUNCHER_PID"
        log rabbitmq "starting (pid $launcher, log $RABBITMQ_LOG)"
    else
        log rabbitmq "already starting (pid $launcher), waiting"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until rabbitmq_up; do
        if ! pid_alive "$launcher"; then
            tail_log "$RABBITMQ_OUT"; tail_log "$RABBITMQ_LOG"
            die rabbitmq "the broker exited during start-up (logs: $RABBITMQ_LOG, $RABBITMQ_OUT)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail_log "$RABBITMQ_LOG"
            die rabbitmq "not answering on $HOST:$RABBITMQ_PORT after ${TIMEOUT} s (log: $RABBITMQ_LOG)"
        fi
        sleep 0.5
    done
    if ! rabbitmq_cli rabbitmq-diagnostics -q check_port_connectivity; then
        tail_log "$RUN_DIR/rabbitmq-cli.out"; tail_log "$RABBITMQ_LOG"
        die rabbitmq "port open but check_port_connectivity failed (log: $RABBITMQ_LOG)"
    fi
    log rabbitmq "up on amqp://guest:guest@$HOST:$RABBITMQ_PORT/ in $(since "$t") s"
    record rabbitmq "$t"
}

stop_rabbitmq() {
    [ -x "$RABBITMQ_BIN/rabbitmq-server" ] || { log rabbitmq "not installed"; return 0; }
    lock_service rabbitmq
    rabbitmq_env
    local launcher beam
    launcher="$(read_pid "$RABBITMQ_LAUNCHER_PID")"
    beam="$(read_pid "$RABBITMQ_PID_FILE")"
    if ! pid_alive "$launcher" && ! pid_alive "$beam"; then
        rm -f "$RABBITMQ_LAUNCHER_PID" "$RABBITMQ_PID_FILE"
        if rabbitmq_up; then
            log rabbitmq "port $RABBITMQ_PORT answers but the broker was not started by this script; left alone"
        else
            log rabbitmq "not running"
        fi
        return 0
    fi
    local t="$EPOCHREALTIME"
    if ! rabbitmq_cli rabbitmqctl stop ${beam:+"$RABBITMQ_PID_FILE"}; then
        log rabbitmq "rabbitmqctl stop failed ($(tail -n 1 "$RUN_DIR/rabbitmq-cli.out")); sending SIGTERM"
        pid_alive "$launcher" && kill -TERM "$launcher" 2>/dev/null || true
        pid_alive "$beam" && kill -TERM "$beam" 2>/dev/null || true
    fi
    stop_pids rabbitmq 30 "$launcher" "$beam"
    rm -f "$RABBITMQ_LAUNCHER_PID" "$RABBITMQ_PID_FILE"
    # epmd refuses to die while another Erlang node is registered, which is what we want
    epmd -kill >/dev/null 2>&1 </dev/null || true
    log rabbitmq "stopped in $(since "$t") s"
}

status_rabbitmq() {
    if rabbitmq_up; then
        local who="pid $(read_pid "$RUN_DIR/rabbitmq.pid")"
        rabbitmq_managed || who="not started by this script"
        printf '%-9s up    amqp://%s:%s (%s)\n' rabbitmq "$HOST" "$RABBITMQ_PORT" "$who"
    else
        printf '%-9s down  amqp://%s:%s\n' rabbitmq "$HOST" "$RABBITMQ_PORT"
        return 3
    fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL 15: Debian's cluster 15/main, started with pg_ctlcluster (no systemd).

pg_psql() {  # psql as the postgres superuser over the local socket
    (cd / && "${SUDO[@]}" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@") 8>&- 9>&-
}

pg_ready() { pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2 </dev/null >/dev/null 2>&1; }

pg_status_word() {  # online/down/missing
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" \
        '$1 == v && $2 == c { print $4; found = 1 } END { if (!found) print "missing" }'
}

# Settings for a bulk-loading dev box; durability (fsync, synchronous_commit) stays default.
PG_SETTINGS="# generated by scripts/services.sh: local dev/CI tuning
listen_addresses = 'localhost'
port = $PG_PORT
max_connections = 200
shared_buffers = 512MB
max_wal_size = 2GB
"

start_postgres() {
    local t="$EPOCHREALTIME"
    apt_ensure postgres "${POSTGRES_PKGS[@]}"
    lock_service postgres
    local conf_dir="/etc/postgresql/$PG_VERSION/$PG_CLUSTER"
    if [ ! -e "$conf_dir/postgresql.conf" ]; then
        log postgres "creating cluster $PG_VERSION/$PG_CLUSTER"
        "${SUDO[@]}" pg_createcluster -p "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER" \
            </dev/null >"$RUN_DIR/pg-create.out" 2>&1 8>&- 9>&- \
            || { tail_log "$RUN_DIR/pg-create.out"; die postgres "pg_createcluster failed"; }
    fi
    # Our settings go in conf.d (included by Debian's postgresql.conf); a change while the
    # server runs means one restart.
    local settings="$conf_dir/conf.d/90-backfill.conf" changed=
    if [ "$(cat "$settings" 2>/dev/null)" != "$(printf '%s' "$PG_SETTINGS")" ]; then
        printf '%s' "$PG_SETTINGS" | "${SUDO[@]}" tee "$settings" >/dev/null
        changed=1
    fi
    local state; state="$(pg_status_word)"
    if [ "$state" = online ] && [ -n "$changed" ]; then
        log postgres "settings changed: restarting cluster $PG_VERSION/$PG_CLUSTER"
        "${SUDO[@]}" pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart -- -w -t "$TIMEOUT" \
            </dev/null >"$RUN_DIR/pg-start.out" 2>&1 8>&- 9>&- \
            || { tail_log "$RUN_DIR/pg-start.out"; tail_log "$PG_LOG"; die postgres "restart failed (log: $PG_LOG)"; }
    elif [ "$state" != online ]; then
        log postgres "starting cluster $PG_VERSION/$PG_CLUSTER (log $PG_LOG)"
        "${SUDO[@]}" pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start -- -w -t "$TIMEOUT" \
            </dev/null >"$RUN_DIR/pg-start.out" 2>&1 8>&- 9>&- || {
            # tolerate a concurrent start
            if [ "$(pg_status_word)" != online ]; then
                tail_log "$RUN_DIR/pg-start.out"; tail_log "$PG_LOG"
                die postgres "pg_ctlcluster start failed (log: $PG_LOG)"
            fi
        }
    else
        log postgres "cluster $PG_VERSION/$PG_CLUSTER already online"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until pg_ready; do
        [ "$SECONDS" -lt "$deadline" ] || { tail_log "$PG_LOG"; die postgres "not ready on $HOST:$PG_PORT after ${TIMEOUT} s (log: $PG_LOG)"; }
        sleep 0.3
    done
    # role and database, idempotently
    pg_psql -d postgres >"$RUN_DIR/pg-setup.out" 2>&1 <<SQL || { tail_log "$RUN_DIR/pg-setup.out"; die postgres "creating role/database failed"; }
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', '$PG_ROLE', '$PG_PASSWORD')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', '$PG_ROLE', '$PG_PASSWORD')
 WHERE EXISTS (SELECT FROM pg_roles r WHERE r.rolname = '$PG_ROLE'
               AND NOT (r.rolcanlogin AND r.rolcreatedb)) \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_ROLE')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', '$PG_DB', '$PG_ROLE')
 FROM pg_database d WHERE d.datname = '$PG_DB'
  AND pg_get_userbyid(d.datdba) <> '$PG_ROLE' \gexec
SQL
    # password login over TCP, as the applications do
    if ! PGPASSWORD="$PG_PASSWORD" psql -X -q -At -h "$HOST" -p "$PG_PORT" -U "$PG_ROLE" -d "$PG_DB" \
            -c 'select 1' </dev/null >"$RUN_DIR/pg-check.out" 2>&1; then
        # the password may have been changed by hand: set it again, then retry once
        pg_psql -d postgres -c "ALTER ROLE $PG_ROLE PASSWORD '$PG_PASSWORD'" </dev/null >/dev/null 2>&1 || true
        PGPASSWORD="$PG_PASSWORD" psql -X -q -At -h "$HOST" -p "$PG_PORT" -U "$PG_ROLE" -d "$PG_DB" \
            -c 'select 1' </dev/null >"$RUN_DIR/pg-check.out" 2>&1 \
            || { tail_log "$RUN_DIR/pg-check.out"; die postgres "password login as $PG_ROLE over TCP failed"; }
    fi
    log postgres "up on postgresql://$PG_ROLE:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB in $(since "$t") s"
    record postgres "$t"
}

stop_postgres() {
    if [ ! -x /usr/bin/pg_ctlcluster ] || [ ! -e "/etc/postgresql/$PG_VERSION/$PG_CLUSTER" ]; then
        log postgres "not installed"; return 0
    fi
    lock_service postgres
    if [ "$(pg_status_word)" != online ]; then
        log postgres "not running"; return 0
    fi
    local t="$EPOCHREALTIME"
    "${SUDO[@]}" pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast \
        </dev/null >"$RUN_DIR/pg-stop.out" 2>&1 8>&- 9>&- || {
        if [ "$(pg_status_word)" = online ]; then
            tail_log "$RUN_DIR/pg-stop.out"; die postgres "pg_ctlcluster stop failed"
        fi
    }
    log postgres "stopped in $(since "$t") s"
}

status_postgres() {
    if pg_ready; then
        printf '%-9s up    postgresql://%s@%s:%s/%s (cluster %s/%s)\n' postgres "$PG_ROLE" "$HOST" "$PG_PORT" "$PG_DB" "$PG_VERSION" "$PG_CLUSTER"
    else
        printf '%-9s down  postgresql://%s:%s (cluster %s/%s)\n' postgres "$HOST" "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER"
        return 3
    fi
}

# ---------------------------------------------------------------------------------------------
# Neo4j 5.26 Community: embedded database with Bolt (scripts/neo4j), built with Maven.

neo4j_build() {
    local stamp="$NEO4J_SRC/target/.services-build-stamp" hash
    hash="$( (cat "$NEO4J_SRC/pom.xml"; find "$NEO4J_SRC/src" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat) | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] \
        && [ -n "$(find "$NEO4J_SRC/target/classes" -name 'Neo4jServer.class' 2>/dev/null)" ] \
        && [ -n "$(find "$NEO4J_SRC/target/lib" -name 'neo4j-kernel-*.jar' 2>/dev/null)" ]; then
        return 0
    fi
    local t="$EPOCHREALTIME" build_log="$LOG_DIR/neo4j-build.log"
    log neo4j "building launcher with Maven (log $build_log)"
    local mvn=(mvn -B -q -f "$NEO4J_SRC/pom.xml" "-Dmaven.repo.local=$M2_REPO" package)
    rm -f "$stamp"
    # offline first when the local repository exists (fast, no network), online otherwise
    if ! { [ -d "$M2_REPO" ] && "${mvn[@]}" -o </dev/null >"$build_log" 2>&1 8>&- 9>&-; }; then
        "${mvn[@]}" </dev/null >"$build_log" 2>&1 8>&- 9>&- \
            || { tail_log "$build_log"; die neo4j "Maven build failed (log: $build_log)"; }
    fi
    echo "$hash" >"$stamp"
    log neo4j "built in $(since "$t") s"
}

neo4j_pid() { local p; p="$(read_pid "$NEO4J_PID")"; pid_matches "$p" "$NEO4J_MAIN" && echo "$p" || true; }

neo4j_conf() {
    mkdir -p "$NEO4J_HOME/conf"
    local conf="$NEO4J_HOME/conf/neo4j.conf"
    {
        echo "# generated by scripts/services.sh from scripts/neo4j/neo4j.conf.template"
        cat "$NEO4J_SRC/neo4j.conf.template"
    } >"$conf.tmp"
    mv -f "$conf.tmp" "$conf"
    echo "$conf"
}

start_neo4j() {
    local t="$EPOCHREALTIME"
    neo4j_pkgs
    apt_ensure neo4j "${NEO4J_PKGS[@]}"
    lock_service "$NEO4J_TAG"
    local pid; pid="$(neo4j_pid)"
    if [ -n "$pid" ] && port_open "$HOST" "$NEO4J_PORT"; then
        log neo4j "already up on bolt://$HOST:$NEO4J_PORT (pid $pid)"
        record neo4j "$t"; return 0
    fi
    if [ -z "$pid" ]; then
        if port_open "$HOST" "$NEO4J_PORT"; then
            log neo4j "port $HOST:$NEO4J_PORT already answers (a server not started by this script); using it"
            record neo4j "$t"; return 0
        fi
        neo4j_build
        local conf; conf="$(neo4j_conf)"
        [ -e "$NEO4J_LOG" ] && mv -f "$NEO4J_LOG" "$NEO4J_LOG.1"
        rm -f "$NEO4J_PID"
        # bash writes its own pid, then becomes the JVM: the pid file is the JVM's pid
        (
            cd "$NEO4J_SRC"
            export NEO4J_HOME_DIR="$NEO4J_HOME" NEO4J_BOLT_HOST="$HOST" NEO4J_BOLT_PORT="$NEO4J_PORT" \
                NEO4J_CONF_FILE="$conf" NEO4J_AUTH_ENABLED="${NEO4J_AUTH_ENABLED:-false}"
            exec nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$NEO4J_PID" \
                java "-Xms${NEO4J_HEAP}" "-Xmx${NEO4J_HEAP}" -XX:+UseG1GC \
                -XX:+ExitOnOutOfMemoryError \
                --add-opens=java.base/java.nio=ALL-UNNAMED \
                --add-opens=java.base/java.io=ALL-UNNAMED \
                --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
                --add-opens=java.base/java.lang=ALL-UNNAMED \
                -Dfile.encoding=UTF-8 \
                -cp 'target/classes:target/lib/*' "$NEO4J_MAIN"
        ) </dev/null >"$NEO4J_LOG" 2>&1 8>&- 9>&- &
        local launcher=$!
        local i
        for i in $(seq 50); do [ -s "$NEO4J_PID" ] && break; sleep 0.1; done
        pid="$(read_pid "$NEO4J_PID")"
        [ -n "$pid" ] || pid="$launcher"
        log neo4j "starting (pid $pid, home $NEO4J_HOME, log $NEO4J_LOG)"
    else
        log neo4j "already starting (pid $pid), waiting"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until grep -q '^NEO4J READY' "$NEO4J_LOG" 2>/dev/null; do
        if ! pid_alive "$pid"; then
            tail_log "$NEO4J_LOG" 40
            die neo4j "the JVM exited during start-up (log: $NEO4J_LOG, $NEO4J_HOME/logs/debug.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail_log "$NEO4J_LOG"; tail_log "$NEO4J_HOME/logs/debug.log"
            kill -TERM "$pid" 2>/dev/null || true
            stop_pids neo4j 30 "$pid"
            die neo4j "no READY line after ${TIMEOUT} s; stopped it (log: $NEO4J_LOG)"
        fi
        sleep 0.3
    done
    port_open "$HOST" "$NEO4J_PORT" || { tail_log "$NEO4J_LOG"; die neo4j "READY but Bolt port $NEO4J_PORT closed"; }
    log neo4j "up on bolt://$HOST:$NEO4J_PORT (auth ${NEO4J_AUTH_ENABLED:-false}) in $(since "$t") s"
    record neo4j "$t"
}

stop_neo4j() {
    lock_service "$NEO4J_TAG"
    local pid; pid="$(neo4j_pid)"
    if [ -z "$pid" ]; then
        rm -f "$NEO4J_PID"
        if port_open "$HOST" "$NEO4J_PORT"; then
            log neo4j "port $NEO4J_PORT answers but the server was not started by this script; left alone"
        else
            log neo4j "not running"
        fi
        return 0
    fi
    local t="$EPOCHREALTIME"
    kill -TERM "$pid" 2>/dev/null || true
    stop_pids neo4j 30 "$pid"
    rm -f "$NEO4J_PID"
    log neo4j "stopped in $(since "$t") s"
}

status_neo4j() {
    local pid who; pid="$(neo4j_pid)"
    if port_open "$HOST" "$NEO4J_PORT"; then
        if [ -n "$pid" ]; then who="pid $pid, home $NEO4J_HOME"; else who="not started by this script"; fi
        printf '%-9s up    bolt://%s:%s (%s)\n' neo4j "$HOST" "$NEO4J_PORT" "$who"
    else
        printf '%-9s down  bolt://%s:%s%s\n' neo4j "$HOST" "$NEO4J_PORT" "${pid:+ (pid $pid alive, starting?)}"
        return 3
    fi
}

# ---------------------------------------------------------------------------------------------
# Prometheus: Debian's package, run as our own process on 127.0.0.1 with
# deploy/prometheus/local.yml (1 s scrapes; targets from files under .local/prometheus/targets,
# written by tests and scripts/demo.sh for the processes they start). Storage under
# .local/prometheus/data, log .local/logs/prometheus.log.

prometheus_pid() { local p; p="$(read_pid "$PROM_PID")"; pid_matches "$p" "$PROM_BIN" && echo "$p" || true; }

prometheus_up() {
    port_open "$HOST" "$PROM_PORT" || return 1
    command -v curl >/dev/null || return 0
    curl -sf -o /dev/null "http://$HOST:$PROM_PORT/-/ready" 2>/dev/null
}

# the targets services.sh knows: Prometheus itself and RabbitMQ's per-queue metrics
prometheus_targets() {
    mkdir -p "$PROM_TARGETS"
    printf '[{"targets": ["%s:%s"], "labels": {"job": "prometheus"}}]\n' "$HOST" "$PROM_PORT" \
        >"$PROM_TARGETS/.prometheus.tmp"
    mv -f "$PROM_TARGETS/.prometheus.tmp" "$PROM_TARGETS/prometheus.json"
    # one series per queue; every 5 s, as the node may hold the queues of many test runs
    printf '[{"targets": ["%s:%s"], "labels": {"job": "rabbitmq", "__metrics_path__": "/metrics/per-object", "__scrape_interval__": "5s", "__scrape_timeout__": "4s"}}]\n' \
        "$HOST" "$RABBITMQ_PROMETHEUS_PORT" >"$PROM_TARGETS/.rabbitmq.tmp"
    mv -f "$PROM_TARGETS/.rabbitmq.tmp" "$PROM_TARGETS/rabbitmq.json"
}

start_prometheus() {
    local t="$EPOCHREALTIME"
    apt_ensure prometheus "${PROMETHEUS_PKGS[@]}"
    lock_service prometheus
    prometheus_targets
    local pid; pid="$(prometheus_pid)"
    if prometheus_up; then
        if [ -n "$pid" ]; then
            kill -HUP "$pid"  # re-read local.yml and alerts.yml, which may have changed
            log prometheus "already up on http://$HOST:$PROM_PORT (pid $pid); configuration reloaded"
        else
            log prometheus "port $HOST:$PROM_PORT already answers (a server not started by this script); using it"
        fi
        record prometheus "$t"; return 0
    fi
    if [ -z "$pid" ]; then
        if port_open "$HOST" "$PROM_PORT"; then
            die prometheus "port $HOST:$PROM_PORT is taken by something that is not a ready Prometheus"
        fi
        "$PROM_BIN" --version >/dev/null 2>&1 || die prometheus "$PROM_BIN does not run"
        mkdir -p "$PROM_BASE/data"
        [ -e "$PROM_LOG" ] && mv -f "$PROM_LOG" "$PROM_LOG.1"
        (
            cd "$PROM_BASE"
            exec nohup setsid "$PROM_BIN" --config.file="$PROM_CONFIG" \
                --storage.tsdb.path="$PROM_BASE/data" --storage.tsdb.retention.time=2d \
                --web.listen-address="$HOST:$PROM_PORT" --web.enable-lifecycle
        ) </dev/null >"$PROM_LOG" 2>&1 8>&- 9>&- &
        pid=$!
        echo "$pid" >"$PROM_PID"
        log prometheus "starting (pid $pid, log $PROM_LOG)"
    else
        log prometheus "already starting (pid $pid), waiting"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until prometheus_up; do
        if ! pid_alive "$pid"; then
            tail_log "$PROM_LOG"; die prometheus "exited during start-up (log: $PROM_LOG)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail_log "$PROM_LOG"; die prometheus "not ready on $HOST:$PROM_PORT after ${TIMEOUT} s (log: $PROM_LOG)"
        fi
        sleep 0.3
    done
    log prometheus "up on http://$HOST:$PROM_PORT (targets: $PROM_TARGETS) in $(since "$t") s"
    record prometheus "$t"
}

stop_prometheus() {
    lock_service prometheus
    local pid; pid="$(prometheus_pid)"
    if [ -z "$pid" ]; then
        rm -f "$PROM_PID"
        if port_open "$HOST" "$PROM_PORT"; then
            log prometheus "port $PROM_PORT answers but the server was not started by this script; left alone"
        else
            log prometheus "not running"
        fi
        return 0
    fi
    local t="$EPOCHREALTIME"
    kill -TERM "$pid" 2>/dev/null || true
    stop_pids prometheus 30 "$pid"
    rm -f "$PROM_PID"
    log prometheus "stopped in $(since "$t") s"
}

status_prometheus() {
    local pid who; pid="$(prometheus_pid)"
    if prometheus_up; then
        if [ -n "$pid" ]; then who="pid $pid, targets $PROM_TARGETS"; else who="not started by this script"; fi
        printf '%-10s up    http://%s:%s (%s)\n' prometheus "$HOST" "$PROM_PORT" "$who"
    else
        printf '%-10s down  http://%s:%s\n' prometheus "$HOST" "$PROM_PORT"
        return 3
    fi
}

# ---------------------------------------------------------------------------------------------

# wait up to $2 s for the pids to exit, then SIGKILL them
stop_pids() {
    local tag="$1" wait_s="$2"; shift 2
    local deadline=$((SECONDS + wait_s)) p alive
    while :; do
        alive=
        for p in "$@"; do pid_alive "$p" && alive=1; done
        [ -z "$alive" ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && break
        sleep 0.2
    done
    for p in "$@"; do
        if pid_alive "$p"; then
            log "$tag" "still running after ${wait_s} s: SIGKILL $p"
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
}

# time from the start of this run until service $1 was ready (what the summary line shows)
record() { since "$T0" >"$RUN_DIR/elapsed.$MAIN_PID.$1"; }

usage() {
    echo "usage: $0 {start|stop|status|restart} [rabbitmq|postgres|neo4j|prometheus|all]" >&2
    exit 2
}

cleanup() {
    rm -f "$APT_UPDATED_FLAG" "$RUN_DIR/apt-installed.$MAIN_PID" "$RUN_DIR"/elapsed."$MAIN_PID".* \
        2>/dev/null || true
}

run_parallel() {  # run_parallel ACTION SERVICE... : each in the background; fails if any failed
    local action="$1"; shift
    local -A pids=()
    local s rc=0
    for s in "$@"; do
        "${action}_$s" &
        pids[$s]=$!
    done
    for s in "$@"; do
        wait "${pids[$s]}" || rc=1
    done
    return "$rc"
}

do_start() {
    T0="$EPOCHREALTIME"
    local services=("$@") s rc=0
    # One apt-get run for everything missing, while the Neo4j build/start (if its tools are
    # already there) goes on in the background.
    local pkgs=() neo4j_job=
    for s in "${services[@]}"; do
        case "$s" in
            rabbitmq) pkgs+=("${RABBITMQ_PKGS[@]}") ;;
            postgres) pkgs+=("${POSTGRES_PKGS[@]}") ;;
            prometheus) pkgs+=("${PROMETHEUS_PKGS[@]}") ;;
            neo4j) neo4j_pkgs; pkgs+=("${NEO4J_PKGS[@]}")
                   if [ "${#NEO4J_PKGS[@]}" -eq 0 ]; then start_neo4j & neo4j_job=$!; fi ;;
        esac
    done
    if [ "${#pkgs[@]}" -gt 0 ]; then
        apt_ensure apt "${pkgs[@]}" || rc=1
    fi
    local rest=()
    for s in "${services[@]}"; do
        [ "$s" = neo4j ] && [ -n "$neo4j_job" ] && continue
        rest+=("$s")
    done
    if [ "$rc" -eq 0 ]; then
        run_parallel start "${rest[@]}" || rc=1
    fi
    if [ -n "$neo4j_job" ]; then wait "$neo4j_job" || rc=1; fi

    local summary="" e
    for s in "${services[@]}"; do
        if e="$(cat "$RUN_DIR/elapsed.$MAIN_PID.$s" 2>/dev/null)"; then
            summary+=" $s=${e}s"
        else
            summary+=" $s=FAILED"
        fi
    done
    echo "services start (seconds until ready):${summary}, total $(since "$T0") s$([ -e "$RUN_DIR/apt-installed.$MAIN_PID" ] && echo ' incl. apt-get install')"
    return "$rc"
}

main() {
    local action="${1:-}" which="${2:-all}"
    [ $# -le 2 ] || usage
    local services
    case "$which" in
        all) services=(rabbitmq postgres neo4j prometheus) ;;
        rabbitmq|postgres|neo4j|prometheus) services=("$which") ;;
        *) usage ;;
    esac
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    trap cleanup EXIT
    case "$action" in
        start) do_start "${services[@]}" ;;
        stop)
            run_parallel stop "${services[@]}" ;;
        restart)
            run_parallel stop "${services[@]}"
            do_start "${services[@]}" ;;
        status)
            local s rc=0
            for s in "${services[@]}"; do "status_$s" || rc=3; done
            return "$rc" ;;
        *) usage ;;
    esac
}

main "$@"
