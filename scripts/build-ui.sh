#!/usr/bin/env bash
# Builds the dashboard (admin-ui/, Leptos) with Trunk into admin-ui/dist, which
# `provisioner serve` serves at `/`, and checks its size budget:
#
#   bash scripts/build-ui.sh
#
# Trunk, the wasm-bindgen CLI and wasm-opt (npm's binaryen, never Debian's) come from
# scripts/install-tools.sh, run here only when one of them is missing (Trunk takes about
# 9 minutes to install the first time; then it is cached in $PROVISIONER_CACHE/bin).
# Prints the WebAssembly's size raw and gzipped; fails when gzipped is over the budget.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh
source scripts/lib.sh

# The dashboard's WebAssembly, gzipped, at most (bytes).
BUDGET_GZIP=${UI_WASM_BUDGET_GZIP:-$((400 * 1024))}
DIST="$ROOT/admin-ui/dist"
TRUNK_VERSION=0.21.14

have_tools() {
  [[ -x $PROVISIONER_CACHE/bin/trunk ]] \
    && [[ $("$PROVISIONER_CACHE/bin/trunk" --version) == *" $TRUNK_VERSION"* ]] \
    && [[ -x $PROVISIONER_CACHE/bin/wasm-bindgen ]] \
    && [[ -x $PROVISIONER_CACHE/node/node_modules/.bin/wasm-opt ]]
}
if ! have_tools; then
  step "install tools (Trunk, wasm-bindgen, wasm-opt)" bash scripts/install-tools.sh
fi
# Trunk takes the first wasm-opt on PATH: it must be npm's (env.sh puts it first).
if [[ $(command -v wasm-opt) != "$PROVISIONER_CACHE/node/node_modules/.bin/wasm-opt" ]]; then
  echo "build-ui: wasm-opt on PATH is $(command -v wasm-opt), not npm's binaryen" >&2
  exit 1
fi

# --offline: every tool is installed already; Trunk must never download one.
step "trunk build --release (admin-ui -> admin-ui/dist)" trunk build --release --offline

shopt -s nullglob
wasm=("$DIST"/*_bg.wasm)
if (( ${#wasm[@]} != 1 )); then
  echo "build-ui: expected one *_bg.wasm in $DIST, found ${#wasm[@]}" >&2
  exit 1
fi
raw=$(stat -c %s "${wasm[0]}")
gz=$(gzip -9 -c "${wasm[0]}" | wc -c)
echo "dashboard wasm: $(basename "${wasm[0]}") ${raw} bytes raw, ${gz} bytes gzipped (budget ${BUDGET_GZIP})"
if (( gz > BUDGET_GZIP )); then
  echo "build-ui: the dashboard's wasm is over its budget: ${gz} > ${BUDGET_GZIP} bytes gzipped" >&2
  exit 1
fi
