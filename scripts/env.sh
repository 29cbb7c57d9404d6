# shellcheck shell=bash
# Environment for the project's scripts. Source it, do not execute it:
#   source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# Tools installed by scripts/install-tools.sh live under $PROVISIONER_CACHE.

: "${PROVISIONER_CACHE:=$HOME/.cache/provisioner}"
export PROVISIONER_CACHE

_provisioner_path_prepend() {
  case ":$PATH:" in
    *":$1:"*) ;;
    *) PATH="$1:$PATH" ;;
  esac
}
# rustup's cargo (a fresh non-login shell may lack it); appended, so it never shadows.
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
  PATH="$PATH:$HOME/.cargo/bin"
fi
# Last prepended wins: cargo-installed tools first, then npm's (wasm-opt from binaryen@132).
_provisioner_path_prepend "$PROVISIONER_CACHE/node/node_modules/.bin"
_provisioner_path_prepend "$PROVISIONER_CACHE/bin"
unset -f _provisioner_path_prepend
export PATH

export CHROMEDRIVER=/usr/bin/chromedriver
