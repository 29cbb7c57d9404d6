"""Contract checks of the deployment templates that cfn-lint and `sam validate` cannot make.

cfn-lint checks that the templates are valid CloudFormation; this checks that they deploy
*this* service: the authorizer contract, the gateway responses devices see, the table keys
the DynamoDB adapter uses, the environment the binaries read, least-privilege IAM, the
CloudFront behaviours and the bucket settings. Each check names what it found.

The admin API is optional (parameter EnableAdminApi, condition AdminApiEnabled, on by
default): its resources are checked as they are (the translator keeps conditional
resources, with their Condition), the CloudFront distribution both with the condition on
and off. The scheduled maintenance function runs every minute, one run at a time, within
the timeout its budget was planned for (lambdas/src/maintenance.rs). No resource may
depend on itself through others (cfn-lint does not see cycles through what the SAM
translator generates).

`python infra/test_check_template.py` runs this script on broken variants of the template
and expects each to fail with the right message.

Runs offline with the SAM translator (the same one `sam validate` and `sam deploy` use):

    $PROVISIONER_CACHE/sam-venv/bin/python infra/check_template.py [TEMPLATES_DIR]

Exits 1 with one line per failed check.
"""

import json
import logging
import os
import re
import sys
from pathlib import Path

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parent.parent
# The templates' directory: infra/, or another (the argument) to test this script on variants.
INFRA = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "infra"

# Managed CloudFront policies (fixed ids, the same in every account).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

# The tables of store-aws/src/dynamodb.rs (module docs) and config.rs: name -> keys.
TABLES = {
    "devices": {"hash": ("deviceId", "S")},
    "certificates": {"hash": ("certificateId", "S")},
    "audit": {"hash": ("day", "S"), "range": ("eventId", "S")},
    "config": {"hash": ("name", "S")},
    "registrations": {"hash": ("certificateId", "S"), "range": ("region", "S")},
}
# Secondary indexes: table -> (index, hash key, range key), all attributes projected.
INDEXES = {
    "certificates": ("byDevice", ("deviceId", "S"), ("issuedAt", "N")),  # dynamodb.rs BY_DEVICE_INDEX
    "audit": ("byDevice", ("deviceId", "S"), ("eventId", "S")),  # dynamodb.rs AUDIT_BY_DEVICE_INDEX
    "registrations": ("unfinished", ("queue", "S"), ("updatedAt", "N")),  # iot.rs UNFINISHED_INDEX
}
# The indexes (tables of INDEXES) each function queries: its role must allow dynamodb:Query
# on the index's ARN (table/<table>/index/<index>, or index/*); the table's own ARN does not
# cover its indexes.
INDEX_QUERIES = {
    "IssuerFunction": {"certificates", "registrations"},  # the rate limit; registrations
    # a device's certificates and its audit events; failed registrations
    "AdminApiFunction": {"certificates", "audit", "registrations"},
    "MaintenanceFunction": {"registrations"},  # unfinished registrations to retry
}

# Variables the binaries read that the template leaves at their defaults, and why.
UNSET_ON_PURPOSE = {
    # Retrieval URLs are relative (/certificates/...), which CloudFront serves; an absolute
    # one would need the distribution's domain in the issuer's environment: a cycle
    # (function -> distribution -> API -> function).
    "PROVISIONER_PUBLIC_URL",
    "PROVISIONER_RETRIEVAL_TTL_SECS",  # the default, 600 s
    "PROVISIONER_RETRIEVAL_KEY",  # derived from the origin secret every function shares
    # The default, true: the issuing CA is registered in IoT Core (`provisioner aws ca
    # register`). Multi-account mode (false, devices connect with SNI) is not a template
    # option yet.
    "PROVISIONER_IOT_CA_REGISTERED",
    # Every user of the admins' pool is an admin: accounts are created by an administrator
    # only (AdminCreateUserConfig), so no group is required.
    "PROVISIONER_ADMIN_JWT_GROUP",
    "PROVISIONER_DASHBOARD_DIR",  # the default: dashboard/ beside bootstrap, in the zip
}

