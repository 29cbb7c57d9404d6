#!/usr/bin/env bash
# Times `provisioner import` of a large CSV manifest into a fresh registry (release
# build), then re-imports it (every row `unchanged`).
#
# The rows are `bench-NNNNNNN,<base64 SPKI DER>`. Generating a million P-256 key pairs
# would take longer than the import, so KEYS real keys are made with
# `openssl ecparam -genkey` and cycled: ids are unique, keys repeat (the importer
# parses and validates every key regardless, so the cost per row is the same).
# The last line is `import_rows_per_sec=<n>`.
#
#   bash scripts/bench-import.sh [ROWS] [KEYS]     (defaults 1000000 and 256)
#   WORK=/some/dir keeps the CSV and registry there (default: a temporary directory).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROWS=${1:-1000000}
KEYS=${2:-256}
if [[ -z ${WORK:-} ]]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"

cargo build --release -q -p provisioner
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/provisioner

keys=$WORK/keys.txt
: >"$keys"
for ((i = 0; i < KEYS; i++)); do
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
    openssl ec -pubout -outform DER 2>/dev/null | base64 -w0 >>"$keys"
  echo >>"$keys"
done

csv=$WORK/big.csv
python3 - "$keys" "$csv" "$ROWS" <<'PY'
import sys
keys_path, out_path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
keys = [k.strip() for k in open(keys_path) if k.strip()]
with open(out_path, "w") as out:
    out.write("device_id,public_key\n")
    out.writelines(f"bench-{i:07d},{keys[i % len(keys)]}\n" for i in range(rows))
PY
echo "manifest: $ROWS rows, $(du -h "$csv" | cut -f1), $KEYS distinct keys"

rm -rf "$WORK/data"
run() { # LABEL: imports the CSV, prints the summary and the time, sets $secs
  local start=$EPOCHREALTIME
  "$BIN" --data-dir "$WORK/data" import "$csv" --json | tail -n1
  local end=$EPOCHREALTIME
  secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
  echo "$1: ${secs}s, $(awk -v r="$ROWS" -v s="$secs" 'BEGIN { printf "%d", r / s }') rows/s"
}
run "first import (all new)"
first=$secs
run "re-import (all unchanged)"
echo "registry: $(du -h "$WORK/data/registry.sqlite3" | cut -f1)"
awk -v r="$ROWS" -v s="$first" 'BEGIN { printf "import_rows_per_sec=%d\n", r / s }'
