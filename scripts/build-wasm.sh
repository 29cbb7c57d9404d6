#!/usr/bin/env bash
# Builds verifier-wasm for Node (the edge function) and the browser (the dashboard),
# optimises it with wasm-opt (binaryen from npm: Debian's corrupts wasm-bindgen output),
# and reports sizes against the 100 KB gzipped budget.
#
#   bash scripts/build-wasm.sh     # -> verifier-wasm/pkg/{node,web}/
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

BUDGET_GZIP_BYTES=$((100 * 1024))
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=verifier-wasm/pkg

for tool in wasm-bindgen wasm-opt; do
  command -v "$tool" >/dev/null || { echo "build-wasm: $tool not found: run scripts/install-tools.sh" >&2; exit 1; }
done
case "$(command -v wasm-opt)" in
  /usr/bin/*) echo "build-wasm: refusing Debian's wasm-opt ($(command -v wasm-opt)); run scripts/install-tools.sh" >&2; exit 1 ;;
esac

cargo build -p provisioner-verifier-wasm --target wasm32-unknown-unknown --profile wasm-release
WASM="$TARGET_DIR/wasm32-unknown-unknown/wasm-release/provisioner_verifier_wasm.wasm"

# The features rustc enables by default for wasm32-unknown-unknown.
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)

for target in nodejs web; do
  dir="$OUT/${target/nodejs/node}"
  rm -rf "$dir"
  wasm-bindgen --target "$target" --out-dir "$dir" "$WASM"
  bg="$dir/provisioner_verifier_wasm_bg.wasm"
  wasm-opt -Oz --strip-debug --strip-producers "${WASM_OPT_FEATURES[@]}" "$bg" -o "$bg.opt"
  mv "$bg.opt" "$bg"
  raw=$(stat -c %s "$bg")
  gz=$(gzip -9 -c "$bg" | wc -c)
  printf 'verifier-wasm %-6s %s: %d bytes, %d bytes gzipped (budget %d)\n' "$target" "$bg" "$raw" "$gz" "$BUDGET_GZIP_BYTES"
  if (( gz > BUDGET_GZIP_BYTES )); then
    echo "build-wasm: $bg is over the gzipped budget" >&2
    exit 1
  fi
done
