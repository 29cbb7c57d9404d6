#!/usr/bin/env bash
# Installs the project's tools, idempotently, into a cache. One installer, in sets:
#
#   bash scripts/install-tools.sh [SET]  # then: source scripts/env.sh
#   source scripts/install-tools.sh [SET] # runs in a child bash, then sources env.sh
#
#   serve   what the run command needs to build the dashboard: the wasm32 target,
#           ui-bindgen (tools/ui-bindgen: wasm-bindgen as a library, Cargo.lock's
#           version), wasm-opt (npm's binaryen)
#   test    (the default) serve's, plus what scripts/test.sh needs: rustfmt, clippy, the
#           wasm-bindgen CLI (its test runner; build-wasm.sh), Chromium, cargo-fuzz, moto,
#           dynalite, mosquitto, cfn-lint and the SAM CLI
#   deploy  cargo lambda and zig (scripts/build-lambdas.sh, release-lambdas.sh)
#   dev     serve's, plus Trunk and the wasm-bindgen CLI it runs, for `trunk serve` while
#           working on the dashboard (Trunk.toml)
#   all     every set
#
# Cache root: $PROVISIONER_CACHE (default $HOME/.cache/provisioner)
#   bin/            cargo install --root (ui-bindgen, wasm-bindgen, cargo-fuzz, trunk)
#   node/           npm install --prefix (binaryen -> node_modules/.bin/wasm-opt)
#   install-target/ CARGO_TARGET_DIR for the cargo installs (reused between installs)
# Each tool prints one line: "tool <name> <version>: cached" or "...: installed in Ns".

# Sourced? Run the installer in a child bash (keeps set -euo out of the caller's
# shell), then export the environment into the caller.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  bash "${BASH_SOURCE[0]}" "$@" || return
  # shellcheck source=env.sh
  source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
  return 0
fi

set -euo pipefail

SET=${1:-test}
case $SET in
  serve|test|deploy|dev|all) ;;
  *) echo "usage: bash scripts/install-tools.sh [serve|test|deploy|dev|all]" >&2; exit 2 ;;
