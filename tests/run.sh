#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages, the
# local control plane binaries, cached after the first run), then runs every
# unit, integration and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/cluster/install.sh >/dev/null
bash tests/git/install.sh
cargo test --all-targets --no-fail-fast "$@"