# The Lambda binaries and the CodeUri convention (cargo lambda's output).
FUNCTIONS = {
    "AuthorizerFunction": "authorizer",
    "IssuerFunction": "issuer",
    "AdminApiFunction": "admin-api",
    "MaintenanceFunction": "maintenance",
}

# The admin API's routes: the API behind the Cognito authorizer, the dashboard public.
ADMIN_AUTHORIZED_PATHS = {"/admin/api/{proxy+}"}
ADMIN_PUBLIC_PATHS = {"/", "/ui/{proxy+}", "/admin/sign-in.json"}

# The maintenance run's schedule.
MAINTENANCE_SCHEDULE = "rate(1 minute)"

# The admin API's switch: parameter, condition, and the resources only it uses (logical
# ids of the template as written; the translator's resources for AdminApi and
# AdminApiFunction, e.g. AdminApiFunctionRole, start with these names too).
ADMIN_PARAMETER = "EnableAdminApi"
ADMIN_CONDITION = "AdminApiEnabled"
ADMIN_ONLY = {"AdminApi", "AdminApiFunction", "AdminApiLogGroup", "AdminUserPool", "AdminUserPoolDomain",
              "AdminUserPoolClient", "AdminCachePolicy"}
ADMIN_OUTPUTS = {"AdminUserPoolId", "AdminUserPoolClientId", "AdminJwtIssuer", "AdminHostedUiUrl", "DashboardUrl"}

failures = []
notices = []
logging.disable(logging.WARNING)  # the translator's feature-toggle chatter


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


class NoManagedPolicies:
    """The translator's managed-policy lookup, offline: the templates name none by name."""

    def load(self):
        return {}


def load(name):
    template, matches = decode(str(INFRA / name))
    if matches:
        sys.exit(f"{name}: {matches}")
    raw = json.loads(json.dumps(template))  # plain dicts, for the raw-template checks
    # As `sam validate` does: local code paths become an S3 location (sam deploy uploads).
    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/key"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    translated = transform(packaged, {}, NoManagedPolicies())
    return raw, translated["Resources"]


def gateway_body(template_text):
    """A gateway response template as JSON, with its $context variables filled in."""
    text = template_text.replace("$context.error.messageString", '"quoted message"')
    text = re.sub(r"\$context\.[A-Za-z.]+", "value", text)
    return json.loads(text)


