#!/usr/bin/env bash
# Makes the compatibility fixtures of server/tests/it/compat.rs and
# server/tests/it/aws/compat.rs with an OLD build of `provisioner`: what it wrote (a data
# directory; DynamoDB tables and their raw items) and what it read back from them (the
# expected read-outs the new build must reproduce).
#
#   bash scripts/make-compat-fixtures.sh OLD_BINARY [OUT_DIR]
#
# OLD_BINARY: `provisioner` built at the commit the fixtures are named after, with
# `--features aws` for the DynamoDB half (without it only the local half is made). The
# fixtures in compat-75a88cd were made with a debug build of 75a88cd's tree:
#   git archive 75a88cd | tar -x -C OLD_SRC
#   (cd OLD_SRC && cargo build -p provisioner --features aws)   # OLD_SRC/target/debug/provisioner
# OUT_DIR: default server/tests/it/fixtures/compat-75a88cd (its local/ and aws/ replaced).
#
# Needs jq, sqlite3, curl, openssl, and for the DynamoDB half moto and boto3
# (scripts/install-tools.sh); it starts its own moto (scripts/moto.sh, a directory of its
# own) and stops it, and every serve it starts, by PID.
#
# Read-outs recorded, and what is left out because it moves with the clock:
# - local, before any `serve` touches the directory: `certs list --json`, `ca show`
#   (minus each CRL's `ageSecs` and `expiresInSecs`), `ca export-chain`; the thing registry
#   and each table's row count (sqlite3);
# - local, the admin API of the old `serve` (`limit=500`, one page): devices,
#   certificates, audit, one device's detail, the CA (minus each CRL's `thisUpdate`,
#   `nextUpdate`, `ageSecs`, `expiresInSecs`, `expiresSoon`: `serve` rewrites the CRLs at
#   start), the last rotation;
# - DynamoDB, the admin API of the old `serve --backend aws`: devices and certificates
#   (sorted by id: DynamoDB lists in table order), each device's detail and its audit
#   events (`?device=`: the unfiltered audit list only looks back 400 days). Not the CA:
#   it is an ACM Private CA of this script's moto, gone with it.
set -euo pipefail

OLD=$(realpath "${1:?usage: make-compat-fixtures.sh OLD_BINARY [OUT_DIR]}")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
OUT=$(realpath -m "${2:-$ROOT/server/tests/it/fixtures/compat-75a88cd}")
export PROVISIONER_LOG=warn
unset PROVISIONER_DATA_DIR PROVISIONER_BACKEND