esac
# in_set SET... -> true when the requested set is one of them (or all)
in_set() {
  local s
  [[ $SET == all ]] && return 0
  for s in "$@"; do [[ $s == "$SET" ]] && return 0; done
  return 1
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=env.sh
source "$SCRIPT_DIR/env.sh"
# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"

mkdir -p "$PROVISIONER_CACHE/bin" "$PROVISIONER_CACHE/node"
export CARGO_TARGET_DIR="$PROVISIONER_CACHE/install-target"
TOTAL_START=$EPOCHREALTIME

# ---------------------------------------------------------------------------
# Pinned versions
# ---------------------------------------------------------------------------
WASM_BINDGEN_FALLBACK=0.2.130
BINARYEN_NPM_VERSION=132.0.0
# Unpinned unless set (empty = any installed version is accepted; a fresh install
# takes the newest that `cargo install --locked` resolves).
CARGO_FUZZ_VERSION=${CARGO_FUZZ_VERSION:-}
# moto's server (AWS adapters' tests), in a venv: $PROVISIONER_CACHE/venv/bin/moto_server.
MOTO_SPEC='moto[server]==5.*'

# The wasm-bindgen CLI must equal the `wasm-bindgen` crate version in Cargo.lock.
wasm_bindgen_version() {
  local lock="$ROOT/Cargo.lock" versions
  if [[ -f $lock ]]; then
    versions=$(awk '
      /^\[\[package\]\]/ { name = "" }
      /^name = /         { name = $3 }
      /^version = / && name == "\"wasm-bindgen\"" { v = $3; gsub(/"/, "", v); print v }
    ' "$lock" | sort -uV)
    if [[ -n $versions ]]; then
      if [[ $(wc -l <<<"$versions") -gt 1 ]]; then
        echo "warning: several wasm-bindgen versions in Cargo.lock: $(echo $versions); using the newest" >&2
      fi
      tail -n1 <<<"$versions"
      return
    fi
  fi
  echo "$WASM_BINDGEN_FALLBACK"
}

# ---------------------------------------------------------------------------
# Generic machinery
# ---------------------------------------------------------------------------
die() { echo "install-tools: $*" >&2; exit 1; }

# first_version TEXT -> the first dotted number in TEXT ("wasm-bindgen 0.2.130" -> 0.2.130)
first_version() { grep -oE '[0-9]+(\.[0-9]+)*' <<<"$1" | head -n1 || true; }

# ensure NAME WANT VERSION_CMD INSTALL_CMD...
#   WANT         exact version wanted, or "any"
#   VERSION_CMD  shell snippet printing the installed version ("" or failing = absent)
#   INSTALL_CMD  command (with args) that installs it; its output goes to stderr
# Skips INSTALL_CMD when the wanted version is present, re-checks after installing.
ensure() {
  local name=$1 want=$2 version_cmd=$3; shift 3
  local have
  have=$(eval "$version_cmd" 2>/dev/null || true)
  if [[ -n $have && ( $want == any || $have == "$want" ) ]]; then
    echo "tool $name $have: cached"
    return 0
  fi
  echo "... $name: have '${have:-none}', want '$want': installing" >&2
  local start=$EPOCHREALTIME
  "$@" >&2 || die "installing $name failed"
  hash -r
  have=$(eval "$version_cmd" 2>/dev/null || true)
  if [[ -z $have || ( $want != any && $have != "$want" ) ]]; then
    die "$name: after install have '${have:-none}', want '$want'"
  fi
  echo "tool $name $have: installed in $(_elapsed_since "$start")s"
}

# --- cargo --------------------------------------------------------------------
# cargo_install CRATE VERSION|"" [cargo install flags...]
# Runs from the cache dir so a project .cargo/config.toml (e.g. a wasm build target)
# or rust-toolchain.toml cannot affect the tool builds.
cargo_install() {
  local crate=$1 version=$2; shift 2
  local args=(install "$crate" --root "$PROVISIONER_CACHE" --force "$@")
  [[ -n $version ]] && args+=(--version "$version")
  (cd "$PROVISIONER_CACHE" && cargo "${args[@]}")
}
# cargo_install_path DIR: a tool of this repository (its own Cargo.lock, so --locked)
cargo_install_path() {
  (cd "$PROVISIONER_CACHE" && cargo install --path "$ROOT/$1" --root "$PROVISIONER_CACHE" --force --locked)
}
# cargo-fuzz: --locked first; its lock file has not always built, so retry without.
cargo_install_locked_or_not() {
  local crate=$1 version=$2
  cargo_install "$crate" "$version" --locked \
    || { echo "... $crate: --locked install failed, retrying without --locked" >&2
         cargo_install "$crate" "$version"; }
}
# cargo_bin_version BIN [ARGS...] -> version, only for the copy in $PROVISIONER_CACHE/bin
cargo_bin_version() {
  local bin="$PROVISIONER_CACHE/bin/$1"; shift
  [[ -x $bin ]] || return 1
  first_version "$("$bin" "$@" 2>&1)"
}
# ensure_cargo NAME CRATE WANT|"" BIN [--locked|--locked-or-not]
ensure_cargo() {
  local name=$1 crate=$2 want=$3 bin=$4 mode=${5:-}
  local installer=(cargo_install "$crate" "$want")
  case $mode in
    --locked)        installer+=(--locked) ;;
    --locked-or-not) installer=(cargo_install_locked_or_not "$crate" "$want") ;;
    "") ;;
    *) die "ensure_cargo: bad mode $mode" ;;
  esac
  ensure "$name" "${want:-any}" "cargo_bin_version $bin --version" "${installer[@]}"
}

