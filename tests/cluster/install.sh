#!/usr/bin/env bash
# Installs the local control plane of the tests, idempotently: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl of the
# Kubernetes release that tests/cluster/k8s/go.mod names (now v1.37.2, with
# etcd v3.7.0), and kwok (the simulated kubelet of the tests' node) of the
# version tests/cluster/kwok/go.mod names (now v0.8.0), built with `go build`
# from the Go module proxy and cached outside the repository, keyed by
# version. No registry ships those binaries for this machine; the first build
# takes about 15 minutes (control plane) and 5 minutes (kwok) on 2 cores.
#
# Usage: tests/cluster/install.sh        (prints the bin directory on its last line)
# Env:   KUBEMINT_CACHE (default ~/.cache/kubemint)
# To move to another release: tests/cluster/k8s/update.sh 1.N.M
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MODULE="$HERE/k8s"
# kwok needs other k8s.io/* versions than the control plane: a module of its own.
KWOK_MODULE="$HERE/kwok"
# The versions, as go.mod requires them ("v1.37.2" -> "1.37.2").
module_version() { awk -v m="$1" '$1 == m { sub(/^v/, "", $2); print $2; exit }' "${2:-$MODULE}/go.mod"; }
K8S_VERSION=$(module_version k8s.io/kubernetes)
ETCD_VERSION=$(module_version go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(module_version sigs.k8s.io/kwok "$KWOK_MODULE")
CACHE="${KUBEMINT_CACHE:-$HOME/.cache/kubemint}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

log() { echo "[install.sh] $*" >&2; }
[ -n "$K8S_VERSION" ] || { log "no k8s.io/kubernetes version in $MODULE/go.mod"; exit 1; }
[ -n "$KWOK_VERSION" ] || { log "no sigs.k8s.io/kwok version in $KWOK_MODULE/go.mod"; exit 1; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages ${missing[*]}: install them (needs root), then run this again"
    exit 1
  fi
  if [ $apt_updated = 0 ]; then
    apt-get update -qq || log "apt-get update reported problems; continuing"
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# openssl makes the control plane's certificates; curl waits for /readyz.
apt_install openssl ca-certificates curl

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}
# The kwok binary is kept beside a stamp of its version, so that a new
# version in kwok/go.mod is built even though the directory is the same.
have_kwok() { [ -x "$BIN/kwok" ] && [ "$(cat "$BIN/kwok.version" 2>/dev/null)" = "$KWOK_VERSION" ]; }
if have_all && have_kwok; then
  log "control plane v$K8S_VERSION (etcd v$ETCD_VERSION) and kwok v$KWOK_VERSION cached in $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "building the control plane needs Go (see $MODULE/go.mod for the version)"; exit 1; }
need_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$MODULE/go.mod")

if ! have_all; then
  log "building Kubernetes v$K8S_VERSION and etcd v$ETCD_VERSION with $(go version | cut -d' ' -f3) (Go $need_go or newer; about 15 minutes on 2 cores, once)"

  # What `kubectl version` and the API server's /version report; the release's
  # own build scripts set the same variables.
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done

  # Built into a fresh directory and moved into place whole, so an interrupted
  # build never leaves a partial set behind (kwok, if built, is kept).
  STAGE="$CACHE/k8s-$K8S_VERSION/bin.partial"
  rm -rf "$STAGE"
  mkdir -p "$STAGE"
  (
    cd "$MODULE"
    GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$STAGE/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
    GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$STAGE/etcd" .
  ) >&2
  for b in "${BINARIES[@]}"; do
    [ -x "$STAGE/$b" ] || { log "the build made no $b"; exit 1; }
  done
  for f in kwok kwok.version; do
    [ ! -e "$BIN/$f" ] || mv "$BIN/$f" "$STAGE/$f"
  done
  rm -rf "$BIN"
  mv "$STAGE" "$BIN"
  log "control plane v$K8S_VERSION installed in $BIN"
fi

if ! have_kwok; then
  log "building kwok v$KWOK_VERSION with $(go version | cut -d' ' -f3) (about 5 minutes on 2 cores, once)"
  # Built beside its final name and renamed over it: the rename is atomic,
  # and the version stamp is written only once the binary is in place.
  mkdir -p "$BIN"
  rm -f "$BIN/kwok.partial" "$BIN/kwok.version"
  (
    cd "$KWOK_MODULE"
    GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$BIN/kwok.partial" \
      sigs.k8s.io/kwok/cmd/kwok
  ) >&2
  [ -x "$BIN/kwok.partial" ] || { log "the build made no kwok"; exit 1; }
  mv -f "$BIN/kwok.partial" "$BIN/kwok"
  echo "$KWOK_VERSION" >"$BIN/kwok.version"
  log "kwok v$KWOK_VERSION installed in $BIN"
fi
echo "$BIN"
