#!/usr/bin/env bash
# Tests the Lambda@Edge function: builds verifier-wasm if needed and the edge zip
# (scripts/build-edge.sh, which runs `npm ci` in edge/ when needed), then runs the Node
# tests in edge/test/ on the compiled handler and on the extracted zip.
#
#   bash scripts/install-tools.sh && bash scripts/test-edge.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh
source scripts/lib.sh

START=$EPOCHREALTIME
step "build edge function (and verifier-wasm if needed)" bash scripts/build-edge.sh
step "edge tests in Node" node --test edge/test/*.test.cjs
echo "edge: all steps passed in $(_elapsed_since "$START")s"