def statements(resources, role):
    for policy in resources[role]["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def iam_resource_types():
    """cfn-lint's copy of the IAM service authorization reference: action -> resource types."""
    import cfnlint.data.AdditionalSpecs as specs

    data = json.loads((Path(specs.__file__).parent / "Policies.json").read_text())
    return {
        f"{service}:{action}": set(entry.get("Resources", []))
        for service, body in data.items()
        for action, entry in body.get("Actions", {}).items()
    }


def documented_variables():
    """PROVISIONER_* variables the AWS binaries read, from their module docs."""
    names = set()
    for path in ["store-aws/src/config.rs", "lambdas/src/settings.rs"]:
        file = ROOT / path
        if file.exists():
            docs = "\n".join(line for line in file.read_text().splitlines() if line.startswith("//!"))
            names |= set(re.findall(r"`(PROVISIONER_[A-Z0-9_]+)`", docs))
    return names


def maintenance_timeout():
    """lambdas/src/maintenance.rs FUNCTION_TIMEOUT_SECS: the timeout its budget is planned for."""
    source = ROOT / "lambdas" / "src" / "maintenance.rs"
    found = re.search(r"FUNCTION_TIMEOUT_SECS: u64 = (\d+);", source.read_text()) if source.exists() else None
    return int(found.group(1)) if found else None


def references(value, out):
    """Logical ids `value` names through Ref, Fn::GetAtt and Fn::Sub."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                out.add(item.split(".")[0])
            elif key == "Fn::GetAtt":
                out.add(item[0] if isinstance(item, list) else item.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (item, {}) if isinstance(item, str) else (item[0], item[1])
                out.update(name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)
                           if name.split(".")[0] not in variables)
                references(variables, out)
            else:
                references(item, out)
    elif isinstance(value, list):
        for item in value:
            references(item, out)
    return out


def dependency_cycle(resources):
    """One cycle of the resources' dependencies (Ref, GetAtt, Sub, DependsOn), or None."""
    graph = {}
    for logical, resource in resources.items():
        named = references(resource.get("Properties", {}), set())
        depends = resource.get("DependsOn", [])
        named.update(depends if isinstance(depends, list) else [depends])
        graph[logical] = sorted(n for n in named if n in resources and n != logical)
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def lambda_binaries():
    """[[bin]] names of lambdas/Cargo.toml."""
    cargo = ROOT / "lambdas" / "Cargo.toml"
    if not cargo.exists():
        return set()
    return set(re.findall(r'\[\[bin\]\]\s*\nname\s*=\s*"([^"]+)"', cargo.read_text()))


def resolve(value, condition, enabled):
    """`value` with every Fn::If on `condition` decided: the chosen branch, AWS::NoValue dropped."""
    no_value = {"Ref": "AWS::NoValue"}
    if isinstance(value, dict):
        if set(value) == {"Fn::If"} and value["Fn::If"][0] == condition:
            return resolve(value["Fn::If"][1 if enabled else 2], condition, enabled)
        resolved = {k: resolve(v, condition, enabled) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v != no_value}
    if isinstance(value, list):
        return [v for v in (resolve(item, condition, enabled) for item in value) if v != no_value]
    return value


def check_admin_switch(raw, res):
    """EnableAdminApi: on by default, and exactly the admin-only resources depend on it."""
    parameter = raw["Parameters"].get(ADMIN_PARAMETER, {})
    check(parameter.get("Default") == "true" and sorted(parameter.get("AllowedValues", [])) == ["false", "true"],
          f"{ADMIN_PARAMETER} is true/false, default true: {parameter}")
    check(raw.get("Conditions", {}).get(ADMIN_CONDITION) == {"Fn::Equals": [{"Ref": ADMIN_PARAMETER}, "true"]},
          f"condition {ADMIN_CONDITION} is {ADMIN_PARAMETER} == true")
    for logical, resource in raw["Resources"].items():
        wanted = ADMIN_CONDITION if logical in ADMIN_ONLY else None
        if wanted or resource.get("Condition") == ADMIN_CONDITION:
            check(resource.get("Condition") == wanted,
                  f"{logical} has Condition {resource.get('Condition')}, expected {wanted} "
                  f"(admin-only: {sorted(ADMIN_ONLY)}; the device path never depends on the admin API)")
    # What SAM generates (roles, permissions, stages, deployments) inherits the condition.
    for logical, resource in res.items():
        admin = any(logical.startswith(name) for name in ADMIN_ONLY)
        check((resource.get("Condition") == ADMIN_CONDITION) == admin,
              f"translated {logical} has Condition {resource.get('Condition')}")
    for name, output in raw["Outputs"].items():
        check((output.get("Condition") == ADMIN_CONDITION) == (name in ADMIN_OUTPUTS),
              f"output {name} has Condition {output.get('Condition')}")


def check_main():
    raw, res = load("template.yaml")
    raw_res = raw["Resources"]
    check_admin_switch(raw, res)

    # --- The device API: the authorizer contract and the gateway responses -------------
    body = res["DeviceApi"]["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["DeviceAuthorizer"]["x-amazon-apigateway-authorizer"]
    check(scheme.get("type") == "request", f"DeviceAuthorizer is a REQUEST authorizer: {scheme.get('type')}")
    check(scheme.get("authorizerResultTtlInSeconds") == 0, "DeviceAuthorizer caches nothing (TTL 0)")
    check("identitySource" not in scheme, "DeviceAuthorizer has no identity source (a missing header reaches it)")
    paths = body["paths"]
    check(paths.get("/new", {}).get("post", {}).get("security") == [{"DeviceAuthorizer": []}],
          "POST /new goes through DeviceAuthorizer")
    check(paths.get("/certificates/{id}", {}).get("get", {}).get("security") == [{"NONE": []}],
          "GET /certificates/{id} has no authorizer (a signed URL)")
    responses = body["x-amazon-apigateway-gateway-responses"]
    for kind in ["UNAUTHORIZED", "ACCESS_DENIED", "AUTHORIZER_FAILURE", "MISSING_AUTHENTICATION_TOKEN",
                 "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"]:
        if check(kind in responses, f"device API has a {kind} gateway response"):
            parsed = gateway_body(responses[kind]["responseTemplates"]["application/json"])
            check(set(parsed) == {"error", "message"}, f"{kind} answers JSON {{error, message}}: {parsed}")
    if "UNAUTHORIZED" in responses:
        check(responses["UNAUTHORIZED"].get("statusCode") == "404", "an unknown device is 404")
        check(gateway_body(responses["UNAUTHORIZED"]["responseTemplates"]["application/json"])["error"]
              == "unknown_device", "an unknown device is unknown_device")
    if "ACCESS_DENIED" in responses:
        check(responses["ACCESS_DENIED"].get("statusCode") == "403", "a denied request is 403")
        check(responses["ACCESS_DENIED"]["responseTemplates"]["application/json"]
              == '{"error":"$context.authorizer.error","message":"$context.authorizer.message"}',
              "a denied request carries the authorizer's error and message")
    # SAM wraps a conditional function's routes in Fn::If on its condition.
    admin = resolve(res["AdminApi"]["Properties"]["Body"], ADMIN_CONDITION, True)
    routes = {(path, method): body.get("security") for path, methods in admin["paths"].items()
              for method, body in methods.items()}
    check({path for path, _ in routes} == ADMIN_AUTHORIZED_PATHS | ADMIN_PUBLIC_PATHS,
          f"the admin API's routes are {sorted(ADMIN_AUTHORIZED_PATHS | ADMIN_PUBLIC_PATHS)}: {sorted(routes)}")
    for (path, method), security in routes.items():
        if path in ADMIN_AUTHORIZED_PATHS:
            check(security == [{"AdminCognito": []}], f"{method} {path} goes through the Cognito authorizer: {security}")
        else:
            check(security == [{"NONE": []}] and method == "get",
                  f"{method} {path} is a public GET (the dashboard's static files): {security}")
    check(admin["components"]["securitySchemes"]["AdminCognito"]["x-amazon-apigateway-authorizer"]["type"]
          == "cognito_user_pools", "AdminCognito is a Cognito user pool authorizer")
    check("*/*" in admin.get("x-amazon-apigateway-binary-media-types", []),
          "the admin API decodes the function's base64 answers (binary media type */*: the dashboard's wasm)")
    check(not any(r["Type"] == "AWS::ApiGateway::Stage" and r["Properties"]["StageName"] == "Stage"
                  for r in res.values()), "no stray SAM stage named Stage")

    # --- DynamoDB ----------------------------------------------------------------------
    rust = (ROOT / "store-aws/src/dynamodb.rs").read_text()
    check(f'\npub const BY_DEVICE_INDEX: &str = "{INDEXES["certificates"][0]}"' in rust,
          "the certificates index name matches dynamodb.rs BY_DEVICE_INDEX")
    check(f'AUDIT_BY_DEVICE_INDEX: &str = "{INDEXES["audit"][0]}"' in rust,
          "the audit index name matches dynamodb.rs AUDIT_BY_DEVICE_INDEX")
    iot_rs = ROOT / "store-aws/src/iot.rs"
    if iot_rs.exists():
        check(f'UNFINISHED_INDEX: &str = "{INDEXES["registrations"][0]}"' in iot_rs.read_text(),
              "the index name matches iot.rs")
    tables = {r["Properties"]["TableName"]["Fn::Sub"].replace("${TablePrefix}", ""): r["Properties"]
              for r in raw_res.values() if r["Type"] == "AWS::DynamoDB::GlobalTable"}
    check(set(tables) == set(TABLES), f"tables {sorted(tables)} are {sorted(TABLES)}")
    for name, props in tables.items():
        attributes = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
        keys = {k["KeyType"].lower(): (k["AttributeName"], attributes[k["AttributeName"]])
                for k in props["KeySchema"]}
        check(keys == TABLES.get(name), f"{name} keys {keys}")
        check(props.get("BillingMode") == "PAY_PER_REQUEST", f"{name} is on demand")
        check(props.get("SSESpecification", {}).get("SSEEnabled") is True, f"{name} has SSE")
        replicas = [r for r in props["Replicas"] if "Region" in r] + [
            r["Fn::If"][1] for r in props["Replicas"] if "Fn::If" in r]
        check(all(r.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True
                  for r in replicas), f"{name}: point-in-time recovery on every replica")
        check(props["Replicas"][0]["Region"] == {"Ref": "AWS::Region"}, f"{name}: first replica is this region")
    for name, props in tables.items():
        attributes = {a["AttributeName"]: a["AttributeType"] for a in props.get("AttributeDefinitions", [])}
        found = [(g["IndexName"], *[(k["AttributeName"], attributes.get(k["AttributeName"])) for k in g["KeySchema"]])
                 for g in props.get("GlobalSecondaryIndexes", []) if g.get("Projection") == {"ProjectionType": "ALL"}]
        check(found == ([INDEXES[name]] if name in INDEXES else []),
              f"{name} indexes {found}, expected {INDEXES.get(name)} with all attributes")

    # --- The environment every binary reads ----------------------------------------------
    env = raw["Globals"]["Function"]["Environment"]["Variables"]
    per_function = {name for r in raw_res.values() if r["Type"] == "AWS::Serverless::Function"
                    for name in r["Properties"].get("Environment", {}).get("Variables", {})}
    missing = documented_variables() - set(env) - per_function - UNSET_ON_PURPOSE
    check(not missing, f"variables the binaries read but the template does not set: {sorted(missing)} "
                       "(set them in Globals, or add them to UNSET_ON_PURPOSE with the reason)")
    admin_env = raw_res["AdminApiFunction"]["Properties"]["Environment"]["Variables"]
    check({"PROVISIONER_ADMIN_JWT_ISSUER", "PROVISIONER_ADMIN_JWT_AUDIENCE", "PROVISIONER_ADMIN_SIGN_IN_DOMAIN"}
          <= set(admin_env), "the admin API is told the JWT issuer, the audience and the hosted sign-in domain")

    # --- The dashboard's sign-in: a public client, code flow with PKCE --------------------
    client = raw_res["AdminUserPoolClient"]["Properties"]
    signing_in = {k: resolve(v, "HasAdminDashboardUrl", True) for k, v in client.items()}
    check(client.get("GenerateSecret") is False, "the dashboard's app client has no secret (PKCE)")
    check(signing_in.get("AllowedOAuthFlows") == ["code"] and signing_in.get("AllowedOAuthFlowsUserPoolClient") is True,
          f"the dashboard signs in with the authorization code flow: {signing_in.get('AllowedOAuthFlows')}")
    check(sorted(signing_in.get("AllowedOAuthScopes", [])) == ["email", "openid", "profile"],
          f"scopes openid email profile: {signing_in.get('AllowedOAuthScopes')}")
    for urls in ("CallbackURLs", "LogoutURLs"):
        check(signing_in.get(urls) == [{"Fn::Sub": "${AdminDashboardUrl}/"}],
              f"{urls} is the dashboard's URL + / (AdminDashboardUrl): {signing_in.get(urls)}")

    # --- Functions and least privilege -------------------------------------------------
    binaries = lambda_binaries()
    resource_types = iam_resource_types()
    admin_by_default = raw["Parameters"].get(ADMIN_PARAMETER, {}).get("Default") != "false"
    for logical, binary in FUNCTIONS.items():
        props = raw_res[logical]["Properties"]
        check(props["CodeUri"] == f"../target/lambda/{binary}/", f"{logical} CodeUri {props['CodeUri']}")
        if binary not in binaries:
            missing = f"{logical}: lambdas/Cargo.toml declares no [[bin]] {binary!r} (it has {sorted(binaries)})"
            if raw_res[logical].get("Condition") == ADMIN_CONDITION:
                # Deployable only with EnableAdminApi=false: say so on every run, and fail
                # once the default would deploy the missing binary.
                admin = f"{missing}: {ADMIN_PARAMETER} must stay false until lambdas/ declares {binary}"
                (failures if admin_by_default else notices).append(admin)
            else:
                failures.append(missing)
        for statement in statements(res, f"{logical}Role"):
            actions = as_list(statement["Action"])
            check(not any("*" in a for a in actions), f"{logical}: no wildcard action in {actions}")
            if "*" in as_list(statement["Resource"]):
                scoped = [a for a in actions if resource_types.get(a.lower(), {"?"})]
                check(not scoped, f"{logical}: Resource * only for actions without resource types, not {scoped}")
                check("Condition" in statement, f"{logical}: a Resource * statement has a condition")
    for logical, tables_queried in INDEX_QUERIES.items():
        queryable = {str(r.get("Fn::Sub", r) if isinstance(r, dict) else r)
                     for s in statements(res, f"{logical}Role") if "dynamodb:Query" in as_list(s["Action"])
                     for r in as_list(s["Resource"])}
        for table in sorted(tables_queried):
            index = f"table/${{TablePrefix}}{table}/index/"
            check(any(r.endswith(index + INDEXES[table][0]) or r.endswith(index + "*") for r in queryable),
                  f"{logical}: dynamodb:Query on {table}/index/{INDEXES[table][0]} (it queries that index)")
    authorizer = [a for s in statements(res, "AuthorizerFunctionRole") for a in as_list(s["Action"])]
    check(sorted(authorizer) == ["dynamodb:GetItem", "dynamodb:PutItem"],
          f"the authorizer reads devices and writes audit only: {authorizer}")
    for logical in FUNCTIONS:
        for statement in statements(res, f"{logical}Role"):
            if "acm-pca:IssueCertificate" in as_list(statement["Action"]):
                check("acm-pca:TemplateArn" in json.dumps(statement.get("Condition", {})),
                      f"{logical}: IssueCertificate only with a named template")
        group = raw_res.get(logical.replace("Function", "LogGroup"), {})
        check(group.get("Properties", {}).get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{logical}}}"}
              and group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"},
              f"{logical} has its log group with the retention of LogRetentionDays")

    # --- The scheduled maintenance ---------------------------------------------------------
    maintenance = raw_res["MaintenanceFunction"]
    props = maintenance["Properties"]
    check("Condition" not in maintenance, "the maintenance runs with or without the admin API")
    check(props.get("ReservedConcurrentExecutions") == 1,
          f"never two maintenance runs at once (reserved concurrency 1): {props.get('ReservedConcurrentExecutions')}")
    invoke = props.get("EventInvokeConfig", {})
    check(invoke.get("MaximumRetryAttempts") == 0 and invoke.get("MaximumEventAgeInSeconds", 999) <= 60,
          f"a throttled or failed maintenance run is not retried (the next minute's is): {invoke}")
    timeout = maintenance_timeout()
    check(timeout is not None and props.get("Timeout") == timeout,
          f"the maintenance timeout {props.get('Timeout')} is the one its budget is planned for "
          f"(lambdas/src/maintenance.rs FUNCTION_TIMEOUT_SECS = {timeout})")
    rules = [r for r in res.values() if r["Type"] == "AWS::Events::Rule"
             and any(t.get("Arn") == {"Fn::GetAtt": ["MaintenanceFunction", "Arn"]}
                     for t in r["Properties"].get("Targets", []))]
    check(len(rules) == 1 and rules[0]["Properties"].get("ScheduleExpression") == MAINTENANCE_SCHEDULE
          and rules[0]["Properties"].get("State") == "ENABLED",
          f"the maintenance runs on one enabled schedule, {MAINTENANCE_SCHEDULE}: "
          f"{[r['Properties'].get('ScheduleExpression') for r in rules]}")
    touched = {str(r) for s in statements(res, "MaintenanceFunctionRole") for r in as_list(s["Resource"])}
    check(not any(f"{table}\"" in r or f"{table}'" in r for r in touched for table in ("devices", "audit")),
          "the maintenance touches neither the devices nor the audit table")
    check(not any(a.startswith("s3:") for s in statements(res, "MaintenanceFunctionRole") for a in as_list(s["Action"])),
          "the maintenance has no S3 access")

    # --- No dependency cycle (cfn-lint misses those through SAM's generated resources) ---
    cycle = dependency_cycle(res)
    check(cycle is None, f"dependency cycle: {' -> '.join(cycle or [])} (CloudFormation refuses the stack)")

    # --- IoT policy ----------------------------------------------------------------------
    iot = raw_res["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    granted = {a: s["Resource"]["Fn::Sub"] for s in iot for a in as_list(s["Action"])}
    check(set(granted) == {"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"},
          f"the device policy grants exactly connect/publish/receive/subscribe: {sorted(granted)}")
    for action, resource in granted.items():
        check("${!iot:Connection.Thing.ThingName}" in resource, f"{action} is scoped to the device's thing")
    check(all(s.get("Condition") == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}} for s in iot),
          "every device policy statement requires the certificate's thing attached")

    # --- CloudFront ------------------------------------------------------------------------
    # The distribution with the admin API off and on (the default). Off, there is no
    # dashboard (nothing for it to talk to): the default behaviour is the device API, which
    # answers 404 JSON off its routes, never cached, and no root object is named.
    template_config = raw_res["Distribution"]["Properties"]["DistributionConfig"]
    configs = {enabled: resolve(template_config, ADMIN_CONDITION, enabled) for enabled in (False, True)}
    admin_only = ("Origins", "CacheBehaviors", "DefaultCacheBehavior")
    for enabled, config in configs.items():
        # An entry under another condition shows as itself, and fails the comparison.
        origins = sorted(str(o.get("Id", o)) for o in config["Origins"])
        paths = sorted(str(b.get("PathPattern", b)) for b in config["CacheBehaviors"])
        want_origins = ["admin-api", "device-api"] if enabled else ["device-api"]
        want_paths = ["/admin/api/*", "/certificates/*", "/new", "/ui/*"] if enabled else ["/certificates/*", "/new"]
        check(origins == want_origins, f"{ADMIN_PARAMETER}={str(enabled).lower()}: origins {origins}")
        check(paths == want_paths, f"{ADMIN_PARAMETER}={str(enabled).lower()}: behaviours {paths}")
        default = config.get("DefaultCacheBehavior", {})
        want_default = ("admin-api" if enabled else "device-api", CACHING_DISABLED, None)
        check((default.get("TargetOriginId"), default.get("CachePolicyId"), config.get("DefaultRootObject")) == want_default,
              f"{ADMIN_PARAMETER}={str(enabled).lower()}: the default behaviour (the dashboard's page, or the "
              f"device API's 404 without the admin API) is {want_default}: {default}, "
              f"DefaultRootObject {config.get('DefaultRootObject')}")
    check({k: v for k, v in configs[True].items() if k not in admin_only}
          == {k: v for k, v in configs[False].items() if k not in admin_only}
          and [o for o in configs[True]["Origins"] if o.get("Id") != "admin-api"] == configs[False]["Origins"]
          and [b for b in configs[True]["CacheBehaviors"] if b.get("PathPattern") not in ("/admin/api/*", "/ui/*")]
          == configs[False]["CacheBehaviors"],
          f"{ADMIN_PARAMETER} changes only the admin-api origin, its behaviours and the default behaviour")
    by_path = {b.get("PathPattern"): b for b in configs[True]["CacheBehaviors"]}
    admin_behaviour = by_path.get("/admin/api/*", {})
    check(admin_behaviour.get("TargetOriginId") == "admin-api" and admin_behaviour.get("CachePolicyId")
          == {"Ref": "AdminCachePolicy"}, f"/admin/api/* goes to the admin API with AdminCachePolicy: {admin_behaviour}")
    files = by_path.get("/ui/*", {})
    check(files.get("TargetOriginId") == "admin-api" and files.get("CachePolicyId") == CACHING_OPTIMIZED,
          f"/ui/* (content-hashed files) goes to the admin API, cached: {files}")
    config = configs[True]
    behaviours = {b.get("PathPattern"): b for b in config["CacheBehaviors"]}
    new = behaviours.get("/new", {})
    check(new.get("TargetOriginId") == "device-api", "/new goes to the device API")
    check(new.get("CachePolicyId") == CACHING_DISABLED, "/new is never cached")
    check(new.get("OriginRequestPolicyId") == ALL_VIEWER_EXCEPT_HOST,
          "/new forwards device-csr, Accept and the query string, not Host")
    check(new.get("LambdaFunctionAssociations", {}).get("Fn::If", [None])[0] == "HasEdgeFunction",
          "/new runs the edge verifier when EdgeFunctionVersionArn is set")
    for origin in config["Origins"]:
        if origin.get("Id") in ("device-api", "admin-api"):
            headers = {h["HeaderName"]: h["HeaderValue"] for h in origin.get("OriginCustomHeaders", [])}
            check(headers.get("x-origin-secret") == {"Ref": "OriginSecret"}, f"{origin['Id']} gets x-origin-secret")
    check(raw["Parameters"]["OriginSecret"].get("NoEcho") is True, "the origin secret is NoEcho")
    # The codes CloudFront caches by default (429 is never cached).
    uncached = {e["ErrorCode"] for e in config["CustomErrorResponses"] if e.get("ErrorCachingMinTTL") == 0}
    check(uncached == {400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504},
          f"no error answer is cached: {sorted(uncached)}")
    check(not any("ResponsePagePath" in e or "ResponseCode" in e for e in config["CustomErrorResponses"]),
          "error answers reach the client unchanged")

    # --- The latent-delivery bucket ---------------------------------------------------------
    # The only bucket: the dashboard is served by the admin-api function, not from S3.
    buckets = sorted(k for k, r in raw_res.items() if r["Type"] == "AWS::S3::Bucket")
    check(buckets == ["RetrievalBucket"], f"the only bucket is the retrieval bucket: {buckets}")
    bucket = raw_res["RetrievalBucket"]["Properties"]
    check(all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4,
          "the retrieval bucket blocks public access")
    check(bool(bucket.get("BucketEncryption")), "the retrieval bucket is encrypted")
    check(any(r.get("ExpirationInDays") == 1 for r in bucket["LifecycleConfiguration"]["Rules"]),
          "retrieval objects expire after a day")
    policy = raw_res["RetrievalBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    check(any(s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
              for s in policy), "the retrieval bucket refuses plain HTTP")
    check(env.get("PROVISIONER_RETRIEVAL_BUCKET") == {"Ref": "RetrievalBucket"}, "the functions are told the bucket")


