#!/usr/bin/env bash
# Installs real Helm for the chart tests, idempotently: PyPI's helm-python-sdk
# (Helm v4 embedded, no helm binary) in a virtualenv cached outside the
# repository. Prints the virtualenv's python on its last line.
#
# Env: KUBEMINT_CACHE (default ~/.cache/kubemint)
set -euo pipefail
VERSION=0.2.2
CACHE="${KUBEMINT_CACHE:-$HOME/.cache/kubemint}"
VENV="$CACHE/helm-python-sdk-$VERSION"
if ! "$VENV/bin/python" -c 'import helm_python' >/dev/null 2>&1; then
  echo "[chart/install.sh] installing helm-python-sdk $VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "helm-python-sdk==$VERSION" >&2
fi
echo "$VENV/bin/python"