# --- apt ------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # Called in an `||` context (errexit is off here): check each command.
  if (( APT_UPDATED == 0 )); then
    apt-get update >&2 || return
    APT_UPDATED=1
  fi
  apt-get install -y --no-install-recommends "$@"
}
# dpkg_version PKG... -> version of the first package, only if all are installed
dpkg_version() {
  local pkg status first=""
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$pkg" 2>/dev/null) || return 1
    [[ $status == installed\ * ]] || return 1
    [[ -n $first ]] || first=${status#installed }
  done
  echo "$first"
}
# ensure_apt NAME PKG... (any version; Debian's)
ensure_apt() {
  local name=$1; shift
  ensure "$name" any "dpkg_version $*" apt_install "$@"
}

# --- npm ------------------------------------------------------------------------
# npm_pkg_version PKG -> version of PKG under $PROVISIONER_CACHE/node
npm_pkg_version() {
  local pj="$PROVISIONER_CACHE/node/node_modules/$1/package.json"
  [[ -f $pj ]] || return 1
  node -p "require(process.argv[1]).version" "$pj"
}
npm_install() {
  command -v npm >/dev/null || die "npm not found (Node 20 is expected on this machine kind)"
  npm install --no-audit --no-fund --prefix "$PROVISIONER_CACHE/node" "$@"
}
# ensure_npm NAME PKG VERSION [CHECK_CMD]  (CHECK_CMD must also succeed, e.g. run the bin)
ensure_npm() {
  local name=$1 pkg=$2 want=$3 check=${4:-true}
  ensure "$name" "$want" "{ $check; } >/dev/null 2>&1 && npm_pkg_version $pkg" \
    npm_install "$pkg@$want"
}

# --- pip (in a venv under the cache) ---------------------------------------------
VENV="$PROVISIONER_CACHE/venv"
# moto_version -> the installed moto's version, only if it is 5.x and its server runs
moto_version() {
  [[ -x $VENV/bin/moto_server ]] || return 1
  local v
  v=$("$VENV/bin/python" -c 'import moto; print(moto.__version__)') || return 1
  [[ $v == 5.* ]] && echo "$v"
}
# venv_pip_install SPEC... (creates the venv first if needed)
venv_pip_install() {
  if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV" || return
  fi
  "$VENV/bin/python" -m pip install --quiet "$@"
}

# --- rustup ---------------------------------------------------------------------
rustc_version() { first_version "$(rustc --version)"; }
has_target() { rustup target list --installed | grep -qx "$1" && rustc_version; }
has_component() { rustup component list --installed | grep -q "^$1-" && rustc_version; }

# ---------------------------------------------------------------------------
# The tools, by set (see the top of this file). Add a tool with one `ensure*` line (plus
# a version pin) under the set that needs it.
# ---------------------------------------------------------------------------
command -v rustup >/dev/null || die "rustup not found"
cd "$ROOT"   # rustup acts on the toolchain active for the project

WASM_OPT="$PROVISIONER_CACHE/node/node_modules/.bin/wasm-opt"

# --- serve (and test, dev): the dashboard's build (scripts/build-ui.sh) -----------------
if in_set serve test dev; then
  ensure wasm32-unknown-unknown any "has_target wasm32-unknown-unknown" \
    rustup target add wasm32-unknown-unknown
  WASM_BINDGEN_VERSION=$(wasm_bindgen_version)
  # ui-bindgen's version is the wasm-bindgen it embeds (tools/ui-bindgen/Cargo.toml).
  UI_BINDGEN_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/tools/ui-bindgen/Cargo.toml")
  [[ $UI_BINDGEN_VERSION == "$WASM_BINDGEN_VERSION" ]] \
    || die "tools/ui-bindgen is at wasm-bindgen $UI_BINDGEN_VERSION, Cargo.lock at $WASM_BINDGEN_VERSION: set both versions in tools/ui-bindgen/Cargo.toml to $WASM_BINDGEN_VERSION (and cargo update there)"
  ensure ui-bindgen "$WASM_BINDGEN_VERSION" "cargo_bin_version ui-bindgen --version" \
    cargo_install_path tools/ui-bindgen
  # wasm-opt from npm's binaryen, never Debian's binaryen (v108 corrupts wasm-bindgen output).
  ensure_npm wasm-opt binaryen "$BINARYEN_NPM_VERSION" "\"$WASM_OPT\" --version"
fi

# --- test and dev: the wasm-bindgen CLI ---------------------------------------------------
# wasm-bindgen-test-runner (cargo test --target wasm32), build-wasm.sh, and Trunk.
# No --locked: with it wasm-bindgen-cli fails on a missing dependency version.
if in_set test dev; then
  ensure_cargo wasm-bindgen wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
fi

# --- test: everything else scripts/test.sh runs ---------------------------------------
if in_set test; then
  ensure rustfmt any "has_component rustfmt" rustup component add rustfmt
  ensure clippy  any "has_component clippy"  rustup component add clippy
  ensure_apt chromium chromium chromium-driver
  ensure_cargo cargo-fuzz cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz --locked-or-not
  # dynalite: a stricter DynamoDB stand-in (scripts/bench-import-dynalite.sh), in memory.
  DYNALITE_NPM_VERSION=4.0.0
  ensure_npm dynalite dynalite "$DYNALITE_NPM_VERSION" "\"$PROVISIONER_CACHE/node/node_modules/.bin/dynalite\" --help"
  ensure_apt mosquitto mosquitto mosquitto-clients
  ensure moto any moto_version venv_pip_install "$MOTO_SPEC"
  # Offline checks of the deployment templates (scripts/test-infra.sh): cfn-lint and the SAM
  # CLI in their own venv (SAM pins its own boto3; the moto venv stays untouched). Exact
  # pins, installed together (aws-sam-cli 1.170 needs cfn-lint <1.59), so lint results do
  # not change under us; newer lint rules may flag new warnings when these are raised.
  CFN_LINT_VERSION=1.58.0
  SAM_CLI_VERSION=1.170.0
  SAM_VENV="$PROVISIONER_CACHE/sam-venv"
  sam_venv_install() {
    [[ -x $SAM_VENV/bin/python ]] || python3 -m venv "$SAM_VENV" || return
    "$SAM_VENV/bin/python" -m pip install --quiet "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
  }
  ensure cfn-lint "$CFN_LINT_VERSION" "first_version \"\$(\"$SAM_VENV/bin/cfn-lint\" --version)\"" sam_venv_install
  ensure sam "$SAM_CLI_VERSION" "first_version \"\$(SAM_CLI_TELEMETRY=0 \"$SAM_VENV/bin/sam\" --version)\"" sam_venv_install
fi

# --- deploy: cargo lambda and zig, its cross linker (scripts/build-lambdas.sh) -----------
if in_set deploy; then
  CARGO_LAMBDA_VERSION=1.9.2
  ZIGLANG_VERSION=0.17.1
  LAMBDA_VENV="$PROVISIONER_CACHE/lambda-venv"
  cargo_lambda_version() {
    [[ -x $LAMBDA_VENV/bin/cargo-lambda ]] || return 1
    "$LAMBDA_VENV/bin/python" -m ziglang version >/dev/null || return 1
    first_version "$("$LAMBDA_VENV/bin/cargo-lambda" lambda --version)"
  }
  lambda_venv_pip_install() {
    [[ -x $LAMBDA_VENV/bin/python ]] || python3 -m venv "$LAMBDA_VENV" || return
    "$LAMBDA_VENV/bin/python" -m pip install --quiet "$@"
  }
  ensure cargo-lambda "$CARGO_LAMBDA_VERSION" cargo_lambda_version \
    lambda_venv_pip_install "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
fi

# --- dev: Trunk, for `trunk serve` on the dashboard (Trunk.toml) ------------------------
# Not needed to build the dashboard (scripts/build-ui.sh runs wasm-bindgen and wasm-opt
# itself); about 7 minutes to compile. Newer releases need a newer rustc than 1.95.
if in_set dev; then
  TRUNK_VERSION=0.21.14
  ensure_cargo trunk trunk "$TRUNK_VERSION" trunk --locked
fi
# --------------------------------------------------------------------------------------

# Sanity: the wasm-opt first on PATH must be ours (Trunk takes the first one).
if [[ -x $WASM_OPT && $(command -v wasm-opt) != "$WASM_OPT" ]]; then
  die "wasm-opt on PATH is $(command -v wasm-opt), expected $WASM_OPT"
fi
if [[ -e /usr/bin/wasm-opt ]]; then
  echo "warning: /usr/bin/wasm-opt exists (Debian binaryen?); env.sh shadows it, but remove it" >&2
fi

echo "install-tools: the $SET tools are ready in $(_elapsed_since "$TOTAL_START")s (cache $PROVISIONER_CACHE); source scripts/env.sh for PATH"
