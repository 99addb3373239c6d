#!/usr/bin/env bash
# Stops a control plane started by tests/cluster/up.sh: every process listed in
# <state-dir>/pids gets SIGTERM, and SIGKILL if still there after 5 s. A listed
# PID is only signalled while its command line still names what was started
# (PIDs get reused). Idempotent; leaves the logs and certificates in place.
#
# Usage: tests/cluster/down.sh <state-dir>
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <state-dir>" >&2; exit 2; }
PIDS="$1/pids"
[ -f "$PIDS" ] || exit 0

# Prints the listed PIDs that still run what was started (not this script).
alive() {
  local name pid
  while read -r name pid; do
    [ -n "$pid" ] && [ "$pid" != "$$" ] || continue
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$name"; then
      echo "$pid"
    fi
  done <"$PIDS"
}

# The list is read again on every round: a dying up.sh may still add to it.
for ((i = 0; i < 80; i++)); do
  pids=$(alive)
  if [ -z "$pids" ]; then
    rm -f "$PIDS"
    exit 0
  fi
  if ((i == 0 || i % 10 == 0 && i < 50)); then
    kill -TERM $pids 2>/dev/null
  elif ((i >= 50)); then
    kill -KILL $pids 2>/dev/null
  fi
  sleep 0.1
done
echo "[down.sh] still running: $pids" >&2
exit 1
