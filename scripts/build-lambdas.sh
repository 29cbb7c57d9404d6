#!/usr/bin/env bash
# Builds the Lambda binaries (crate lambdas/, provisioner-lambdas) with cargo lambda:
#
#   bash scripts/build-lambdas.sh            # x86_64
#   bash scripts/build-lambdas.sh --arm64    # Graviton (aarch64)
#
# cargo lambda (from $PROVISIONER_CACHE/lambda-venv: `bash scripts/install-tools.sh deploy`)
# links with zig against the glibc of Lambda's provided.al2023 runtime. Each binary lands in
# <repo>/target/lambda/<name>/bootstrap, whatever CARGO_TARGET_DIR says, since the SAM
# template's CodeUri is ../target/lambda/<name>/; the script prints each one's size.
#
# The admin API's function also carries the dashboard: admin-ui/dist
# (`bash scripts/build-ui.sh`) is copied to target/lambda/admin-api/dashboard/, which the
# function serves at / (PROVISIONER_DASHBOARD_DIR defaults to `dashboard` beside
# bootstrap). Without a built dashboard (no admin-ui/dist/index.html) the directory is
# left out, the script says so, and the deployed function answers / with the placeholder
# page that names the build command; the admin API itself works either way. Build the
# dashboard first for a deployment.
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
  || die "$LAMBDA_VENV/bin/cargo-lambda not found: run bash scripts/install-tools.sh deploy"
# cargo-lambda finds zig through the venv's python (pip package ziglang).
export PATH="$LAMBDA_VENV/bin:$PATH"

BINARIES=(authorizer issuer admin-api maintenance)
OUT="$ROOT/target/lambda"
cargo lambda build --release "$ARCH_FLAG" -p provisioner-lambdas --features aws \
  --lambda-dir "$OUT" --locked

for name in "${BINARIES[@]}"; do
  bootstrap="$OUT/$name/bootstrap"
  [[ -f $bootstrap ]] || die "$bootstrap was not built"
  printf 'lambda %-12s %s  %s bytes (%s)\n' "$name" "${ARCH_FLAG#--}" \
    "$(stat -c %s "$bootstrap")" "$(du -h "$bootstrap" | cut -f1)"
done

# The dashboard beside the admin API's bootstrap (never a stale copy of an older build).
DIST="$ROOT/admin-ui/dist"
DASHBOARD="$OUT/admin-api/dashboard"
rm -rf "$DASHBOARD"
if [[ -f $DIST/index.html ]]; then
  mkdir -p "$DASHBOARD"
  cp -R "$DIST/." "$DASHBOARD/"
  # Hidden files (a build's staging directory) are not part of the build.
  find "$DASHBOARD" -mindepth 1 -name '.*' -prune -exec rm -rf {} +
  printf 'lambda %-12s dashboard/ %s files, %s bytes\n' admin-api \
    "$(find "$DASHBOARD" -type f | wc -l)" "$(du -sb "$DASHBOARD" | cut -f1)"
else
  echo "build-lambdas: no built dashboard ($DIST/index.html): the admin-api function will serve the placeholder page at /; run bash scripts/build-ui.sh, then this script again" >&2
fi