WORK=$(mktemp -d)
SERVE_PID=
cleanup() {
  if [[ -n $SERVE_PID ]]; then kill "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_serve DIR ARGS... -> sets SERVE_PID and URL (serve runs in DIR)
start_serve() {
  local dir=$1
  shift
  (cd "$dir" && exec "$OLD" serve --listen 127.0.0.1:0 --dashboard-dir /nonexistent "$@") \
    >"$dir/serve.out" 2>"$dir/serve.err" &
  SERVE_PID=$!
  URL=
  for _ in $(seq 1 200); do
    URL=$(sed -n 's/^listening on //p' "$dir/serve.out")
    [[ -n $URL ]] && curl -sf "$URL/healthz" >/dev/null && return 0
    sleep 0.1
  done
  cat "$dir/serve.err" >&2
  echo "serve did not start" >&2
  exit 1
}

stop_serve() {
  kill "$SERVE_PID"
  wait "$SERVE_PID" || true
  SERVE_PID=
}

# admin PATH TOKEN -> the admin API's JSON, pretty and with sorted keys
admin() {
  curl -sf -H "Authorization: Bearer $2" "$URL/admin/api/$1" | jq -S .
}

# --- Local: a data directory -------------------------------------------------------
L=$WORK/local
mkdir -p "$L"
cd "$L"
"$OLD" ca init --data-dir data >/dev/null
"$OLD" device fleet --count 5 --out fleet >/dev/null
mapfile -t IDS < <(tail -n +2 fleet/manifest.csv | cut -d, -f1)
"$OLD" import fleet/manifest.csv --data-dir data --json >/dev/null

provision() { # ID -> the device's answer (JSON)
  "$OLD" device provision --url "$URL" --key "fleet/$1.key.pem" --device-id "$1" --out devices
}

# Every request renews, so the second request of device 0 supersedes its first certificate.
start_serve "$L" --data-dir data --renew-within-days 365
provision "${IDS[0]}" >/dev/null
CERT1=$(provision "${IDS[1]}" | jq -r .certificateId)
provision "${IDS[2]}" >/dev/null
provision "${IDS[0]}" >/dev/null
"$OLD" certs revoke "$CERT1" --reason keyCompromise --data-dir data >/dev/null
"$OLD" devices disable "${IDS[2]}" --data-dir data >/dev/null
# Refused (disabled): a deny in the audit log.
if provision "${IDS[2]}" >/dev/null; then echo "a disabled device was served" >&2; exit 1; fi
# A second CA: the first one's certificates are revoked (superseded).
"$OLD" ca rotate --data-dir data >/dev/null 2>&1
provision "${IDS[3]}" >/dev/null
provision "${IDS[0]}" >/dev/null
stop_serve
# Device 4 never provisions: the new build issues its first certificate.

rm -rf "$OUT/local"
mkdir -p "$OUT/local/expected"
cp -r data fleet "$OUT/local/"
rm -f "$OUT/local/fleet/"*.cert.pem "$OUT/local/fleet/"*.chain.pem

# Read-outs, on a scratch copy so the fixture stays as the old build left it.
S=$WORK/scratch
mkdir -p "$S"
cp -r "$OUT/local/data" "$S/data"
cd "$S"
E=$OUT/local/expected
"$OLD" certs list --json --data-dir data | jq -S . >"$E/certs-list.json"
"$OLD" ca show --data-dir data | jq -S '.crls |= map(del(.ageSecs, .expiresInSecs))' >"$E/ca-show.json"
"$OLD" ca export-chain --data-dir data >"$E/ca-export-chain.pem"
sqlite3 -json data/registry.sqlite3 \
  "SELECT t.name, t.policy, t.created_at AS createdAt,
          (SELECT json_group_array(certificate_id) FROM
             (SELECT certificate_id FROM thing_principals p WHERE p.thing = t.name
              ORDER BY attached_at, certificate_id)) AS principals
     FROM things t ORDER BY t.name" |
  jq -S 'map(.principals |= fromjson)' >"$E/things.json"
sqlite3 -json data/registry.sqlite3 \
  "SELECT (SELECT count(*) FROM devices) AS devices,
          (SELECT count(*) FROM certificates) AS certificates,
          (SELECT count(*) FROM audit) AS audit,
          (SELECT count(*) FROM cas) AS cas,
          (SELECT count(*) FROM things) AS things,
          (SELECT count(*) FROM thing_principals) AS thingPrincipals,
          (SELECT count(*) FROM rotation_jobs) AS rotationJobs,
          (SELECT count(*) FROM issuance_claims) AS issuanceClaims,
          (SELECT user_version FROM pragma_user_version) AS schemaVersion" |
  jq -S '.[0]' >"$E/counts.json"

start_serve "$S" --data-dir data
TOKEN=$(cat data/admin-token)
admin "devices?limit=500" "$TOKEN" >"$E/admin-devices.json"
admin "certificates?limit=500" "$TOKEN" >"$E/admin-certificates.json"
admin "audit?limit=500" "$TOKEN" >"$E/admin-audit.json"
admin "devices/${IDS[0]}" "$TOKEN" >"$E/admin-device.json"
admin "ca" "$TOKEN" |
  jq -S '.crls |= map(del(.thisUpdate, .nextUpdate, .ageSecs, .expiresInSecs, .expiresSoon))' \
    >"$E/admin-ca.json"
admin "ca/rotation" "$TOKEN" >"$E/admin-ca-rotation.json"
stop_serve
jq -n --arg a "${IDS[0]}" --arg b "${IDS[1]}" --arg c "${IDS[2]}" --arg d "${IDS[3]}" \
  --arg e "${IDS[4]}" \
  '{renewedTwice: $a, revokedKeyCompromise: $b, disabled: $c, afterRotation: $d,
    neverProvisioned: $e}' >"$E/devices.json"
echo "local fixture written to $OUT/local" >&2

# --- DynamoDB: tables written by serve --backend aws over moto ----------------------
# A build without AWS support says so before it calls anything (nothing listens on port 9).
if AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=none \
  AWS_SECRET_ACCESS_KEY=none timeout 60 "$OLD" aws ca show 2>&1 | grep -q 'built without'; then
  echo "$OLD has no AWS support: the DynamoDB fixture is left as it was" >&2
  exit 0
