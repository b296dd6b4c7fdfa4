#!/usr/bin/env bash
# Lints the Helm chart and renders it for every important values combination, validating
# each object (scripts/helm_check.py). Exits non-zero on any failure.
# uv: $UV (the Makefile passes its own), else the one on PATH, else .venv-tools/bin/uv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
uv="${UV:-$(command -v uv || echo "$ROOT/.venv-tools/bin/uv")}"
[[ "$uv" == /* || "$uv" != */* ]] || uv="$ROOT/$uv"
if ! command -v "$uv" >/dev/null; then
  echo "uv not found (looked at \$UV, PATH and .venv-tools/bin/uv): run 'make install'" >&2
  exit 1
fi
UV="$uv" bash scripts/fetch-helm.sh >/dev/null
exec "$uv" run --no-sync python scripts/helm_check.py "$@"
