#!/usr/bin/env bash
# Starts a Kubernetes control plane on loopback: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler of the release that
# tests/cluster/install.sh builds (v1.37.2, etcd v3.7.0; the version is in
# tests/cluster/k8s/go.mod), with fresh certificates and free ports, and one
# node, kubemint-sim-node, whose kubelet kwok simulates (v0.8.0, in
# tests/cluster/kwok/go.mod): the scheduler binds pods to it, kwok marks them
# running and ready (stages in tests/cluster/kwok/stages.yaml) and finishes
# their deletion. Nothing actually runs. Pods annotated
# sim.kubemint.io/unready=true run unready; Job pods complete, or fail when
# annotated sim.kubemint.io/fail=true; tests/cluster/kwok/policy.yaml sets
# those annotations on new pods from the ConfigMap kubemint-sim/control.
#
# Usage: tests/cluster/up.sh [--watch PID] <state-dir>
#   Prints the kubeconfig path (<state-dir>/kubeconfig) on its last stdout line;
#   progress goes to stderr. Stop it with tests/cluster/down.sh <state-dir>.
#   <state-dir> gets the certificates, the admin token, etcd's data, one
#   <daemon>.log per process, <daemon>.cmd (its exact command line), `pids`,
#   kwok-stages.yaml (what kwok plays) and audit.log (the API server's audit log, level Metadata); whatever a
#   previous run left there is replaced (refused while that run is still up).
#   --watch PID  stop the control plane when process PID exits (see below).
# Env: KUBEMINT_BIN  directory with etcd, kube-apiserver & co. and kwok
#                    (default: the one tests/cluster/install.sh prints; fast
#                    when cached)
#
# Example: KUBECONFIG=$(tests/cluster/up.sh /tmp/kc) kubectl get ns
#          tests/cluster/down.sh /tmp/kc
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
WATCH=
while [ $# -gt 0 ]; do
  case "$1" in
    --watch) WATCH="${2:?--watch needs a PID}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "up.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--watch PID] <state-dir>" >&2; exit 2; }
mkdir -p "$1"
STATE="$(cd "$1" && pwd)"
PIDS="$STATE/pids"

log() { echo "[up.sh] $*" >&2; }

BIN="${KUBEMINT_BIN:-$(bash "$HERE/install.sh" | tail -n1)}"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [ -x "$BIN/$b" ] || { log "$BIN/$b is missing (run tests/cluster/install.sh)"; exit 1; }
done
ETCD="$BIN/etcd"

if [ -s "$PIDS" ]; then
  while read -r name pid; do
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$name"; then
      log "a control plane already runs from $STATE ($name, pid $pid): run down.sh first"
      exit 1
    fi
  done <"$PIDS"
