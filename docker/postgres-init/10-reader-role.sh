#!/bin/sh
# Run once by the postgres image on a new data volume: the read-only role the exporter uses.
# It shares the postgres_password secret; tables created later by `boxoffice db init`
# (as postgres) are readable by it through the default privileges.
set -eu
password=$(head -n 1 "$POSTGRES_PASSWORD_FILE")
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=password="$password" --set=database="$POSTGRES_DB" <<'SQL'
CREATE ROLE boxoffice_reader LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"database" TO boxoffice_reader;
GRANT USAGE ON SCHEMA public TO boxoffice_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO boxoffice_reader;
SQL
