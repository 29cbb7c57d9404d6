#!/usr/bin/env bash
# The provisioning service with its dashboard, on embedded defaults:
#
#   bash scripts/serve.sh [serve options...]     # e.g. --listen 127.0.0.1:0
#
# When the dashboard is missing or older than its sources, builds it (scripts/build-ui.sh,
# which installs only what it needs: `scripts/install-tools.sh serve`) at the same time
# as the server's release build, its output prefixed "[dashboard]". Then runs
# `cargo run --release -p provisioner -- serve "$@"` from the current directory (the
# data directory defaults to ./.provisioner), serving the dashboard at `/`.
# Budget: at most 8 minutes on a fresh 2-core machine (README, "Budgets").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST="$ROOT/admin-ui/dist"
source "$ROOT/scripts/env.sh"

# What the build reads: the dashboard crate, the core it checks manifests with, the script.
stale() {
  [[ ! -f $DIST/index.html ]] && return 0
  [[ -n $(find "$ROOT/admin-ui" "$ROOT/core/src" "$ROOT/core/Cargo.toml" "$ROOT/Cargo.lock" \
            "$ROOT/scripts/build-ui.sh" -path "$DIST" -prune -o -path "$ROOT/admin-ui/.stage-*" -prune \
            -o -type f -newer "$DIST/index.html" -print -quit) ]]
}

UI_PID=""
# The dashboard's build runs in its own process group (setsid), so a failed server build
# stops it and everything it started, by that group's id.
stop_ui() {
  if [[ -n $UI_PID ]] && kill -0 "$UI_PID" 2>/dev/null; then
    kill -- "-$UI_PID" 2>/dev/null || true
  fi
}
if stale; then
  echo "serve: the dashboard is missing or older than its sources; building it (scripts/build-ui.sh) while the server builds" >&2
  # Different cargo profiles (wasm-release, release): the two builds never wait on each
  # other's lock, and the 2 cores stay busy through the server's serial link and LTO.
  setsid bash -c 'set -o pipefail; bash "$1" 2>&1 | sed -u "s/^/[dashboard] /" >&2' _ "$ROOT/scripts/build-ui.sh" &
  UI_PID=$!
  trap stop_ui EXIT
  trap 'exit 130' INT TERM
fi

cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -p provisioner

if [[ -n $UI_PID ]]; then
  if ! wait "$UI_PID"; then
    echo "serve: the dashboard's build failed (above, lines starting [dashboard])" >&2
    exit 1
  fi
  trap - EXIT INT TERM
fi

export PROVISIONER_DASHBOARD_DIR=${PROVISIONER_DASHBOARD_DIR:-$DIST}
exec cargo run --release --locked --manifest-path "$ROOT/Cargo.toml" -p provisioner -- serve "$@"
