#!/usr/bin/env bash
# Builds the Lambda binaries (crate lambdas/, provisioner-lambdas) with cargo lambda:
#
#   bash scripts/build-lambdas.sh            # x86_64 (the test suite's build)
#   bash scripts/build-lambdas.sh --arm64    # Graviton (aarch64)
#
# cargo lambda (from $PROVISIONER_CACHE/lambda-venv, scripts/install-tools.sh) links with
# zig against the glibc of Lambda's provided.al2023 runtime. Each binary lands in
# <repo>/target/lambda/<name>/bootstrap, whatever CARGO_TARGET_DIR says, since the SAM
# template's CodeUri is ../target/lambda/<name>/; the script prints each one's size.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh

die() { echo "build-lambdas: $*" >&2; exit 1; }

ARCH_FLAG=--x86-64
case ${1:-} in
  "") ;;
  --arm64) ARCH_FLAG=--arm64 ;;
  *) die "usage: bash scripts/build-lambdas.sh [--arm64]" ;;
esac

LAMBDA_VENV="$PROVISIONER_CACHE/lambda-venv"
[[ -x $LAMBDA_VENV/bin/cargo-lambda ]] \
  || die "$LAMBDA_VENV/bin/cargo-lambda not found: run bash scripts/install-tools.sh"
# cargo-lambda finds zig through the venv's python (pip package ziglang).
export PATH="$LAMBDA_VENV/bin:$PATH"

BINARIES=(authorizer issuer)
OUT="$ROOT/target/lambda"
cargo lambda build --release "$ARCH_FLAG" -p provisioner-lambdas --features aws \
  --lambda-dir "$OUT" --locked

for name in "${BINARIES[@]}"; do
  bootstrap="$OUT/$name/bootstrap"
  [[ -f $bootstrap ]] || die "$bootstrap was not built"
  printf 'lambda %-10s %s  %s bytes (%s)\n' "$name" "${ARCH_FLAG#--}" \
    "$(stat -c %s "$bootstrap")" "$(du -h "$bootstrap" | cut -f1)"
done
