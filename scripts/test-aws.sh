#!/usr/bin/env bash
# The AWS adapters' tests against moto's server (real SDK, real wire protocol):
#
#   bash scripts/test-aws.sh
#
# Starts moto ($PROVISIONER_CACHE/venv/bin/moto_server, from scripts/install-tools.sh) on
# 127.0.0.1 on a free port through scripts/moto.sh, which records its PID; runs the tests
# of provisioner-store-aws, the `aws` modules of the server's tests and the Lambdas' tests
# with AWS_ENDPOINT_URL pointing at it and dummy credentials; stops that PID on exit,
# whatever the outcome.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh

# The workspace's lint covers provisioner-store-aws; the binaries' `aws` features are
# outside it.
cargo clippy -p provisioner -p provisioner-lambdas --features provisioner/aws,provisioner-lambdas/aws --all-targets --locked -- -D warnings

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

# The AWS adapters (unit tests, then one integration binary: DynamoDB registry and admin
# reads, ACM Private CA, the issuing CA's rotation, IoT Core, S3, the whole flow, the admin
# API over AwsFleet, the registry contract on DynamoDB).
cargo test -p provisioner-store-aws --locked
# The real `provisioner` binary with `--backend aws` and `provisioner aws ...`: the PKI
# admin's commands, dozens of identical POST /new racing, a CA rotation while devices
# renew, issuance mode iot-core (issue 11's invariants on AWS). Only the `aws` modules:
# the others ran in the native step.
cargo test -p provisioner --features aws --test it --locked -- aws::
# The Lambdas' handlers, over the fakes and over DynamoDB.
cargo test -p provisioner-lambdas --features aws --locked
