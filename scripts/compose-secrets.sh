#!/usr/bin/env bash
# Create the secret files docker-compose.yml reads from ./secrets, with random values, and
# print the Grafana admin password once. Existing files are kept, so it is safe to rerun.
#
# Twilio: put the auth token in secrets/twilio_auth_token and set
# BOXOFFICE_SMS_BRIDGE_ACCOUNT_SID (e.g. in .env) to send real SMS; an empty token file
# keeps the sms-bridge in dry run.
set -euo pipefail
cd "$(dirname "$0")/.."

umask 077
mkdir -p secrets
chmod 700 secrets  # only you can list or open the directory ...

random() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

for name in postgres_password grafana_admin_password exporter_password sms_bridge_token; do
  file="secrets/$name"
  if [ -s "$file" ]; then
    echo "kept    $file"
  else
    random >"$file"
    echo "created $file"
    if [ "$name" = grafana_admin_password ]; then
      echo "        Grafana login: admin / $(cat "$file")"
    fi
  fi
done
[ -e secrets/twilio_auth_token ] || { : >secrets/twilio_auth_token; echo "created secrets/twilio_auth_token (empty: SMS dry run)"; }
# Alertmanager's channels: empty until you paste your own (see alertmanager/routing.yaml).
for name in slack_webhook_url pagerduty_routing_key smtp_password; do
  [ -e "secrets/$name" ] || { : >"secrets/$name"; echo "created secrets/$name (empty: fill it to use that channel)"; }
done
# ... while the containers, which run as other users (postgres, grafana, nobody), can read
# the files: Compose mounts file secrets with their host permissions.
chmod 644 secrets/*
