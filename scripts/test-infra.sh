#!/usr/bin/env bash
# Offline checks of the AWS deployment templates (infra/template.yaml, infra/edge.yaml):
#   1. cfn-lint, every rule including informational ones, in three regions for the main
#      template (us-east-1 only for the edge one): no error, no warning;
#   2. `sam validate --lint` on each (the SAM translator, then cfn-lint on its output);
#   3. infra/check_template.py: the service's contract in the templates (authorizer
#      without cache or identity source, gateway responses, table keys as dynamodb.rs,
#      the environment the binaries read, least-privilege IAM, CloudFront, buckets, the
#      admin API's public and authorized routes, the maintenance schedule, no cycle);
#      then infra/test_check_template.py: broken variants that the check must refuse.
# No AWS account or network: dummy credentials, telemetry off, no instance metadata.
# The tools come from scripts/install-tools.sh ($PROVISIONER_CACHE/sam-venv).
#
#   bash scripts/test-infra.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

BIN="$PROVISIONER_CACHE/sam-venv/bin"
for tool in cfn-lint sam python; do
  [[ -x $BIN/$tool ]] || { echo "test-infra: $BIN/$tool missing; run bash scripts/install-tools.sh" >&2; exit 1; }
done

# sam validate wants credentials and a region even though it calls nothing; never a real
# profile, never the network.
export AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_SESSION_TOKEN=offline
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
unset AWS_PROFILE AWS_ENDPOINT_URL

"$BIN/cfn-lint" --include-checks I --regions us-east-1 eu-west-1 ap-southeast-2 -- infra/template.yaml
"$BIN/cfn-lint" --include-checks I --regions us-east-1 -- infra/edge.yaml
echo "cfn-lint $("$BIN/cfn-lint" --version | grep -oE '[0-9.]+$'): infra/template.yaml, infra/edge.yaml clean"

for template in infra/template.yaml infra/edge.yaml; do
  "$BIN/sam" validate --lint --template "$template" --region us-east-1
done

"$BIN/python" infra/check_template.py
"$BIN/python" infra/test_check_template.py
