#!/usr/bin/env bash
# Builds the dashboard (admin-ui/, Leptos) into admin-ui/dist, which `provisioner serve`
# serves (index.html at `/`, every other file under /ui/), and checks its size budget:
#
#   bash scripts/build-ui.sh
#
# The same output Trunk makes from admin-ui/index.html and Trunk.toml, without Trunk
# (about 7 minutes to compile; `trunk serve` stays the way to work on the dashboard):
#   1. cargo build --target wasm32-unknown-unknown --profile wasm-release (the bin)
#   2. ui-bindgen: wasm-bindgen --target web, as a library (tools/ui-bindgen, pinned to
#      Cargo.lock's wasm-bindgen; it compiles in half the CPU time of the CLI)
#   3. wasm-opt -Oz (npm's binaryen, never Debian's: it corrupts wasm-bindgen output)
#   4. file names with a content hash (a browser never mixes two builds' files) and
#      index.html with Trunk's links (subresource integrity) and loader script
# The tools come from `scripts/install-tools.sh serve` (cached after the first run), which
# runs while the dashboard compiles.
# CARGO_TARGET_DIR is honoured. Prints the WebAssembly's size raw and gzipped; fails
# when gzipped is over the budget.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh
source scripts/lib.sh

die() { echo "build-ui: $*" >&2; exit 1; }

# The dashboard's WebAssembly, gzipped, at most (bytes).
BUDGET_GZIP=${UI_WASM_BUDGET_GZIP:-$((400 * 1024))}
DIST="$ROOT/admin-ui/dist"
SOURCE_HTML="$ROOT/admin-ui/index.html"
NAME=provisioner-admin-ui
# Trunk.toml's public_url: where serve exposes the files beside index.html.
PUBLIC_URL=/ui/
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"

# The wasm32 target first (the build needs it); the other tools install (ui-bindgen
# compiles) at the same time as the dashboard, their lines prefixed "[tools]".
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown" rustup target add wasm32-unknown-unknown
fi
(set -o pipefail; bash scripts/install-tools.sh serve 2>&1 | sed -u 's/^/[tools] /') &
TOOLS_PID=$!
step "cargo build the dashboard (wasm32, wasm-release)" \
  cargo build -p "$NAME" --bin "$NAME" --target wasm32-unknown-unknown --profile wasm-release --locked
WASM="$TARGET_DIR/wasm32-unknown-unknown/wasm-release/$NAME.wasm"
[[ -f $WASM ]] || die "$WASM was not built"
wait "$TOOLS_PID" || die "installing the tools failed (lines starting [tools], above)"
# npm's wasm-opt must be the one on PATH (env.sh puts it first).
[[ $(command -v wasm-opt) == "$PROVISIONER_CACHE/node/node_modules/.bin/wasm-opt" ]] \
  || die "wasm-opt on PATH is $(command -v wasm-opt), not npm's binaryen"

