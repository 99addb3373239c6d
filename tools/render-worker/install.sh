#!/usr/bin/env bash
# Builds kubemint-render-worker (kustomize's own Go API behind a pipe, see
# main.go) from the Go module proxy, idempotently: cached outside the
# repository under a key of its sources (go.mod, go.sum, main.go), so that a
# change to any of them builds again and an unchanged one never does. The
# binary appears whole or not at all (built beside its final name, renamed).
#
# Usage: tools/render-worker/install.sh   (prints the bin directory on its last line)
# Env:   KUBEMINT_CACHE (default ~/.cache/kubemint)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${KUBEMINT_CACHE:-$HOME/.cache/kubemint}"
log() { echo "[render-worker/install.sh] $*" >&2; }

API_VERSION=$(awk '$1 == "sigs.k8s.io/kustomize/api" { print $2; exit }' "$HERE/go.mod")
[ -n "$API_VERSION" ] || { log "no sigs.k8s.io/kustomize/api in $HERE/go.mod"; exit 1; }
KEY=$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/main.go" | sha256sum | cut -c1-12)
BIN="$CACHE/render-worker-$API_VERSION-$KEY/bin"
WORKER="$BIN/kubemint-render-worker"

if [ -x "$WORKER" ]; then
  log "kubemint-render-worker (kustomize/api $API_VERSION) cached in $BIN"
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { log "building the render worker needs Go (see $HERE/go.mod for the version)"; exit 1; }
log "building kubemint-render-worker with kustomize/api $API_VERSION and $(go version | cut -d' ' -f3) (about a minute, once)"
mkdir -p "$BIN"
rm -f "$WORKER.partial"
(
  cd "$HERE"
  CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$WORKER.partial" .
) >&2
[ -x "$WORKER.partial" ] || { log "the build made no kubemint-render-worker"; exit 1; }
mv -f "$WORKER.partial" "$WORKER"
log "kubemint-render-worker installed in $BIN"
echo "$BIN"
