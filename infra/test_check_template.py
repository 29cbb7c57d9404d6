"""Self-test of check_template.py: each broken variant of infra/template.yaml must fail the
check with the message that names what is broken. A check that passes them all would be
checking nothing.

    $PROVISIONER_CACHE/sam-venv/bin/python infra/test_check_template.py

Each variant is the template with one text replacement (which must apply exactly once),
written with edge.yaml into a temporary directory that check_template.py reads instead of
infra/. Exits 1 with one line per variant that was not refused as expected.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

INFRA = Path(__file__).resolve().parent
CHECK = INFRA / "check_template.py"

# (what is broken, text to replace, replacement, a message the check must print)
VARIANTS = [
    (
        "two maintenance runs at once",
        "      ReservedConcurrentExecutions: 1\n",
        "      ReservedConcurrentExecutions: 2\n",
        "reserved concurrency 1",
    ),
    (
        "maintenance every five minutes",
        "            Schedule: rate(1 minute)\n",
        "            Schedule: rate(5 minutes)\n",
        "rate(1 minute)",
    ),
    (
        "maintenance timeout shorter than its budget",
        "      CodeUri: ../target/lambda/maintenance/\n      Timeout: 120\n",
        "      CodeUri: ../target/lambda/maintenance/\n      Timeout: 60\n",
        "FUNCTION_TIMEOUT_SECS",
    ),
    (
        "failed maintenance runs retried",
        "        MaximumRetryAttempts: 0\n",
        "        MaximumRetryAttempts: 2\n",
        "not retried",
    ),
    (
        "the admin API without the Cognito authorizer",
        "            Path: /admin/api/{proxy+}\n            Method: any\n",
        "            Path: /admin/api/{proxy+}\n            Method: any\n            Auth: { Authorizer: NONE }\n",
        "goes through the Cognito authorizer",
    ),
    (
        "the dashboard's files behind the authorizer",
        "            Path: /ui/{proxy+}\n            Method: get\n            Auth: { Authorizer: NONE }\n",
        "            Path: /ui/{proxy+}\n            Method: get\n",
        "is a public GET",
    ),
    (
        "the sign-in redirect computed from the distribution (a cycle)",
        'CallbackURLs: !If [HasAdminDashboardUrl, [!Sub "${AdminDashboardUrl}/"], !Ref AWS::NoValue]',
        'CallbackURLs: [!Sub "https://${Distribution.DomainName}/"]',
        "dependency cycle",
    ),
    (
        "without the admin API, a cached default behaviour",
        "          # No admin API, no dashboard: the device API answers 404 JSON off its routes.\n"
        "          - TargetOriginId: device-api\n"
        "            ViewerProtocolPolicy: redirect-to-https\n"
        "            AllowedMethods: [GET, HEAD]\n"
        "            Compress: true\n"
        "            CachePolicyId: 4135ea2d-6df8-44a3-9df3-4b5a84be39ad # managed CachingDisabled\n",
        "          - TargetOriginId: device-api\n"
        "            ViewerProtocolPolicy: redirect-to-https\n"
        "            AllowedMethods: [GET, HEAD]\n"
        "            Compress: true\n"
        "            CachePolicyId: 658327ea-f89d-4fab-a63d-7e88639e58f6 # managed CachingOptimized\n",
        "EnableAdminApi=false: the default behaviour",
    ),
    (
        "the audit table without its index by device",
        "      GlobalSecondaryIndexes:\n"
        "        - IndexName: byDevice\n"
        "          KeySchema:\n"
        "            - { AttributeName: deviceId, KeyType: HASH }\n"
        "            - { AttributeName: eventId, KeyType: RANGE }\n"
        "          Projection: { ProjectionType: ALL }\n",
        "",
        "audit indexes [], expected ('byDevice', ('deviceId', 'S'), ('eventId', 'S'))",
    ),
    (
        "the admin API unable to query the audit index",
        '                - !Sub "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TablePrefix}audit/index/byDevice"\n',
        "",
        "AdminApiFunction: dynamodb:Query on audit/index/byDevice",
    ),
    (
        "the admin API off by default",
        '  EnableAdminApi:\n    Type: String\n    Default: "true"\n',
        '  EnableAdminApi:\n    Type: String\n    Default: "false"\n',
        "default true",
    ),
]


def main():
    template = (INFRA / "template.yaml").read_text()
    problems = []
    for name, old, new, expected in VARIANTS:
        if template.count(old) != 1:
            problems.append(f"{name}: the text to replace occurs {template.count(old)} times (update this variant)")
            continue
        with tempfile.TemporaryDirectory(prefix="check-template-") as folder:
            (Path(folder) / "template.yaml").write_text(template.replace(old, new))
            shutil.copy(INFRA / "edge.yaml", folder)
            run = subprocess.run([sys.executable, str(CHECK), folder], capture_output=True, text=True)
        output = run.stdout + run.stderr
        if run.returncode == 0:
            problems.append(f"{name}: the check passed it")
        elif expected not in output:
            problems.append(f"{name}: refused, but not with {expected!r}:\n{output}")
    for problem in problems:
        print(f"check_template self-test failed: {problem}")
    if problems:
        sys.exit(1)
    print(f"check_template self-test: all {len(VARIANTS)} broken variants refused")


main()
