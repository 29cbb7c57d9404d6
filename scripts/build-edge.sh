#!/usr/bin/env bash
# Builds the Lambda@Edge viewer-request function: compiles edge/src (strict TypeScript,
# tsc from edge/node_modules, installed by `npm ci` from the committed lock file when
# missing or stale) to CommonJS in edge/dist/build/, copies the verifier-wasm Node
# bindings beside it, and zips them into edge/dist/edge.zip (index.js, the bindings JS
# and the .wasm at the root; `index.handler` is the entry point). Builds the wasm first
# (scripts/build-wasm.sh) when verifier-wasm/pkg/node is missing or older than its
# sources. Fails if the zip is over Lambda@Edge's 1 MB limit for viewer triggers.
#
#   bash scripts/build-edge.sh     # -> edge/dist/edge.zip
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

LIMIT_BYTES=$((1024 * 1024))   # Lambda@Edge viewer-request/-response: 1 MB zipped
PKG=verifier-wasm/pkg/node
WASM=$PKG/provisioner_verifier_wasm_bg.wasm
BUILD=edge/dist/build
ZIP=edge/dist/edge.zip

command -v npm >/dev/null || { echo "build-edge: npm not found (Node 20 is expected)" >&2; exit 1; }

if [[ ! -f $WASM ]] || [[ -n $(find core/src core/Cargo.toml verifier-wasm/src verifier-wasm/Cargo.toml Cargo.lock -newer "$WASM" -print -quit) ]]; then
  bash scripts/build-wasm.sh
fi

# npm ci writes node_modules/.package-lock.json; reinstall when the lock file is newer.
if [[ ! edge/node_modules/.package-lock.json -nt edge/package-lock.json ]]; then
  (cd edge && npm ci --no-audit --no-fund)
fi

rm -rf edge/dist
(cd edge && node_modules/.bin/tsc -p .)
cp "$PKG/provisioner_verifier_wasm.js" "$WASM" "$BUILD/"

python3 - "$BUILD" "$ZIP" <<'PY'
import os, sys, zipfile
build, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for name in sorted(os.listdir(build)):
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
        info.external_attr = 0o644 << 16                               # readable by Lambda
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(os.path.join(build, name), "rb") as f:
            z.writestr(info, f.read())
PY

size=$(stat -c %s "$ZIP")
echo "edge: $ZIP: $size bytes ($(python3 -c 'import sys, zipfile; print(", ".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$ZIP")); limit $LIMIT_BYTES"
if (( size > LIMIT_BYTES )); then
  echo "build-edge: $ZIP is over Lambda@Edge's 1 MB viewer-trigger limit" >&2
  exit 1
fi