fi
A=$WORK/aws
mkdir -p "$A"
export MOTO_DIR=$WORK/moto
eval "$(bash "$ROOT/scripts/moto.sh" start)"
stop_moto() {
  if [[ -n $SERVE_PID ]]; then kill "$SERVE_PID" 2>/dev/null || true; fi
  bash "$ROOT/scripts/moto.sh" stop || true
  rm -rf "$WORK"
}
trap stop_moto EXIT
export PROVISIONER_TABLE_PREFIX=compat- PROVISIONER_REGIONS=us-east-1
export PROVISIONER_MQTT_ENDPOINT=iot.example:8883
unset PROVISIONER_PCA_CA_ARN
cd "$A"

# The issuing CA: ACM Private CA, its certificate signed by an offline root (openssl).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key \
  -out root.pem -days 3650 -subj "/CN=Compat Offline Root" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign\n' >ext.cnf
"$OLD" aws ca create --subject "CN=Compat Issuing CA,O=provisioner compat" --out ca.csr >/dev/null
openssl x509 -req -in ca.csr -CA root.pem -CAkey root.key -CAcreateserial -days 3650 \
  -extfile ext.cnf -out ca.pem 2>/dev/null
"$OLD" aws ca install ca.pem --chain root.pem >/dev/null
"$OLD" aws ca register >/dev/null

"$OLD" device fleet --count 4 --out fleet >/dev/null
mapfile -t IDS < <(tail -n +2 fleet/manifest.csv | cut -d, -f1)
start_serve "$A" --backend aws --create-tables --data-dir data --renew-within-days 365 \
  --maintenance-every-secs 0
"$OLD" import --backend aws fleet/manifest.csv --json >/dev/null
provision "${IDS[0]}" >/dev/null
provision "${IDS[1]}" >/dev/null
provision "${IDS[2]}" >/dev/null
provision "${IDS[0]}" >/dev/null
# A stolen device: disabled, its certificate revoked (keyCompromise); then refused.
"$OLD" devices disable "${IDS[1]}" --backend aws --revoke --json >/dev/null
if provision "${IDS[1]}" >/dev/null; then echo "a disabled device was served" >&2; exit 1; fi
# Device 3 never provisions.

rm -rf "$OUT/aws"
mkdir -p "$OUT/aws/expected"
E=$OUT/aws/expected
TOKEN=$(cat data/admin-token)
# DynamoDB lists come in the table's order: sorted here and in the test.
admin "devices?limit=500" "$TOKEN" | jq -S '.items |= sort_by(.deviceId)' >"$E/admin-devices.json"
admin "certificates?limit=500" "$TOKEN" |
  jq -S '.items |= sort_by(.certificateId)' >"$E/admin-certificates.json"
for i in 0 1 2 3; do
  admin "devices/${IDS[$i]}" "$TOKEN" >"$E/admin-device-$i.json"
  admin "audit?limit=500&device=${IDS[$i]}" "$TOKEN" >"$E/admin-audit-$i.json"
done
stop_serve
jq -n --arg a "${IDS[0]}" --arg b "${IDS[1]}" --arg c "${IDS[2]}" --arg d "${IDS[3]}" \
  '[$a, $b, $c, $d]' >"$E/devices.json"

# The tables as the old build created them, and every item in them (DynamoDB JSON).
"$PROVISIONER_CACHE/venv/bin/python" - "$PROVISIONER_TABLE_PREFIX" >"$OUT/aws/tables.json" <<'PY'
import json, os, sys, boto3
prefix = sys.argv[1]
db = boto3.client(
    "dynamodb", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"]
)
tables = {}
for name in sorted(db.list_tables()["TableNames"]):
    if not name.startswith(prefix):
        continue
    described = db.describe_table(TableName=name)["Table"]
    schema = {
        "KeySchema": described["KeySchema"],
        "AttributeDefinitions": sorted(
            described["AttributeDefinitions"], key=lambda a: a["AttributeName"]
        ),
        "GlobalSecondaryIndexes": [
            {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            for index in described.get("GlobalSecondaryIndexes", [])
        ],
    }
    items, start = [], {}
    while True:
        page = db.scan(TableName=name, ConsistentRead=True, **start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    key = [k["AttributeName"] for k in described["KeySchema"]]
    items.sort(key=lambda item: [json.dumps(item[k], sort_keys=True) for k in key])
    tables[name[len(prefix):]] = {"schema": schema, "items": items}
json.dump(tables, sys.stdout, indent=1, sort_keys=True)
print()
PY
echo "DynamoDB fixture written to $OUT/aws" >&2
