#!/usr/bin/env bash
# The AWS adapters' tests against moto's server (real SDK, real wire protocol):
#
#   bash scripts/test-aws.sh
#
# Starts moto ($PROVISIONER_CACHE/venv/bin/moto_server, from scripts/install-tools.sh) on
# 127.0.0.1 on a free port through scripts/moto.sh, which records its PID; runs the
# DynamoDB registry, ACM PCA authority, IoT registry and S3 retrieval tests with
# AWS_ENDPOINT_URL pointing at it and dummy credentials, then the AWS adapters' unit
# tests; stops that PID on exit, whatever the outcome.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh

# The feature is outside the workspace's default lint run: lint it here.
cargo clippy -p provisioner-service --features aws --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -p provisioner-service --features aws --no-deps --locked

MOTO_SERVER="$PROVISIONER_CACHE/venv/bin/moto_server"
[[ -x $MOTO_SERVER ]] || { echo "test-aws: $MOTO_SERVER not found: run bash scripts/install-tools.sh" >&2; exit 1; }

# A directory of this run's own, so a moto left by another run is never touched.
MOTO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/provisioner-moto.XXXXXX")
export MOTO_DIR
cleanup() {
  bash scripts/moto.sh stop || true
  rm -rf "$MOTO_DIR"
}
trap cleanup EXIT

# Sets AWS_ENDPOINT_URL=http://127.0.0.1:PORT, AWS_ACCESS_KEY_ID=testing (and the
# other dummy credentials), AWS_REGION=us-east-1 and MOTO_PID.
moto_env=$(bash scripts/moto.sh start)
eval "$moto_env"
echo "test-aws: moto PID $MOTO_PID at $AWS_ENDPOINT_URL"

cargo test -p provisioner-service --features aws --test dynamodb_registry --locked
cargo test -p provisioner-service --features aws --test dynamodb_admin --locked
cargo test -p provisioner-service --features aws --test acm_pca_authority --locked
# The PKI admin's steps and the CA rotation (library, then the `provisioner aws ca` commands,
# which only build with the feature: lint them here too).
cargo test -p provisioner-service --features aws --test aws_ca --locked
cargo clippy -p provisioner --features aws --all-targets --locked -- -D warnings
cargo test -p provisioner --features aws --test aws_cli --locked
# Dozens of identical POST /new racing against `serve --backend aws`, and a CA rotation
# while devices renew (issue 11's invariants 1, 2 and 4 on AWS).
cargo test -p provisioner --features aws --test aws_race --locked
cargo test -p provisioner-service --features aws --test iot_registry --locked
cargo test -p provisioner-service --features aws --test s3_retrieval --locked
cargo test -p provisioner-service --features aws --test aws_flow --locked
# issuance mode iot-core through the real `serve --backend aws` (issue 11, invariant 3).
cargo test -p provisioner --features aws --test aws_iot_core --locked
cargo test -p provisioner-service --features aws --test aws_admin --locked
# The Lambdas' handlers over the DynamoDB registry, and the lint of their binaries (which
# only build with the feature).
cargo clippy -p provisioner-lambdas --features aws --all-targets --locked -- -D warnings
cargo test -p provisioner-lambdas --features aws --test moto --locked
cargo test -p provisioner-lambdas --features aws --lib --test admin_moto --locked
# The adapters' unit tests (no moto needed; the workspace's default test run leaves them
# out, as it leaves out the feature).
cargo test -p provisioner-service --features aws --lib --locked aws::
