#!/usr/bin/env bash
# Installs, idempotently, what the browser tests (tests/e2e/ui.rs) need:
# Debian's chromium (never a downloaded browser) and, from tests/ui's
# package-lock.json, playwright-core and axe-core. Building kubemint needs none of it.
set -euo pipefail
cd "$(dirname "$0")"
log() { echo "[ui/install.sh] $*" >&2; }
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "installing chromium needs root (or run this script with sudo)"
    exit 1
  fi
  log "apt-get install chromium"
  apt-get update -qq || log "apt-get update reported problems; continuing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "installing nodejs and npm needs root (or run this script with sudo)"
    exit 1
  fi
  log "apt-get install nodejs npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# Playwright must not fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci (playwright-core, axe-core)"
  npm ci --no-audit --no-fund --silent
fi