fi
rm -rf "$STATE/etcd" "$STATE"/*.log "$STATE"/*.cmd "$PIDS"
: >"$PIDS"

# On any failure (or when the watched process is gone), stop what was started.
ok=0
trap '[ $ok = 1 ] || "$HERE/down.sh" "$STATE" >&2' EXIT

# ---------------------------------------------------------------------------
# Tying the daemons' lives to a process (--watch), without prctl/PDEATHSIG:
# one watchdog, in a session of its own so terminal signals don't reach it,
# polls every second whether PID still runs (comparing its start time from
# /proc/PID/stat, so a reused PID does not count) and then runs down.sh, which
# stops every process listed in $PIDS (TERM, then KILL after 5 s). It starts
# before any daemon so none can outlive the watched process, whatever way that
# process ends (normal exit, panic, abort, SIGKILL). Stopped within ~1-6 s.
# ---------------------------------------------------------------------------
proc_start() { # proc_start PID: sets REPLY to the start time of PID
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  local fields=($stat)
  REPLY=${fields[19]}
}
if [ -n "$WATCH" ]; then
  proc_start "$WATCH" || { log "--watch $WATCH: no such process"; exit 1; }
  WATCH_START=$REPLY
  setsid bash -c '
    parent=$1 start=$2; shift 2
    alive() { local s; read -r s 2>/dev/null <"/proc/$parent/stat" || return 1; s=${s##*) }; local f=($s); [ "${f[19]}" = "$start" ]; }
    while alive; do sleep 1; done
    exec "$@"' kubemint-watchdog "$WATCH" "$WATCH_START" "$HERE/down.sh" "$STATE" \
    </dev/null >>"$STATE/watchdog.log" 2>&1 &
  echo "kubemint-watchdog $!" >>"$PIDS"
fi
watched_alive() { [ -z "$WATCH" ] || { proc_start "$WATCH" && [ "$REPLY" = "$WATCH_START" ]; }; }

# start NAME CMD...: runs a daemon in its own session (so a terminal's ^C or
# hangup does not reach it; down.sh stops it), logging to $STATE/NAME.log.
# The exact command line is kept in $STATE/NAME.cmd (one shell-quoted line), so
# restart-apiserver.sh can start a daemon again with identical flags and ports.
start() {
  local name=$1
  shift
  printf '%q ' "$@" >"$STATE/$name.cmd"
  echo >>"$STATE/$name.cmd"
  setsid "$@" </dev/null >"$STATE/$name.log" 2>&1 &
  echo "$name $!" >>"$PIDS"
}

# A free port below Linux's ephemeral range (32768+), so that outgoing
# connections cannot take it between now and the daemon binding it.
declare -A TAKEN=()
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [ -z "${TAKEN[$p]:-}" ] || continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN[$p]=1
      echo "$p"
      return
    fi
  done
}

# --- certificates and credentials -------------------------------------------
t0=$SECONDS
cd "$STATE"
openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=kubemint-test-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt 2>/dev/null
openssl genrsa -out apiserver.key 2048 2>/dev/null
openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
cat >apiserver.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
EXT
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
  -extfile apiserver.ext -out apiserver.crt 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
TOKEN=$(openssl rand -hex 24)
echo "$TOKEN,admin,admin,system:masters" >tokens.csv
chmod 600 ./*.key tokens.csv

ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
SERVER="https://127.0.0.1:$API_PORT"

cat >kubeconfig <<KC
apiVersion: v1
kind: Config
clusters:
- name: kubemint-test
  cluster:
    server: $SERVER
    certificate-authority-data: $(base64 -w0 <ca.crt)
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: kubemint-test
  context:
    cluster: kubemint-test
    user: admin
current-context: kubemint-test
KC
chmod 600 kubeconfig
# What restart-apiserver.sh needs to wait for /readyz (the token stays in tokens.csv).
echo "SERVER=$SERVER" >endpoint.env

# Audit: every request at level Metadata (who, verb, URI, object; no bodies),
# one JSON line per stage after the request was received, in audit.log.
# tests/support/audit.rs counts requests per user agent from it. lumberjack
# (the API server's log writer) rotates at --audit-log-maxsize MB, 100 when 0:
# set far beyond any test run so the log is never rotated.
cat >audit-policy.yaml <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
POLICY

# --- the daemons --------------------------------------------------------------
start etcd "$ETCD" --name=kubemint --data-dir="$STATE/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="kubemint=http://127.0.0.1:$ETCD_PEER_PORT"

# The API server retries etcd while it starts, so it need not wait for it.
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --endpoint-reconciler-type=none \
  --tls-cert-file="$STATE/apiserver.crt" --tls-private-key-file="$STATE/apiserver.key" \
  --client-ca-file="$STATE/ca.crt" --token-auth-file="$STATE/tokens.csv" \
  --service-account-key-file="$STATE/sa.pub" --service-account-signing-key-file="$STATE/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc \
  --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 \
  --audit-policy-file="$STATE/audit-policy.yaml" --audit-log-path="$STATE/audit.log" \
  --audit-log-format=json --audit-log-maxsize=1000000 --audit-log-maxbackup=0

# wait_ready WHAT SECONDS CMD...: polls CMD every 0.1 s; fails (with the logs'
# tails) if a daemon died, the watched process is gone, or time runs out.
wait_ready() {
  local what=$1 limit=$2 i name pid
  shift 2
  for ((i = 0; i < limit * 10; i++)); do
    "$@" && return 0
    watched_alive || { log "process $WATCH is gone; stopping"; exit 1; }
    while read -r name pid; do
      if ! kill -0 "$pid" 2>/dev/null; then
        log "$name exited while waiting for $what; end of $STATE/$name.log:"
        tail -n 30 "$STATE/$name.log" >&2 || true
        exit 1
      fi
    done <"$PIDS"
    sleep 0.1
  done
  log "$what not ready after ${limit}s; see $STATE/*.log"
  exit 1
}
api_ready() {
  curl -sf --max-time 2 --cacert "$STATE/ca.crt" -H "Authorization: Bearer $TOKEN" "$SERVER/readyz" >/dev/null
}
wait_ready kube-apiserver 120 api_ready

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$STATE/kubeconfig" \
  --authentication-kubeconfig="$STATE/kubeconfig" --authorization-kubeconfig="$STATE/kubeconfig" \
  --leader-elect=false --secure-port=0 \
  --controllers='*,-node-ipam-controller,-node-lifecycle-controller' \
  --root-ca-file="$STATE/ca.crt" --service-account-private-key-file="$STATE/sa.key"
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$STATE/kubeconfig" --leader-elect=false --secure-port=0

# --- the node ------------------------------------------------------------------
NODE=kubemint-sim-node
kubectl() { "$BIN/kubectl" --kubeconfig="$STATE/kubeconfig" "$@"; }
# A kubelet reports its own release; kwok's stages report the server's.
version=$(curl -sf --max-time 5 --cacert "$STATE/ca.crt" -H "Authorization: Bearer $TOKEN" "$SERVER/version" |
  sed -n 's/^ *"gitVersion": *"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { log "could not read the API server's version"; exit 1; }
sed "s/@KUBELET_VERSION@/$version/g" "$HERE/kwok/stages.yaml" >"$STATE/kwok-stages.yaml"
kubectl apply -f "$HERE/kwok/policy.yaml" >"$STATE/policy.log"
kubectl create -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  labels:
    kubernetes.io/hostname: $NODE
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
NODE
# The TaintNodesByCondition admission plugin gives every new node the
# node.kubernetes.io/not-ready taint; the node lifecycle controller, which
# would lift it, is off (nothing renews the node's heartbeat), so lift it here.
kubectl patch node "$NODE" --type=merge -p '{"spec":{"taints":null}}' >/dev/null
# kwok reads ~/.kwok/kwok.yaml besides --config; HOME keeps a developer's own
# stages out. Leases are off (--node-lease-duration-seconds=0, the default):
# nothing watches them.
start kwok env HOME="$STATE" "$BIN/kwok" --kubeconfig="$STATE/kubeconfig" \
  --config="$STATE/kwok-stages.yaml" --manage-single-node="$NODE" \
  --cidr=10.244.0.0/16 --node-ip=127.0.0.1

node_ready() {
  [ "$(kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
wait_ready "the node" 60 node_ready
# The policies act once the API server's informers have them and their
# ConfigMap: the probe key in policy.yaml must annotate a (dry-run) pod.
policy_active() {
  kubectl create --dry-run=server -o jsonpath='{.metadata.annotations.sim\.kubemint\.io/unready}' -f - 2>/dev/null <<'POD' | grep -qx true
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: kubemint-sim, labels: {kubemint.io/revision: probe}}
spec: {containers: [{name: probe, image: probe}]}
POD
}
wait_ready "the simulation policies" 60 policy_active

log "control plane and node up in $((SECONDS - t0))s at $SERVER (etcd :$ETCD_PORT, state $STATE)"
ok=1
echo "$STATE/kubeconfig"
