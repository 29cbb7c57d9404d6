#!/usr/bin/env bash
# The provisioning service with its dashboard, on embedded defaults:
#
#   bash scripts/serve.sh [serve options...]     # e.g. --listen 127.0.0.1:0
#
# Builds the dashboard first when it is missing or older than its sources
# (scripts/build-ui.sh, with its progress), then runs
# `cargo run --release -p provisioner -- serve "$@"` from the current directory (the
# data directory defaults to ./.provisioner), serving the dashboard at `/`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST="$ROOT/admin-ui/dist"

# What the build reads: the dashboard crate, the core it checks manifests with, Trunk.toml.
stale() {
  [[ ! -f $DIST/index.html ]] && return 0
  [[ -n $(find "$ROOT/admin-ui" "$ROOT/core/src" "$ROOT/core/Cargo.toml" "$ROOT/Trunk.toml" \
            "$ROOT/Cargo.lock" -path "$DIST" -prune -o -type f -newer "$DIST/index.html" -print -quit) ]]
}
if stale; then
  echo "serve: the dashboard is missing or older than its sources; building it (bash scripts/build-ui.sh)"
  bash "$ROOT/scripts/build-ui.sh"
fi

export PROVISIONER_DASHBOARD_DIR=${PROVISIONER_DASHBOARD_DIR:-$DIST}
exec cargo run --release --manifest-path "$ROOT/Cargo.toml" -p provisioner -- serve "$@"