# Built beside dist (a hidden name: serve skips it), then swapped in whole.
STAGE=$(mktemp -d "$ROOT/admin-ui/.stage-XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
BINDGEN="$STAGE/bindgen"
OUT="$STAGE/dist"
mkdir -p "$OUT"

# The features rustc enables by default for wasm32-unknown-unknown (as scripts/build-wasm.sh).
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
bindgen_and_opt() {
  ui-bindgen "$WASM" "$BINDGEN" "$NAME" \
    && wasm-opt -Oz --strip-debug --strip-producers "${WASM_OPT_FEATURES[@]}" \
         "$BINDGEN/${NAME}_bg.wasm" -o "$BINDGEN/${NAME}_bg.opt.wasm"
}
step "ui-bindgen and wasm-opt -Oz" bindgen_and_opt

# hash16 FILE... -> the first 16 hex digits of the SHA-256 of the files' bytes
hash16() { cat "$@" | sha256sum | cut -c1-16; }
# sri FILE -> a subresource integrity value (sha384, as Trunk's default)
sri() { echo "sha384-$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }

# The app: one hash for the loader and its WebAssembly, as Trunk names them.
APP="$NAME-$(hash16 "$BINDGEN/$NAME.js" "$BINDGEN/${NAME}_bg.opt.wasm")"
JS="$APP.js"
BG="${APP}_bg.wasm"
cp "$BINDGEN/$NAME.js" "$OUT/$JS"
cp "$BINDGEN/${NAME}_bg.opt.wasm" "$OUT/$BG"
# Inline JS of dependencies (#[wasm_bindgen(inline_js)]), imported by relative path.
if [[ -d $BINDGEN/snippets ]]; then
  cp -R "$BINDGEN/snippets" "$OUT/snippets"
fi

# hashed_copy FILE -> copies admin-ui/FILE into dist as NAME-HASH.EXT, prints that name
hashed_copy() {
  local src="$ROOT/admin-ui/$1" base ext name
  [[ -f $src ]] || die "admin-ui/index.html links $1, which does not exist"
  base=$(basename "$1"); ext=${base##*.}; base=${base%.*}
  name="$base-$(hash16 "$src").$ext"
  cp "$src" "$OUT/$name"
  echo "$name"
}
# attr NAME LINE -> the value of attribute NAME in LINE ("" when absent)
attr() { sed -n "s/.*[[:space:]]$1=\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"; }

# index.html: every <link data-trunk ...> of the source replaced by what Trunk writes for
# it; the rust link becomes the preloads and the loader (at its place, as Trunk puts it).
# An asset kind this script does not know fails the build rather than being dropped.
{
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line != *"data-trunk"* ]]; then
      printf '%s\n' "$line"
      continue
    fi
    indent=${line%%<*}
    rel=$(attr rel "$line")
    case $rel in
      rust)
        [[ $(attr data-bin "$line") == "$NAME" ]] || die "index.html: the rust link must name data-bin=\"$NAME\""
        printf '%s<link rel="modulepreload" href="%s%s" crossorigin="anonymous" integrity="%s">\n' \
          "$indent" "$PUBLIC_URL" "$JS" "$(sri "$OUT/$JS")"
        printf '%s<link rel="preload" href="%s%s" crossorigin="anonymous" integrity="%s" as="fetch" type="application/wasm">\n' \
          "$indent" "$PUBLIC_URL" "$BG" "$(sri "$OUT/$BG")"
        # Trunk's default loader (serve allows exactly this inline script by its SHA-256).
        printf '<script type="module">\nimport init, * as bindings from '"'"'%s%s'"'"';\nconst wasm = await init({ module_or_path: '"'"'%s%s'"'"' });\n\n\nwindow.wasmBindings = bindings;\n\n\ndispatchEvent(new CustomEvent("TrunkApplicationStarted", {detail: {wasm}}));\n\n</script>\n' \
          "$PUBLIC_URL" "$JS" "$PUBLIC_URL" "$BG"
        ;;
      css)
        name=$(hashed_copy "$(attr href "$line")")
        printf '%s<link rel="stylesheet" href="%s%s" integrity="%s"/>\n' \
          "$indent" "$PUBLIC_URL" "$name" "$(sri "$OUT/$name")"
        ;;
      icon)
        name=$(hashed_copy "$(attr href "$line")")
        printf '%s<link rel="icon" href="%s%s" integrity="%s"/>\n' \
          "$indent" "$PUBLIC_URL" "$name" "$(sri "$OUT/$name")"
        ;;
      *) die "index.html: a data-trunk link with rel=\"$rel\" that this script does not build: $line" ;;
    esac
  done <"$SOURCE_HTML"
} >"$OUT/index.html"
grep -q 'data-trunk' "$OUT/index.html" && die "index.html: a data-trunk element was left unbuilt"

# Swap in the new build whole (a running serve keeps the files it read at start).
rm -rf "$DIST"
mv "$OUT" "$DIST"

raw=$(stat -c %s "$DIST/$BG")
gz=$(gzip -9 -c "$DIST/$BG" | wc -c)
echo "dashboard wasm: $BG ${raw} bytes raw, ${gz} bytes gzipped (budget ${BUDGET_GZIP})"
if (( gz > BUDGET_GZIP )); then
  die "the dashboard's wasm is over its budget: ${gz} > ${BUDGET_GZIP} bytes gzipped"
fi
