#!/usr/bin/env bash
# Import a bulk load into the local Neo4j of scripts/services.sh:
#
#   scripts/neo4j-import.sh ARGS_FILE
#
# Stops the local server (scripts/services.sh stop neo4j), runs `neo4j-admin database import
# full` (org.neo4j.cli.AdminTool from the launcher's own jars, scripts/neo4j/target/lib) with
# the arguments in ARGS_FILE (one per line, paths relative to its directory, as
# `python -m graphinator bulk-import` writes them) into the server's home, then starts the
# server again, whether the import worked or not. Exit status: the importer's.
# Environment: the same overrides as scripts/services.sh (NEO4J_HOME_DIR, NEO4J_BOLT_PORT,
# NEO4J_HEAP); the server must have been started by scripts/services.sh once (its conf).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 ARGS_FILE" >&2; exit 2; }
ARGS_FILE="$(realpath "$1")"
NEO4J_HOME="$(realpath -m "${NEO4J_HOME_DIR:-$REPO/.local/neo4j}")"
LIB="$REPO/scripts/neo4j/target/lib"

[ -f "$NEO4J_HOME/conf/neo4j.conf" ] \
    || { echo "neo4j-import: $NEO4J_HOME/conf/neo4j.conf missing: start the server once with scripts/services.sh" >&2; exit 1; }
[ -n "$(find "$LIB" -name 'neo4j-import-tool-*.jar' 2>/dev/null)" ] \
    || { echo "neo4j-import: no importer in $LIB: run scripts/services.sh start neo4j once" >&2; exit 1; }

"$REPO/scripts/services.sh" stop neo4j
rc=0
(
    cd "$(dirname "$ARGS_FILE")"
    NEO4J_HOME="$NEO4J_HOME" NEO4J_CONF="$NEO4J_HOME/conf" exec java \
        "-Xmx${NEO4J_HEAP:-1g}" -XX:+UseG1GC \
        --add-opens=java.base/java.nio=ALL-UNNAMED \
        --add-opens=java.base/java.io=ALL-UNNAMED \
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
        --add-opens=java.base/java.lang=ALL-UNNAMED \
        -Dfile.encoding=UTF-8 \
        -cp "$LIB/*" org.neo4j.cli.AdminTool "@$ARGS_FILE" \
        "--report-file=$(dirname "$ARGS_FILE")/import.report"
) || rc=$?
"$REPO/scripts/services.sh" start neo4j
exit "$rc"
