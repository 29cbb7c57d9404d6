#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/), one after another:
#   header_to_decision  `device-csr` header bytes -> the verifier's decision: no panic,
#                       ring and RustCrypto agree, every refusal is a 400 or 403;
#   manifest_readers    manifest bytes -> records through the CSV, JSON lines and
#                       Microchip readers (and detection): no panic, every record valid,
#                       both signature backends agree;
#   key_normalisation   key text and bytes -> DeviceKey: no panic, every encoding of an
#                       accepted key reads back as it.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]          # default 60 s, shared by the targets
#   FUZZ_RUNS=1000000 bash scripts/fuzz.sh 0 [TARGET...] # N executions per target, no time limit
#
# SECONDS is the total fuzzing time, split evenly between the targets run (the test
# command gives 30, so 10 s each). Exits non-zero on the first crash, printing the input.
# Seed corpora are written at run time into fuzz/corpus/<target>/ (gitignored):
#   header_to_decision  from core/tests/vectors/: every CSR and authorize header value,
#                       every key input and registered key, every DER CSR, and a good
#                       header padded to 8192 and 8193 bytes;
#   manifest_readers    every Microchip manifest in core/tests/manifests/ (and each
#                       entry of valid.json alone), and CSV and JSON lines files
#                       listing every key input of the vectors;
#   key_normalisation   every key input and registered key of the vectors, the SPKI DER
#                       and SEC1 points of the vectors' PEM keys.
# Toolchain: `cargo +nightly fuzz` when rustup has a nightly, else stable with
# RUSTC_BOOTSTRAP=1; FUZZ_TOOLCHAIN=nightly|stable forces one. cargo-fuzz comes from
# scripts/install-tools.sh; builds go to $PROVISIONER_CACHE/fuzz-target/<toolchain>.
# One line per target: "fuzz <target>: N runs in S s (R exec/s), no crash".
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

