#!/usr/bin/env bash
# Restarts only the kube-apiserver of a control plane started by up.sh: stops
# it (TERM, KILL after 10 s), starts it again with the identical command line
# (<state-dir>/kube-apiserver.cmd, so the same flags, port and certificates)
# and waits for /readyz. etcd and its data, the controller manager, the
# scheduler and every client keep running; clients see the server go away and
# come back. The new log is appended to kube-apiserver.log.
#
# KUBEMINT_APISERVER_DOWN_SECONDS (default 0) keeps it stopped that long
# before starting it again: a long outage.
#
# Usage: tests/cluster/restart-apiserver.sh <state-dir>
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <state-dir>" >&2; exit 2; }
STATE="$(cd "$1" && pwd)"
PIDS="$STATE/pids"
CMD="$STATE/kube-apiserver.cmd"
log() { echo "[restart-apiserver.sh] $*" >&2; }
[ -s "$CMD" ] || { log "$CMD is missing (was the control plane started by up.sh?)"; exit 1; }

pid=$(awk '$1 == "kube-apiserver" { print $2 }' "$PIDS" | tail -n1)
if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- kube-apiserver; then
  kill -TERM "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
else
  log "no running kube-apiserver listed in $PIDS; starting one"
fi

down="${KUBEMINT_APISERVER_DOWN_SECONDS:-0}"
if [ "$down" -gt 0 ]; then
  log "kube-apiserver stopped; starting it again in ${down}s"
  sleep "$down"
fi
echo "--- restarted $(date -u +%FT%TZ) ---" >>"$STATE/kube-apiserver.log"
# The saved line is shell-quoted by up.sh (printf %q).
eval "args=($(cat "$CMD"))"
setsid "${args[@]}" </dev/null >>"$STATE/kube-apiserver.log" 2>&1 &
new=$!
# Replace the listed PID in place, so down.sh and the watchdog stop the new one.
tmp=$(mktemp "$STATE/pids.XXXXXX")
awk -v pid="$new" '$1 == "kube-apiserver" { print $1, pid; next } { print }' "$PIDS" >"$tmp"
mv "$tmp" "$PIDS"

# shellcheck source=/dev/null
. "$STATE/endpoint.env"
TOKEN=$(cut -d, -f1 "$STATE/tokens.csv")
for ((i = 0; i < 1200; i++)); do
  if curl -sf --max-time 2 --cacert "$STATE/ca.crt" -H "Authorization: Bearer $TOKEN" "$SERVER/readyz" >/dev/null; then
    log "kube-apiserver back at $SERVER (pid $new) after $((i / 10))s"
    exit 0
  fi
  kill -0 "$new" 2>/dev/null || { log "kube-apiserver exited; end of its log:"; tail -n 30 "$STATE/kube-apiserver.log" >&2; exit 1; }
  sleep 0.1
done
log "kube-apiserver not ready after 120s; see $STATE/kube-apiserver.log"
exit 1
