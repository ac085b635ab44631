#!/usr/bin/env bash
# The newcomer's command: installs boxoffice into .venv and runs `boxoffice demo`.
# With no BOXOFFICE_DSN set it starts a throwaway PostgreSQL, seeds a year of sales,
# simulates live sales and serves the metrics on http://localhost:9798/metrics (plus
# Prometheus when installed). Arguments go to `boxoffice demo`, e.g. --scenario oversell.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Quiet unless it fails: a newcomer should see the demo, not the build backend.
if ! .venv/bin/python -m pip install -q -e '.[throwaway]' >.venv/install.log 2>&1; then
  cat .venv/install.log >&2
  exit 1
fi
exec .venv/bin/boxoffice demo "$@"
