#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# Installs what it needs on a fresh Debian machine: the Debian packages `prometheus`,
# `prometheus-alertmanager`, `victoria-metrics` (real promtool, amtool, prometheus,
# alertmanager, victoria-metrics and vmalert) and `chromium` (the headless browser of the
# status page's test), and the Python dependencies in .venv. PostgreSQL: BOXOFFICE_TEST_DSN
# if set, else the server at 127.0.0.1:5432, else a throwaway cluster started by the test
# suite (pip package pgserver).
# Then: ruff, ruff format --check, mypy --strict, the import contract (lint-imports), pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
  # The global view's long-term store and rule evaluator (tests/test_global_view.py).
  { command -v victoria-metrics && command -v vmalert; } >/dev/null 2>&1 || missing+=(victoria-metrics)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
      log "need ${missing[*]} (Debian packages) but not root and no sudo; install them first"
      return 1
    fi
  fi
  log "installing Debian packages: ${missing[*]}"
  # Keep the packages' services from starting: the tests run their own instances.
  local policy=/usr/sbin/policy-rc.d created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$created_policy" ]; then $sudo rm -f "$policy"; fi
}

install_python() {
  local python=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$python" -m venv .venv
  fi
  log "installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
}

install_debian_packages
install_python

log "ruff check"
.venv/bin/ruff check .
log "ruff format --check"
.venv/bin/ruff format --check .
log "mypy --strict"
.venv/bin/mypy
log "import contract (docs/architecture.md)"
.venv/bin/lint-imports --no-cache
log "pytest"
.venv/bin/pytest "$@"
