#!/usr/bin/env bash
# The project's whole test suite, as CI and a new user run it:
#
#   bash scripts/test.sh
#
# Installs what it needs first (`scripts/install-tools.sh test`: wasm target, pinned
# wasm-bindgen-cli, wasm-opt from npm, Chromium and chromedriver, cargo-fuzz, moto,
# dynalite, mosquitto, cfn-lint), cached under $PROVISIONER_CACHE, then runs every check
# and prints each step's duration and the total.
# FUZZ_SECONDS (default 30) sets the fuzzing step's length, shared by the fuzz targets;
# 0 skips it.
#
# Budgets (README, "Budgets"): at most 45 minutes on a fresh 2-core machine (empty tool
# cache and target directory), at most 12 warm. No step fails on time; compare the
# printed figures with the README's. Each thing is built and run once: the browser tests
# run through `cargo test` (no `wasm-pack test`), the dashboard is built once (by
# test-e2e.sh), and the Lambdas' binaries are built by test-aws.sh's `cargo test` (a
# release `cargo lambda build` is deployment's: scripts/build-lambdas.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh
source scripts/lib.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
WASM=(--target wasm32-unknown-unknown)
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
START=$EPOCHREALTIME

step "install tools" bash scripts/install-tools.sh test
step "cargo fmt --check" cargo fmt --all --check
step "clippy (native)" cargo clippy --workspace --all-targets --locked -- -D warnings
step "clippy (wasm32)" cargo clippy -p provisioner-verifier-wasm "${WASM[@]}" --all-targets --locked -- -D warnings
step "clippy (core without p384)" cargo clippy -p provisioner-core --no-default-features --all-targets --locked -- -D warnings
step "clippy (dashboard, wasm32)" cargo clippy -p provisioner-admin-ui "${WASM[@]}" --all-targets --locked -- -D warnings
step "docs (warnings are errors)" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
step "native tests" cargo test --workspace --exclude provisioner-store-aws --all-targets --locked
step "AWS adapters against moto" bash scripts/test-aws.sh
step "DynamoDB import of 100,000 devices into dynalite" bash scripts/bench-import-dynalite.sh
step "wasm tests in Node" cargo test -p provisioner-verifier-wasm "${WASM[@]}" --test node --locked
step "wasm tests in headless Chromium" cargo test -p provisioner-verifier-wasm "${WASM[@]}" --test browser --locked
step "wasm tests with P-384 in Node" cargo test -p provisioner-verifier-wasm --features p384 "${WASM[@]}" --test node --locked
step "build wasm packages (size budget)" bash scripts/build-wasm.sh
step "built package tests in Node" node --test verifier-wasm/js/
step "edge function (Lambda@Edge) tests" bash scripts/test-edge.sh
step "dashboard components in headless Chromium" cargo test -p provisioner-admin-ui "${WASM[@]}" --test browser --locked
# Builds the dashboard first (scripts/build-ui.sh, with its size budget).
step "dashboard end to end (Playwright)" bash scripts/test-e2e.sh
step "deployment templates (cfn-lint, sam validate)" bash scripts/test-infra.sh
if (( FUZZ_SECONDS > 0 )); then
  step "fuzz every target (${FUZZ_SECONDS}s in all)" bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi
echo "all steps passed in $(_elapsed_since "$START")s"