ALL_TARGETS=(header_to_decision manifest_readers key_normalisation)
TOTAL_SECONDS=${1:-60}
[[ $TOTAL_SECONDS =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
TARGETS=("$@")
(( ${#TARGETS[@]} > 0 )) || TARGETS=("${ALL_TARGETS[@]}")
for target in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $target "* ]] || { echo "fuzz: no target '$target' (${ALL_TARGETS[*]})" >&2; exit 2; }
done
RUNS=${FUZZ_RUNS:-}
[[ -z $RUNS || $RUNS =~ ^[0-9]+$ ]] || { echo "fuzz: FUZZ_RUNS must be a number" >&2; exit 2; }
if [[ -z $RUNS ]]; then
  PER_TARGET=$(( TOTAL_SECONDS / ${#TARGETS[@]} ))
  (( PER_TARGET > 0 )) || PER_TARGET=1
fi
VECTORS=core/tests/vectors
MANIFESTS=core/tests/manifests

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

# --- seed corpora (content-named files, so re-running adds nothing twice) ------------
python3 - "$VECTORS" "$MANIFESTS" fuzz/corpus <<'PY'
import base64, hashlib, json, pathlib, sys
vectors, manifests, corpus = (pathlib.Path(p) for p in sys.argv[1:4])
data = json.loads((vectors / "vectors.json").read_text())
key_inputs = [v["input"] for v in data["keys"]] + [v["registeredKey"] for v in data["authorize"]]

def pem_der(path):
    lines = path.read_text().strip().splitlines()
    return base64.b64decode("".join(l for l in lines if not l.startswith("-----")))

seeds = {}
# header_to_decision
good = data["csr"][0]["header"].encode()
seeds["header_to_decision"] = (
    [v["header"].encode() for v in data["csr"] + data["authorize"]]
    + [k.encode() for k in key_inputs]
    + [p.read_bytes() for p in sorted((vectors / "csr").glob("*.der"))]
    # The header length limit (8 KiB): a good header padded to exactly it, and one byte over.
    + [good + b" " * (8192 - len(good)), good + b" " * (8193 - len(good))]
)
# manifest_readers: the Microchip manifests, and CSV / JSON lines of every key input.
def csv_field(text):
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text
def jsonl_key(text):
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else text
    except ValueError:
        return text
rows = list(enumerate(key_inputs))
csv = "device_id,public_key\n" + "".join(f"device-{i:03},{csv_field(k)}\n" for i, k in rows)
jsonl = "".join(json.dumps({"deviceId": f"device-{i:03}", "publicKey": jsonl_key(k)}) + "\n" for i, k in rows)
microchip = [p for p in sorted(manifests.glob("*.json")) if p.name != "expected.json"]
seeds["manifest_readers"] = (
    [p.read_bytes() for p in microchip]
    # each good entry alone too: small inputs run faster and mutate to more places
    + [json.dumps([e], indent=2).encode() for e in json.loads((manifests / "valid.json").read_text())]
    + [csv.encode(), csv.replace("\n", "\r\n").encode(), jsonl.encode(),
       # one valid row each, and a device listed twice with two keys
       f"sensor-01,{key_inputs[2]}\n".encode(),
       json.dumps({"deviceId": "sensor-01", "publicKey": key_inputs[2]}).encode() + b"\n",
       f"sensor-01,{key_inputs[2]}\nsensor-01,{key_inputs[3]}\nsensor-01,{key_inputs[4]}\n".encode()]
)
# key_normalisation: the texts, and the vectors' PEM keys as DER and as SEC1 points.
ders = []
for path in sorted((vectors / "keys").glob("*.pem")):
    if "PUBLIC KEY" in path.read_text():
        ders.append(pem_der(path))
seeds["key_normalisation"] = [k.encode() for k in key_inputs] + ders
for v in data["keys"]:
    canonical = (v.get("expect") or {}).get("publicKey")
    if canonical:
        der = base64.b64decode(canonical)
        seeds["key_normalisation"] += [der, der[-65:] if len(der) == 91 else der[-97:]]

for target, items in seeds.items():
    directory = corpus / target
    directory.mkdir(parents=True, exist_ok=True)
    new = 0
    for seed in items:
        path = directory / hashlib.sha1(seed).hexdigest()
        if not path.exists():
            path.write_bytes(seed)
            new += 1
    print(f"fuzz: {len(items)} seeds ({new} new) in {directory}")
PY

# --- build every target once --------------------------------------------------------
echo "fuzz: ${cargo_fuzz[*]} build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
"${cargo_fuzz[@]}" build

# --- run -----------------------------------------------------------------------------
log=$(mktemp "${TMPDIR:-/tmp}/fuzz.XXXXXX.log")
trap 'rm -f "$log"' EXIT
summary=()
for target in "${TARGETS[@]}"; do
  corpus=fuzz/corpus/$target
  if [[ -n $RUNS ]]; then limit=(-runs="$RUNS"); what="$RUNS runs"; else limit=(-max_total_time="$PER_TARGET"); what="${PER_TARGET}s"; fi
  echo "fuzz: run $target for $what"
  # Everything goes to the log; the terminal gets it without the per-input NEW/REDUCE/
  # NEW_FUNC lines and the recommended-dictionary entries.
  set +e
  "${cargo_fuzz[@]}" run "$target" "$corpus" -- \
    "${limit[@]}" -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    2>&1 | tee "$log" | grep --line-buffered -vE '^(#[0-9]+[[:space:]]+(NEW|REDUCE)|[[:space:]]+NEW_FUNC)|# Uses: [0-9]+$'
  rc=${PIPESTATUS[0]}
  set -e

  if (( rc != 0 )); then
    artifact=$(grep -oE "fuzz/artifacts/$target/[^ ]+" "$log" | tail -n1 || true)
    if [[ -n $artifact && -f $artifact ]]; then
      echo "fuzz $target: failing input (base64): $(base64 -w0 "$artifact")" >&2
    fi
    echo "fuzz $target: FAILED (exit $rc)${artifact:+, input in $artifact}" >&2
    exit "$rc"
  fi

  # "Done N runs in S second(s)" is libFuzzer's last word; else the last "#N" line.
  runs="" secs=""
  if read -r runs secs < <(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1 \2/p' "$log" | tail -n1) \
     && [[ -n $runs ]]; then :
  else
    runs=$(sed -nE 's/^#([0-9]+)[[:space:]].*/\1/p' "$log" | tail -n1)
    secs=${PER_TARGET:-?}
  fi
  if [[ -z $runs ]]; then
    echo "fuzz $target: no libFuzzer statistics in the output" >&2
    exit 1
  fi
  rate=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]*([0-9]+).*/\1/p' "$log" | tail -n1)
  [[ -n $rate ]] || rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' "$log" | tail -n1)
  summary+=("fuzz $target: $runs runs in $secs s (${rate:-?} exec/s, $toolchain), no crash")
done
printf '%s\n' "${summary[@]}"
