#!/usr/bin/env bash
# Installs Gitea, the forge of the end-to-end tests, idempotently: the version
# tests/forge/gitea/go.mod requires (now v1.26.0), built with `go build` from
# the Go module proxy (with SQLite) and cached outside the repository, keyed by
# version. The first build takes about 5 minutes on 2 cores.
#
# Usage: tests/forge/install.sh   (prints the binary's path on its last line)
# Env:   KUBEMINT_CACHE (default ~/.cache/kubemint)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MODULE="$HERE/gitea"
VERSION=$(awk '$1 == "require" && $2 == "code.gitea.io/gitea" { sub(/^v/, "", $3); print $3; exit }' "$MODULE/go.mod")
CACHE="${KUBEMINT_CACHE:-$HOME/.cache/kubemint}"
DIR="$CACHE/gitea-$VERSION"
BIN="$DIR/gitea"

log() { echo "[forge/install.sh] $*" >&2; }
[ -n "$VERSION" ] || { log "no code.gitea.io/gitea version in $MODULE/go.mod"; exit 1; }

if [ -x "$BIN" ]; then
  log "gitea v$VERSION cached in $DIR"
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { log "building Gitea needs Go (see $MODULE/go.mod for the version)"; exit 1; }
log "building gitea v$VERSION with $(go version | cut -d' ' -f3) (about 5 minutes on 2 cores, once)"
mkdir -p "$DIR"
rm -f "$BIN.partial"
(
  cd "$MODULE"
  # Without bindata: the harness points STATIC_ROOT_PATH at the module's source.
  GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -tags 'sqlite sqlite_unlock_notify' \
    -ldflags "-s -w -X main.Version=$VERSION" -o "$BIN.partial" code.gitea.io/gitea
  # The source tree (locales, templates) the binary reads at run time.
  go list -m -f '{{.Dir}}' code.gitea.io/gitea >"$DIR/source.partial"
) >&2
[ -x "$BIN.partial" ] || { log "the build made no gitea"; exit 1; }
# Renamed into place last: an interrupted build leaves no binary behind.
mv -f "$DIR/source.partial" "$DIR/source"
mv -f "$BIN.partial" "$BIN"
log "gitea v$VERSION installed in $BIN"
echo "$BIN"
