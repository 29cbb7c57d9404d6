#!/usr/bin/env bash
# Fuzzes the verifier from header bytes to decision (fuzz/fuzz_targets/header_to_decision.rs):
# no panic, ring and RustCrypto agree, every refusal is a 400 or 403.
#
#   bash scripts/fuzz.sh [SECONDS]      # default 60; exits non-zero on a crash
#
# The seed corpus is written at run time into fuzz/corpus/header_to_decision/ (gitignored)
# from core/tests/vectors/: every CSR and authorize header value, every key input and
# registered key, every DER CSR, and a good header padded to 8192 and 8193 bytes.
# Toolchain: `cargo +nightly fuzz` when rustup has a nightly, else stable with
# RUSTC_BOOTSTRAP=1; FUZZ_TOOLCHAIN=nightly|stable forces one. cargo-fuzz comes from
# scripts/install-tools.sh; builds go to $PROVISIONER_CACHE/fuzz-target/<toolchain>.
# Last line: "fuzz header_to_decision: N runs in S s, no crash".
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

TARGET=header_to_decision
SECONDS_TO_RUN=${1:-60}
[[ $SECONDS_TO_RUN =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
CORPUS=fuzz/corpus/$TARGET
VECTORS=core/tests/vectors

command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz not found: run scripts/install-tools.sh" >&2; exit 1; }

# --- toolchain ---------------------------------------------------------------------
toolchain=${FUZZ_TOOLCHAIN:-}
if [[ -z $toolchain ]]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then toolchain=nightly; else toolchain=stable; fi
fi
case $toolchain in
  nightly) cargo_fuzz=(cargo +nightly fuzz) ;;
  # The default (stable) toolchain: cargo-fuzz passes -Z flags (sanitizer), which
  # RUSTC_BOOTSTRAP=1 lets stable accept.
  stable)  cargo_fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz) ;;
  *) echo "fuzz: FUZZ_TOOLCHAIN must be nightly or stable, not '$toolchain'" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="$PROVISIONER_CACHE/fuzz-target/$toolchain"

# --- seed corpus (content-named files, so re-running adds nothing twice) -------------
mkdir -p "$CORPUS"
python3 - "$VECTORS" "$CORPUS" <<'PY'
import hashlib, json, pathlib, sys
vectors, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
data = json.loads((vectors / "vectors.json").read_text())
seeds = [v["header"].encode() for v in data["csr"] + data["authorize"]]
seeds += [v["input"].encode() for v in data["keys"]]
seeds += [v["registeredKey"].encode() for v in data["authorize"]]
seeds += [p.read_bytes() for p in sorted((vectors / "csr").glob("*.der"))]
# The header length limit (8 KiB): a good header padded to exactly it, and one byte over.
good = data["csr"][0]["header"].encode()
seeds += [good + b" " * (8192 - len(good)), good + b" " * (8193 - len(good))]
new = 0
for seed in seeds:
    path = corpus / hashlib.sha1(seed).hexdigest()
    if not path.exists():
        path.write_bytes(seed)
        new += 1
print(f"fuzz: {len(seeds)} seeds ({new} new) in {corpus}")
PY

# --- run -----------------------------------------------------------------------------
log=$(mktemp "${TMPDIR:-/tmp}/fuzz-$TARGET.XXXXXX.log")
trap 'rm -f "$log"' EXIT
echo "fuzz: ${cargo_fuzz[*]} run $TARGET for ${SECONDS_TO_RUN}s (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
# Everything goes to the log; the terminal gets it without the per-input NEW/REDUCE/NEW_FUNC
# lines and the recommended-dictionary entries.
set +e
"${cargo_fuzz[@]}" run "$TARGET" "$CORPUS" -- \
  -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
  2>&1 | tee "$log" | grep --line-buffered -vE '^(#[0-9]+[[:space:]]+(NEW|REDUCE)|[[:space:]]+NEW_FUNC)|# Uses: [0-9]+$'
rc=${PIPESTATUS[0]}
set -e

if (( rc != 0 )); then
  artifact=$(grep -oE "fuzz/artifacts/$TARGET/[^ ]+" "$log" | tail -n1 || true)
  if [[ -n $artifact && -f $artifact ]]; then
    echo "fuzz $TARGET: failing input (base64): $(base64 -w0 "$artifact")" >&2
  fi
  echo "fuzz $TARGET: FAILED (exit $rc)${artifact:+, input in $artifact}" >&2
  exit "$rc"
fi

# "Done N runs in S second(s)" is libFuzzer's last word; else the "#N DONE" / last "#N" line.
runs="" secs=""
if read -r runs secs < <(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1 \2/p' "$log" | tail -n1) \
   && [[ -n $runs ]]; then :
else
  runs=$(sed -nE 's/^#([0-9]+)[[:space:]].*/\1/p' "$log" | tail -n1)
  secs=$SECONDS_TO_RUN
fi
if [[ -z $runs ]]; then
  echo "fuzz $TARGET: no libFuzzer statistics in the output" >&2
  exit 1
fi
rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' "$log" | tail -n1)
[[ -n $rate ]] && echo "fuzz $TARGET: $rate exec/s ($toolchain)"
echo "fuzz $TARGET: $runs runs in $secs s, no crash"
