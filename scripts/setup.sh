#!/usr/bin/env bash
# Installs the project into .venv (idempotent; fast when nothing changed).
#   scripts/setup.sh [--test]     --test also installs the test and lint tools
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"

if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
        rm -rf .venv
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi
stamp=".venv/.installed${extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".${extra}"
    touch "$stamp"
fi
