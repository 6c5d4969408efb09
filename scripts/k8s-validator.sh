#!/usr/bin/env bash
# Install the Kubernetes manifest validator that tests/src/k8s_manifests.rs runs:
# kubernetes-validate from PyPI (the Kubernetes JSON schemas are bundled in the package,
# so validating needs no network), in a virtualenv at ${TMPDIR:-/tmp}/portico-k8s-validate,
# where the test looks for it (or set KUBERNETES_VALIDATE to another copy). Idempotent.
set -euo pipefail

VERSION=1.37.0
VENV="${TMPDIR:-/tmp}/portico-k8s-validate"
BIN="$VENV/bin/kubernetes-validate"

if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$VERSION" ]; then
  echo "kubernetes-validate $VERSION already installed: $BIN"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$VERSION"
echo "kubernetes-validate $("$BIN" --version) installed: $BIN"
