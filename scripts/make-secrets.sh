#!/usr/bin/env bash
# Random credentials for `docker compose up`, written to deploy/secrets/ (git-ignored; the
# directory is 700, the files 644 because compose bind-mounts them for the containers' own
# users: postgres, neo4j, rabbitmq, the app). Files that exist are kept, so running it again changes nothing; delete a file (and
# the service's volume, which keeps the first password it saw) to rotate it.
#
#   scripts/make-secrets.sh            # before the first `docker compose up`
#
#   postgres_password      PostgreSQL's backfill role (postgres image: POSTGRES_PASSWORD_FILE)
#   neo4j_password         Neo4j's neo4j user, for the services (NEO4J_PASSWORD_FILE)
#   neo4j_auth             the same as neo4j/<password> (neo4j image: NEO4J_AUTH_FILE)
#   rabbitmq_password      RabbitMQ's backfill user (the guest user is never created)
#   rabbitmq.conf          default_user/default_pass, mounted into RabbitMQ's conf.d
#   amqp_connection        the services' AMQP URL with that password (AMQP_CONNECTION_FILE)
#   grafana_admin_password Grafana's admin user
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=deploy/secrets
mkdir -p "$DIR"
chmod 700 "$DIR"

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

# write NAME CONTENT: only if NAME does not exist yet
write() {
    if [[ -e "$DIR/$1" ]]; then
        echo "kept    $DIR/$1"
    else
        printf '%s\n' "$2" >"$DIR/$1"
        chmod 644 "$DIR/$1"
        echo "created $DIR/$1"
    fi
}

write postgres_password "$(random)"
write neo4j_password "$(random)"
write rabbitmq_password "$(random)"
write grafana_admin_password "$(random)"
# Derived files follow the passwords above (also when those were kept).
rm -f "$DIR/neo4j_auth" "$DIR/rabbitmq.conf" "$DIR/amqp_connection"
write neo4j_auth "neo4j/$(cat "$DIR/neo4j_password")"
write rabbitmq.conf "$(printf 'default_user = backfill\ndefault_pass = %s' "$(cat "$DIR/rabbitmq_password")")"
write amqp_connection "amqp://backfill:$(cat "$DIR/rabbitmq_password")@rabbitmq:5672/"
