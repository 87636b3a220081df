#!/usr/bin/env bash
# A PostgreSQL server for the scale-out tests, from Debian's packages, on 127.0.0.1 only.
#   .ci/postgres.sh start   install if needed, start a dedicated cluster, print the storage URL
#   .ci/postgres.sh stop    stop it
set -euo pipefail
PORT=${LEAFSEARCH_PG_PORT:-54329}
CLUSTER=leafsearch
PASSWORD=leafsearch-ci

version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }

case "${1:-start}" in
start)
    if [ -z "$(version)" ] || ! command -v pg_createcluster >/dev/null; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    fi
    V=$(version)
    if ! pg_lsclusters -h | awk '{print $2}' | grep -qx "$CLUSTER"; then
        pg_createcluster "$V" "$CLUSTER" -p "$PORT" -- --auth-local=trust --auth-host=scram-sha-256 >&2
    fi
    sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$V/$CLUSTER/postgresql.conf"
    pg_ctlcluster "$V" "$CLUSTER" start >&2 || pg_ctlcluster "$V" "$CLUSTER" status >&2
    cd /  # the postgres user may not read the folder we were started in
    su postgres -c "psql -q -p $PORT -tc \"SELECT 1 FROM pg_roles WHERE rolname='leafsearch'\" | grep -q 1 || psql -q -p $PORT -c \"CREATE ROLE leafsearch LOGIN PASSWORD '$PASSWORD' CREATEDB\"" >&2
    su postgres -c "psql -q -p $PORT -tc \"SELECT 1 FROM pg_database WHERE datname='leafsearch'\" | grep -q 1 || createdb -p $PORT -O leafsearch leafsearch" >&2
    echo "postgresql://leafsearch:$PASSWORD@127.0.0.1:$PORT/leafsearch"
    ;;
stop)
    V=$(version)
    [ -n "$V" ] && pg_ctlcluster "$V" "$CLUSTER" stop >&2 || true
    ;;
esac
