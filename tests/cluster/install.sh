#!/usr/bin/env bash
# Installs what the local control plane for the tests needs, idempotently:
# etcd from Debian, and kube-apiserver, kube-controller-manager and
# kube-scheduler 1.20.2 built from Debian bookworm's `kubernetes` source package.
# No registry ships those binaries, so they are built once (about 10 minutes on
# 2 cores) and cached outside the repository, keyed by version.
#
# Usage: tests/cluster/install.sh        (prints the bin directory on its last line)
# Env:   KUBEMINT_CACHE (default ~/.cache/kubemint)
set -euo pipefail

K8S_VERSION=1.20.2
CACHE="${KUBEMINT_CACHE:-$HOME/.cache/kubemint}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { echo "[install.sh] $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "installing Debian packages needs root (or run this script with sudo)"
    exit 1
  fi
}

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root
  if [ $apt_updated = 0 ]; then
    apt-get update -qq || log "apt-get update reported problems; continuing"
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Runtime tools of the tests: etcd for the control plane, openssl for its
# certificates, and the git servers and signing tools the git tests start.
apt_install etcd-server openssl ca-certificates

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}

if have_all; then
  log "control plane $K8S_VERSION cached in $BIN"
  echo "$BIN"
  exit 0
fi

need_root
# A deb-src entry mirroring the machine's own Debian entry (same mirror, suites
# and keys), so `apt-get source` works.
SRC_LIST=/etc/apt/sources.list.d/kubemint-deb-src.sources
SRC_LIST_OLD=/etc/apt/sources.list.d/kubemint-deb-src.list
if [ ! -f "$SRC_LIST" ] && [ ! -f "$SRC_LIST_OLD" ]; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    log "adding $SRC_LIST (from debian.sources)"
    sed -e 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$SRC_LIST"
  elif grep -qs '^deb ' /etc/apt/sources.list; then
    log "adding $SRC_LIST_OLD (from sources.list)"
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$SRC_LIST_OLD"
  else
    log "no Debian apt entry found to mirror; add a deb-src entry for bookworm and run again"
    exit 1
  fi
  apt_updated=0
fi
apt_install golang-go rsync golang-github-modern-go-reflect2-dev dpkg-dev make
if [ $apt_updated = 0 ]; then apt-get update -qq || true; apt_updated=1; fi

WORK="$CACHE/k8s-$K8S_VERSION/src"
mkdir -p "$WORK"
cd "$WORK"
TREE=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
if [ -z "$TREE" ]; then
  log "downloading Debian source package kubernetes"
  apt-get source --download-only kubernetes >&2
  dpkg-source --no-check -x kubernetes_*.dsc >&2
  TREE=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
fi
cd "$TREE"
grep -q "v$K8S_VERSION\|$K8S_VERSION" CHANGELOG/CHANGELOG-1.20.md 2>/dev/null || log "warning: tree may not be $K8S_VERSION"

# The vendored reflect2 1.0.1 crashes kube-apiserver built with Go >= 1.18 on
# the first custom-resource request; Debian's 1.0.2 is compatible.
R2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
R2_DST=vendor/github.com/modern-go/reflect2
if ! cmp -s "$R2_SRC/reflect2.go" "$R2_DST/reflect2.go"; then
  log "replacing vendored reflect2 with Debian's 1.0.2"
  find "$R2_DST" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
  cp "$R2_SRC"/*.go "$R2_DST"/
  cp "$R2_SRC"/*.s "$R2_DST"/ 2>/dev/null || true
  find "$R2_DST" -maxdepth 1 -name '*_test.go' -delete
fi

export GOFLAGS=-mod=vendor GO111MODULE=on GOPROXY=off
# An interrupted generator run leaves an empty binary behind; start over then.
if [ -d _output ] && [ ! -s _output/bin/deepcopy-gen ] && [ -e _output/bin/deepcopy-gen ]; then
  rm -rf _output
fi
log "make generated_files"
make generated_files >&2
log "make all (kube-apiserver, kube-controller-manager, kube-scheduler)"
make all WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2

mkdir -p "$BIN"
for b in "${BINARIES[@]}"; do
  install -m 0755 "_output/local/bin/linux/amd64/$b" "$BIN/$b"
done
# The tree and build outputs are large; only the binaries are needed.
cd "$CACHE/k8s-$K8S_VERSION" && rm -rf src
log "control plane $K8S_VERSION installed in $BIN"
echo "$BIN"
