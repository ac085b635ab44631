#!/bin/sh
# Run once by the postgres image on a new data volume: lets the standby of docker-compose.ha.yml
# stream from this primary. The standby connects as postgres with the postgres_password secret
# (scram-sha-256); without a standby the line is never used.
set -eu
echo "host replication postgres all scram-sha-256" >>"$PGDATA/pg_hba.conf"
