#!/usr/bin/env bash
# Lints the Helm chart and renders it for every important values combination, validating
# each object (scripts/helm_check.py). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/fetch-helm.sh >/dev/null
exec uv run --no-sync python scripts/helm_check.py "$@"
