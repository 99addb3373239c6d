#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages, the
# local control plane, Kubernetes 1.37.2 and kwok 0.8.0 built from the Go
# module proxy and cached after the first run), then runs every unit, integration and
# end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
# The control plane's binaries and kwok, with kubectl (and its kustomize) of the same
# release first on PATH for the tests that run kubectl.
BIN=$(bash tests/cluster/install.sh | tail -n1)
export PATH="$BIN:$PATH"
bash tests/git/install.sh
PATH="$(bash tools/render-worker/install.sh | tail -n1):$PATH"  # kubemint-render-worker: kustomize v5.8.1 API, one process for all builds
bash tests/forge/install.sh >/dev/null  # Gitea v1.26.0 (Go module proxy; ~5 min once), the forge of tests/e2e/forge.rs
bash tests/chart/install.sh >/dev/null
bash tests/ui/install.sh  # chromium (Debian), playwright-core and axe-core for tests/e2e/ui.rs
# The kustomize tests run the real kustomize, or kubectl's built-in one.
if ! command -v kustomize >/dev/null && ! command -v kubectl >/dev/null; then
    echo "tests/run.sh: the kustomize tests need kustomize or kubectl (kubectl kustomize) on PATH" >&2
    exit 1
fi
cargo test --all-targets --no-fail-fast "$@"