def check_edge():
    raw, res = load("edge.yaml")
    props = raw["Resources"]["EdgeVerifierFunction"]["Properties"]
    check(props["CodeUri"] == "../edge/dist/edge.zip", f"edge CodeUri {props['CodeUri']}")
    check(props["Handler"] == "index.handler", "edge handler index.handler")
    check(props["Runtime"].startswith("nodejs"), "edge runtime is Node.js")
    check("AutoPublishAlias" in props, "the edge function publishes a version")
    check("Environment" not in props, "Lambda@Edge has no environment variables")
    trust = raw["Resources"]["EdgeVerifierRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    check(set(trust["Principal"]["Service"]) == {"lambda.amazonaws.com", "edgelambda.amazonaws.com"},
          "the edge role trusts lambda and edgelambda")
    check(any(r["Type"] == "AWS::Lambda::Version" for r in res.values()), "a numbered version exists")
    check(raw["Outputs"]["EdgeFunctionVersionArn"]["Value"] == {"Ref": "EdgeVerifierFunction.Version"},
          "the output is the version ARN")


check_main()
check_edge()
for notice in notices:
    print(f"infra check note: {notice}")
if failures:
    print("\n".join(f"infra check failed: {f}" for f in failures))
    sys.exit(1)
print("infra checks: template.yaml and edge.yaml deploy the service's contract")
