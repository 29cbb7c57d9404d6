#!/usr/bin/env bash
# Release builds of the Lambda binaries for both architectures, as zips ready to upload:
#
#   bash scripts/release-lambdas.sh [OUT_DIR]     # default OUT_DIR: target/lambda-release
#
# Builds with scripts/build-lambdas.sh for arm64 and then x86_64, so target/lambda/<name>/
# (which each build overwrites, and which the SAM template deploys) ends as x86_64, the
# template's default Architecture; and keeps OUT_DIR/<arch>/<name>.zip (bootstrap at the
# zip's root, as Lambda wants) with a SHA256SUMS file. The admin-api zip also carries the
# dashboard (dashboard/, from admin-ui/dist: build it first with bash scripts/build-ui.sh;
# without it the zip has bootstrap alone and build-lambdas.sh says so).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh

OUT_DIR=${1:-$ROOT/target/lambda-release}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu

for arch in arm64 x86_64; do
  flag=()
  [[ $arch == arm64 ]] && flag=(--arm64)
  bash scripts/build-lambdas.sh "${flag[@]}"
  mkdir -p "$OUT_DIR/$arch"
  for name in authorizer issuer admin-api maintenance; do
    rm -f "$OUT_DIR/$arch/$name.zip"
    # bootstrap at the root of the zip, executable, and the dashboard's files (admin-api)
    # readable, in a fixed order with a fixed date (reproducible).
    (cd "target/lambda/$name" && "$PROVISIONER_CACHE/lambda-venv/bin/python" -c '
import os, sys, zipfile
names = ["bootstrap"] + sorted(
    os.path.join(folder, file)
    for folder, _, files in os.walk("dashboard")
    for file in files
)
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name in names:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o100755 if name == "bootstrap" else 0o100644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(name, "rb") as f:
            z.writestr(info, f.read())
' "$OUT_DIR/$arch/$name.zip")
  done
done
(cd "$OUT_DIR" && sha256sum */*.zip | tee SHA256SUMS)
(cd "$OUT_DIR" && for zip in */*.zip; do printf '%-24s %s bytes\n' "$zip" "$(stat -c %s "$zip")"; done)
echo "release-lambdas: zips in $OUT_DIR"
