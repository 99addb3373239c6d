#!/usr/bin/env bash
# Installs, idempotently, what the git source tests start on loopback:
# sshd (openssh-server), lighttpd in front of `git http-backend` (basic auth),
# lighttpd's TLS module and openssl for HTTPS with a custom CA, `git daemon`
# (in git), gnupg and ssh-keygen for signed commits.
set -euo pipefail

log() { echo "[git/install.sh] $*" >&2; }

PACKAGES=(git openssh-server openssh-client lighttpd lighttpd-mod-openssl openssl gnupg)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "installing ${missing[*]} needs root (or run this script with sudo)"
    exit 1
  fi
  apt-get update -qq || log "apt-get update reported problems; continuing"
  log "apt-get install ${missing[*]}"
  # The packages' init scripts must not start system-wide daemons: the tests start their own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.kubemint
  restore=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    mv /usr/sbin/policy-rc.d.kubemint /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    restore=1
  else
    rm -f /usr/sbin/policy-rc.d.kubemint
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  [ $restore = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
# sshd refuses to start without its privilege separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd
# A user the SSH tests log in as; `*` unlocks it for key-only logins.
if ! id kmgit >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then log "creating user kmgit needs root"; exit 1; fi
  useradd --create-home --shell /bin/sh kmgit
  usermod -p '*' kmgit
fi
# Test repositories belong to root: let kmgit's git serve them anyway.
KMGIT_HOME=$(getent passwd kmgit | cut -d: -f6)
if ! grep -qs 'directory = \*' "$KMGIT_HOME/.gitconfig"; then
  printf '[safe]\n\tdirectory = *\n' >>"$KMGIT_HOME/.gitconfig"
  chown kmgit: "$KMGIT_HOME/.gitconfig"
fi
log "git test servers installed"
