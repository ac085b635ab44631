#!/bin/sh
# Entry point of the boxoffice image in docker-compose.yml: turns the Docker secrets under
# /run/secrets into what each boxoffice command reads, then runs it.
#
#   check-secrets  fail with a clear message when a secret file the stack needs is missing
#   init-db        create the reference schema and, on an empty database, seed demo sales
#   serve          the exporter, read-only database role, basic auth for Prometheus
#   sms-bridge     the Alertmanager -> Twilio bridge; dry run unless Twilio credentials exist
#   healthcheck    GET /healthz of the exporter or the bridge (for Docker healthchecks)
set -eu

SECRETS=${BOXOFFICE_SECRETS_DIR:-/run/secrets}
STATE=${BOXOFFICE_STATE_DIR:-/var/lib/boxoffice}
READER=boxoffice_reader
SCRAPER=prometheus

die() {
  echo "boxoffice-entrypoint: $*" >&2
  exit 2
}

secret() {
  # The first line of a secret file; fails when it is missing or empty.
  file="$SECRETS/$1"
  [ -s "$file" ] || die "secret $1 is missing or empty: run scripts/compose-secrets.sh (see README, docker compose)"
  head -n 1 "$file"
}

use_pgpass() {
  # libpq reads the password from a pgpass file, so it never sits in a DSN or the environment.
  password=$(secret postgres_password | sed 's/\\/\\\\/g; s/:/\\:/g')
  umask 077
  printf '*:*:*:%s:%s\n' "$1" "$password" >"$STATE/pgpass"
  export PGPASSFILE="$STATE/pgpass"
}

case "${1:-serve}" in
check-secrets)
  for name in postgres_password grafana_admin_password exporter_password sms_bridge_token; do
    secret "$name" >/dev/null
  done
  [ -e "$SECRETS/twilio_auth_token" ] || die "secret twilio_auth_token is missing (an empty file means SMS dry run): run scripts/compose-secrets.sh"
  for name in slack_webhook_url pagerduty_routing_key smtp_password; do
    [ -e "$SECRETS/$name" ] || die "secret $name is missing (an empty file turns that Alertmanager channel off): run scripts/compose-secrets.sh"
  done
  echo "secrets present"
  ;;
init-db)
  use_pgpass postgres
  boxoffice db init
  if ! out=$(boxoffice db seed --orders "${BOXOFFICE_DEMO_ORDERS:-50000}" 2>&1); then
    case "$out" in
    *"already has rows"*) echo "database already holds data: not seeding" ;;
    *) echo "$out" >&2; exit 1 ;;
    esac
  else
    echo "$out" | tail -n 1
  fi
  ;;
serve)
  shift || true
  use_pgpass "$READER"
  hash=$(secret exporter_password | python -c 'import sys, bcrypt; print(bcrypt.hashpw(sys.stdin.read().rstrip("\n").encode(), bcrypt.gensalt()).decode())')
  umask 077
  printf 'basic_auth_users:\n  %s: "%s"\n' "$SCRAPER" "$hash" >"$STATE/web.yml"
  export BOXOFFICE_WEB_CONFIG_FILE="$STATE/web.yml"
  exec boxoffice serve "$@"
  ;;
sms-bridge)
  shift
  secret sms_bridge_token >/dev/null
  export BOXOFFICE_SMS_BRIDGE_BEARER_TOKEN_FILE="$SECRETS/sms_bridge_token"
  export BOXOFFICE_SMS_BRIDGE_STORE="$STATE/sms-bridge.sqlite"
  if [ -n "${BOXOFFICE_SMS_BRIDGE_STORE_DSN_FILE:-}" ]; then
    # A PostgreSQL store shared by bridges (docker-compose.ha.yml): the DSN file holds no
    # password, libpq reads it from the pgpass file made from the postgres_password secret.
    use_pgpass postgres
  fi
  if [ -n "${BOXOFFICE_SMS_BRIDGE_ACCOUNT_SID:-}" ] && [ -s "$SECRETS/twilio_auth_token" ]; then
    export BOXOFFICE_SMS_BRIDGE_AUTH_TOKEN_FILE="$SECRETS/twilio_auth_token"
  else
    echo "no Twilio credentials (BOXOFFICE_SMS_BRIDGE_ACCOUNT_SID and secrets/twilio_auth_token): dry run, SMS are logged, not sent" >&2
    export BOXOFFICE_SMS_BRIDGE_DRY_RUN=true
  fi
  exec boxoffice sms-bridge "$@"
  ;;
healthcheck)
  # Python reads the secret itself, so it never appears on a command line.
  case "${2:-}" in
  exporter) secret exporter_password >/dev/null ;;
  sms-bridge) secret sms_bridge_token >/dev/null ;;
  *) die "healthcheck exporter|sms-bridge" ;;
  esac
  exporter_address=${BOXOFFICE_WEB_LISTEN_ADDRESS:-:9798}
  bridge_address=${BOXOFFICE_SMS_BRIDGE_LISTEN_ADDRESS:-:9799}
  exec python - "$2" "$SECRETS" "$SCRAPER" "${exporter_address##*:}" "${bridge_address##*:}" <<'PY'
import base64, sys, urllib.request
kind, secrets, user, exporter_port, bridge_port = sys.argv[1:]
if kind == "exporter":
    password = open(f"{secrets}/exporter_password").readline().rstrip("\n")
    url = f"http://127.0.0.1:{exporter_port}/healthz"
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
else:
    url = f"http://127.0.0.1:{bridge_port}/healthz"
    auth = "Bearer " + open(f"{secrets}/sms_bridge_token").readline().rstrip("\n")
urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth}), timeout=5)
PY
  ;;
*)
  exec boxoffice "$@"
  ;;
esac
