//! The `paths` of the OpenAPI document: every admin route, its parameters and answers.

use provisioner_core::RevocationReason;
use serde_json::{json, Value};

use super::{answer, operation, path_parameter, query_parameter, refusal, schema};
use crate::admin::import::DEFAULT_MANIFEST_NAME;
use crate::admin::{
    DEFAULT_PAGE_SIZE, DEFAULT_STATS_HOURS, MAX_MANIFEST_BYTES, MAX_PAGE_SIZE, MAX_STATS_HOURS,
    RETRY_REGISTRATIONS_LIMIT,
};
use crate::api::PEM_MEDIA_TYPE;

/// Every route under `/admin/api`, by path.
pub(super) fn paths() -> Value {
    let cursor = query_parameter(
        "cursor",
        "The nextCursor of the previous page; omit for the first page.",
        json!({ "type": "string" }),
    );
    let limit = query_parameter(
        "limit",
        &format!("Items per page, 1 to {MAX_PAGE_SIZE}."),
        json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE }),
    );
    let device_id = path_parameter("deviceId", "The device id.");
    let certificate_id = path_parameter(
        "certificateId",
        "The certificate id: hex SHA-256 of its DER.",
    );
    let bad_query = |codes: &[&str]| refusal("A parameter is wrong; the message says which", codes);
    let string = json!({ "type": "string" });

    json!({
        "/devices": { "get": operation("listDevices", "List devices by id",
            json!([
                query_parameter("prefix", "Only ids starting with this.", string.clone()),
                query_parameter("status", "Only enabled or disabled devices.", json!({ "type": "string", "enum": ["enabled", "disabled"] })),
                cursor, limit
            ]),
            json!({
                "200": answer("A page of devices", "DevicePage"),
                "400": bad_query(&["invalid_status", "invalid_cursor", "invalid_limit", "invalid_query"])
            })) },
        "/devices/import": { "post": {
            "operationId": "importDevices",
            "summary": "Import a manufacturer manifest (CSV or JSON lines), all or nothing",
            "parameters": [
                query_parameter("format", "csv or jsonl; detected from the first character when omitted. Microchip manifests are refused: use `provisioner import --manifest-signer`.", json!({ "type": "string", "enum": ["csv", "jsonl"] })),
                query_parameter("dryRun", "Check and count, write nothing.", json!({ "type": "boolean", "default": false })),
                query_parameter("replace", "Replace the key of a known device listed with another key.", json!({ "type": "boolean", "default": false })),
                query_parameter("name", "The manifest's name, recorded as each device's sourceManifest.", json!({ "type": "string", "default": DEFAULT_MANIFEST_NAME }))
            ],
            "requestBody": {
                "required": true,
                "description": format!("The manifest file, at most {MAX_MANIFEST_BYTES} bytes."),
                "content": {
                    "text/csv": { "schema": { "type": "string" } },
                    "application/x-ndjson": { "schema": { "type": "string" } },
                    "application/octet-stream": { "schema": { "type": "string" } }
                }
            },
            "responses": {
                "200": answer("Imported (or, with dryRun, would import)", "ImportSummary"),
                "400": bad_query(&["empty_manifest", "invalid_format", "unsupported_manifest_format", "invalid_query", "invalid_body"]),
                "401": { "$ref": "#/components/responses/Unauthorized" },
                "413": refusal("The manifest is too large: use `provisioner import`", &["body_too_large"]),
                "422": answer("An invalid row or a refused key conflict: nothing written (error: import_refused)", "ImportRefused"),
                "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
            }
        } },
        "/devices/{deviceId}": { "get": operation("getDevice", "A device, its certificates (newest 100) and recent decisions (newest 50)",
            json!([device_id.clone()]),
            json!({
                "200": answer("The device", "DeviceDetails"),
                "404": refusal("No such device", &["unknown_device"])
            })) },
        "/devices/{deviceId}/disable": { "post": {
            "operationId": "disableDevice",
            "summary": "Disable a device: it is refused certificates; with {\"revoke\": true}, also revoke each of its ACTIVE certificates",
            "parameters": [device_id.clone()],
            "requestBody": {
                "required": false,
                "description": "Empty: disable only. {\"revoke\": true}: also revoke every ACTIVE certificate of the device, as POST certificates/{certificateId}/revoke does, with reason (default keyCompromise).",
                "content": { "application/json": { "schema": schema("DisableRequest") } }
            },
            "responses": {
                "200": answer("The device, disabled, and the certificates revoked", "DisabledDevice"),
                "400": refusal("The body is not {\"revoke\": BOOLEAN, \"reason\": NAME}", &["invalid_body", "invalid_reason", "invalid_path"]),
                "401": { "$ref": "#/components/responses/Unauthorized" },
                "404": refusal("No such device", &["unknown_device"]),
                "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
            }
        } },
        "/devices/{deviceId}/enable": { "post": operation("enableDevice", "Enable a device",
            json!([device_id]),
            json!({
                "200": answer("The device, enabled", "Device"),
                "404": refusal("No such device", &["unknown_device"])
            })) },
        "/certificates": { "get": operation("listCertificates", "List certificates, newest first",
            json!([
                query_parameter("status", "Only certificates in this status (any case).", json!({ "type": "string", "enum": ["active", "inactive", "revoked", "ACTIVE", "INACTIVE", "REVOKED"] })),
                query_parameter("device", "Only this device's.", string.clone()),
                query_parameter("issuer", "Only those issued by this CA id.", string.clone()),
                cursor, limit
            ]),
            json!({
                "200": answer("A page of certificates", "CertificatePage"),
                "400": bad_query(&["invalid_status", "invalid_cursor", "invalid_limit", "invalid_query"])
            })) },
        "/certificates/{certificateId}": { "get": operation("getCertificate", "A certificate, with its PEM",
            json!([certificate_id.clone()]),
            json!({
                "200": answer("The certificate", "CertificateDetails"),
                "404": refusal("No such certificate", &["unknown_certificate"])
            })) },
        "/certificates/{certificateId}/revoke": { "post": {
            "operationId": "revokeCertificate",
            "summary": "Revoke a certificate and regenerate the CRLs; revoking again changes nothing",
            "parameters": [certificate_id],
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": { "reason": { "type": "string", "enum": RevocationReason::ALL.iter().map(|r| r.name()).collect::<Vec<_>>() } }
                } } }
            },
            "responses": {
                "200": answer("Revoked", "Revoked"),
                "400": refusal("The body or the reason is wrong", &["invalid_reason", "invalid_body"]),
                "401": { "$ref": "#/components/responses/Unauthorized" },
                "404": refusal("No such certificate", &["unknown_certificate"]),
                "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
            }
        } },
        "/ca": { "get": operation("getCa", "The current issuing CA with its chain, and the previous ones with their states",
            json!([]),
            json!({
                "200": answer("The CA", "CaOverview"),
                "409": refusal("The CA is not set up, or waits for its certificate", &["ca_not_ready"])
            })) },
        "/ca/crl": { "get": operation("getCrl", "The current issuing CA's CRL, regenerated now (locally; on AWS ACM Private CA publishes it)",
            json!([]),
            json!({
                "200": { "description": "The CRL, PEM", "content": { PEM_MEDIA_TYPE: { "schema": { "type": "string" } } } },
                "404": refusal("On AWS: ACM Private CA publishes the CRL; the message says where, and what a relying party outside IoT Core must do (fetch it from S3 before its nextUpdate, or ask OCSP)", &["crl_published_by_pca"]),
                "409": refusal("The CA is not set up", &["ca_not_ready"])
            })) },
        "/ca/rotate": { "post": {
            "operationId": "rotateCa",
            "summary": "Start a CA rotation as a job: locally a new intermediate is created; on AWS the body names the installed ACM Private CA to rotate to. Every certificate of the old CA is then revoked",
            "requestBody": { "required": false, "content": { "application/json": { "schema": schema("RotateRequest") } } },
            "responses": {
                "202": {
                    "description": "Started; follow it at ca/rotation",
                    "headers": { "Location": { "schema": { "type": "string" } } },
                    "content": { "application/json": { "schema": schema("RotationStarted") } }
                },
                "400": refusal("The body is wrong for this backend", &["invalid_body", "missing_target_ca", "unexpected_target_ca", "invalid_ca_arn"]),
                "401": { "$ref": "#/components/responses/Unauthorized" },
                "409": refusal("A rotation is running, or this CA cannot rotate here", &["rotation_in_progress", "root_key_not_local", "ca_request_pending", "ca_not_ready"]),
                "503": refusal("The registry is busy; retry after Retry-After seconds", &["registry_busy"])
            }
        } },
        "/ca/rotation": { "get": operation("getRotation", "The progress of the latest CA rotation",
            json!([]),
            json!({
                "200": answer("The rotation", "Rotation"),
                "404": refusal("No rotation has run", &["no_rotation"])
            })) },
        "/registrations": { "get": operation("listRegistrations", "Regional IoT Core registrations not finished yet (PENDING or FAILED), oldest change first; always empty locally",
            json!([cursor.clone(), limit.clone()]),
            json!({
                "200": answer("A page of registrations", "RegistrationPage"),
                "400": bad_query(&["invalid_cursor", "invalid_limit", "invalid_query"])
            })) },
        "/registrations/retry": { "post": operation("retryRegistrations", &format!("Retry up to {RETRY_REGISTRATIONS_LIMIT} unfinished regional registrations now (a scheduled job does it every minute on AWS)"),
            json!([]),
            json!({ "200": answer("What was retried", "RetriedRegistrations") })) },
        "/audit": { "get": operation("listAudit", "The audit log of allow and deny decisions, newest first",
            json!([
                query_parameter("device", "Only this device's decisions.", string.clone()),
                cursor, limit
            ]),
            json!({
                "200": answer("A page of decisions", "AuditPage"),
                "400": bad_query(&["invalid_cursor", "invalid_limit", "invalid_query"])
            })) },
        "/stats/issuance": { "get": operation("issuanceStats", "Allow and deny decisions per hour, oldest first; the last bucket is the current hour",
            json!([query_parameter("hours", &format!("How many hours, 1 to {MAX_STATS_HOURS}."), json!({ "type": "integer", "minimum": 1, "maximum": MAX_STATS_HOURS, "default": DEFAULT_STATS_HOURS }))]),
            json!({
                "200": { "description": "One bucket per hour", "content": { "application/json": { "schema": { "type": "array", "items": schema("HourBucket") } } } },
                "400": bad_query(&["invalid_hours", "invalid_query"])
            })) },
        "/openapi.json": { "get": operation("openapi", "This document",
            json!([]),
            json!({ "200": { "description": "The OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } } })) }
    })
}
