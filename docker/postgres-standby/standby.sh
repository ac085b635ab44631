#!/bin/sh
# Entry point of the postgres-standby service of docker-compose.ha.yml: on an empty data
# volume, clone the primary with pg_basebackup (-R writes primary_conninfo and standby.signal),
# then run PostgreSQL as a hot standby streaming from it. The password comes from the
# postgres_password secret through a pgpass file, never the command line or the environment.
set -eu
PRIMARY=${STANDBY_PRIMARY_HOST:-postgres}
export PGPASSFILE=/var/lib/postgresql/pgpass
umask 077
password=$(head -n 1 /run/secrets/postgres_password | sed 's/\\/\\\\/g; s/:/\\:/g')
printf '%s:5432:*:postgres:%s\n' "$PRIMARY" "$password" >"$PGPASSFILE"
chown postgres "$PGPASSFILE"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" && chown postgres "$PGDATA" && chmod 700 "$PGDATA"
  gosu postgres pg_basebackup --host="$PRIMARY" --username=postgres --pgdata="$PGDATA" \
    --wal-method=stream --write-recovery-conf --checkpoint=fast
  # The exporters' snapshots on the standby: replay never cancels their queries.
  printf 'hot_standby_feedback = on\nmax_standby_streaming_delay = -1\n' >>"$PGDATA/postgresql.auto.conf"
fi
# PGPASSFILE stays in the environment: the WAL receiver reads the password from it.
exec gosu postgres postgres -D "$PGDATA"
