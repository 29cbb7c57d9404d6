//! The `components` of the OpenAPI document: the bearer scheme, the shared 401 answer,
//! and the schemas of every body the admin API answers or takes.

use provisioner_core::RevocationReason;
use serde_json::{json, Value};

use super::schema;

/// The security scheme, the shared answers and the schemas.
pub(super) fn components() -> Value {
    let nullable = |t: &str| json!({ "type": [t, "null"] });
    let string = json!({ "type": "string" });
    let time = json!({ "type": "string", "format": "date-time" });
    let nullable_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let page_of = |item: &str| {
        json!({
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": { "type": "array", "items": schema(item) },
                "nextCursor": { "type": ["string", "null"], "description": "Pass as cursor for the next page; null on the last page." }
            }
        })
    };

    json!({
        "securitySchemes": {
            "adminToken": { "type": "http", "scheme": "bearer", "description": "The admin token: `provisioner admin token` prints it, `--rotate` replaces it." }
        },
        "responses": {
            "Unauthorized": {
                "description": "No token, another scheme, or a wrong token (error: unauthorized)",
                "headers": { "WWW-Authenticate": { "schema": { "type": "string" } } },
                "content": { "application/json": { "schema": schema("Error") } }
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": { "type": "string", "description": "A stable snake_case code." },
                    "message": { "type": "string", "description": "What to fix." }
                }
            },
            "Device": {
                "type": "object",
                "required": ["deviceId", "publicKey", "keyFingerprint", "enabled", "sourceManifest", "importedAt"],
                "properties": {
                    "deviceId": string.clone(),
                    "publicKey": { "type": "string", "description": "Base64 of the SPKI DER." },
                    "keyFingerprint": { "type": "string", "description": "Hex SHA-256 of the SPKI DER." },
                    "enabled": { "type": "boolean" },
                    "sourceManifest": nullable("string"),
                    "importedAt": time.clone()
                }
            },
            "DeviceDetails": {
                "allOf": [schema("Device"), {
                    "type": "object",
                    "required": ["certificates", "recentAudit"],
                    "properties": {
                        "certificates": { "type": "array", "items": schema("Certificate") },
                        "recentAudit": { "type": "array", "items": schema("AuditEvent") }
                    }
                }]
            },
            "DevicePage": page_of("Device"),
            "DisableRequest": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "revoke": { "type": "boolean", "default": false, "description": "Also revoke each ACTIVE certificate of the device." },
                    "reason": { "type": "string", "enum": RevocationReason::ALL.iter().map(|r| r.name()).collect::<Vec<_>>(), "default": "keyCompromise", "description": "The RFC 5280 reason; only with revoke." }
                }
            },
            "DisabledDevice": {
                "allOf": [schema("Device"), {
                    "type": "object",
                    "required": ["revokedCertificates"],
                    "properties": {
                        "revokedCertificates": { "type": "array", "items": schema("Revoked"), "description": "The certificates this call revoked (empty without revoke)." }
                    }
                }]
            },
            "Certificate": {
                "type": "object",
                "required": ["certificateId", "deviceId", "serial", "issuer", "publicKey", "issuedAt", "notBefore", "notAfter", "status", "revokedAt", "revocationReason"],
                "properties": {
                    "certificateId": string.clone(),
                    "deviceId": string.clone(),
                    "serial": { "type": "string", "description": "Hex, no separators." },
                    "issuer": { "type": "string", "description": "The issuing CA's id." },
                    "publicKey": string.clone(),
                    "issuedAt": time.clone(),
                    "notBefore": time.clone(),
                    "notAfter": time.clone(),
                    "status": { "type": "string", "enum": ["ACTIVE", "INACTIVE", "REVOKED"] },
                    "revokedAt": nullable_time.clone(),
                    "revocationReason": nullable("string")
                }
            },
            "CertificateDetails": {
                "allOf": [schema("Certificate"), {
                    "type": "object",
                    "required": ["certificatePem", "registrations"],
                    "properties": {
                        "certificatePem": string.clone(),
                        "registrations": { "type": "array", "items": schema("Registration"), "description": "Its registration with IoT Core in each region (AWS; empty locally)." }
                    }
                }]
            },
            "CertificatePage": page_of("Certificate"),
            "Revoked": {
                "type": "object",
                "required": ["certificate", "alreadyRevoked", "propagated", "crlRegenerated"],
                "properties": {
                    "certificate": schema("Certificate"),
                    "alreadyRevoked": { "type": "boolean", "description": "Revoked before: nothing changed." },
                    "propagated": { "type": "boolean", "description": "The revocation reached everything beyond the registry: the CRLs locally; ACM Private CA and IoT Core in every region on AWS. False: the revocation stands in the registry; the failure is logged." },
                    "crlRegenerated": { "type": "boolean", "description": "False when the CRLs could not be written now (the revocation stands; GET ca/crl writes them)." }
                }
            },
            "AuditEvent": {
                "type": "object",
                "required": ["id", "at", "deviceId", "decision", "code", "remoteAddr", "fingerprint", "certificateId"],
                "properties": {
                    "id": { "type": "string", "description": "Opaque; unique in the log." },
                    "at": time.clone(),
                    "deviceId": nullable("string"),
                    "decision": { "type": "string", "enum": ["allow", "deny", "unknown"] },
                    "code": { "type": "string", "description": "The refusal's code (deny), or what was done (allow)." },
                    "remoteAddr": nullable("string"),
                    "fingerprint": nullable("string"),
                    "certificateId": nullable("string")
                }
            },
            "AuditPage": page_of("AuditEvent"),
            "ImportError": {
                "type": "object",
                "required": ["file", "line", "deviceId", "error", "message"],
                "properties": {
                    "file": string.clone(),
                    "line": { "type": "integer", "description": "1-based; 0 for the whole file." },
                    "deviceId": nullable("string"),
                    "error": string.clone(),
                    "message": string.clone()
                }
            },
            "ImportSummary": {
                "type": "object",
                "required": ["imported", "unchanged", "replaced", "conflicts", "invalid", "errors", "written", "atomic"],
                "properties": {
                    "imported": { "type": "integer" },
                    "unchanged": { "type": "integer" },
                    "replaced": { "type": "integer" },
                    "conflicts": { "type": "integer" },
                    "invalid": { "type": "integer" },
                    "errors": { "type": "array", "items": schema("ImportError"), "description": "The first 100 refused rows." },
                    "written": { "type": "boolean" },
                    "atomic": { "type": "boolean", "description": "Whether the writes were all or nothing (true for the local registry)." }
                }
            },
            "ImportRefused": {
                "type": "object",
                "required": ["error", "message", "summary"],
                "properties": {
                    "error": { "type": "string", "const": "import_refused" },
                    "message": string.clone(),
                    "summary": schema("ImportSummary")
                }
            },
            "Ca": {
                "type": "object",
                "required": ["id", "arn", "subject", "serial", "certificateId", "notBefore", "notAfter", "state", "revokedAt"],
                "properties": {
                    "id": string.clone(),
                    "arn": { "type": ["string", "null"], "description": "The ACM Private CA's ARN (AWS)." },
                    "subject": { "type": "string", "description": "RFC 4514." },
                    "serial": string.clone(),
                    "certificateId": string.clone(),
                    "notBefore": time.clone(),
                    "notAfter": time.clone(),
                    "state": { "type": "string", "enum": ["current", "previous", "revoked"] },
                    "revokedAt": nullable_time.clone(),
                    "chainPem": { "type": "string", "description": "The current CA only: the intermediate, then the root." }
                }
            },
            "CaOverview": {
                "type": "object",
                "required": ["backend", "current", "previous", "pendingCsr", "canCreateNextCa", "rootKeyLocal", "crls"],
                "properties": {
                    "backend": { "type": "string", "enum": ["local", "aws"] },
                    "canCreateNextCa": { "type": "boolean", "description": "POST ca/rotate creates the next CA itself (locally, with the root key here); otherwise it names one." },
                    "current": { "oneOf": [schema("Ca"), { "type": "null" }] },
                    "previous": { "type": "array", "items": schema("Ca") },
                    "pendingCsr": { "type": ["string", "null"], "description": "The id (local) or ARN (AWS) of an issuing CA that waits for its certificate." },
                    "rootKeyLocal": { "type": "boolean", "description": "The same as canCreateNextCa." },
                    "crls": { "type": "array", "items": schema("Crl"), "description": "The CRLs the service publishes (locally each issuing CA's, then the root's when its key is here; empty on AWS, where ACM Private CA publishes them)." }
                }
            },
            "Crl": crate::admin_crls::crl_schema(),
            "RotateRequest": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "to": { "type": "string", "description": "AWS only: the ARN of the installed ACM Private CA to rotate to (`provisioner aws ca create` and `install` make it)." }
                }
            },
            "RotationStarted": {
                "allOf": [schema("Rotation"), {
                    "type": "object",
                    "required": ["statusUrl"],
                    "properties": { "statusUrl": string.clone() }
                }]
            },
            "Registration": {
                "type": "object",
                "required": ["certificateId", "region", "deviceId", "status", "attempts", "lastError", "updatedAt"],
                "properties": {
                    "certificateId": string.clone(),
                    "region": string.clone(),
                    "deviceId": string.clone(),
                    "status": { "type": "string", "enum": ["PENDING", "DONE", "FAILED"] },
                    "attempts": { "type": "integer" },
                    "lastError": nullable("string"),
                    "updatedAt": time.clone()
                }
            },
            "RegistrationPage": page_of("Registration"),
            "RetriedRegistrations": {
                "type": "object",
                "required": ["attempted", "done", "failed", "inFlight", "more"],
                "properties": {
                    "attempted": { "type": "integer" },
                    "done": { "type": "integer" },
                    "failed": { "type": "integer" },
                    "inFlight": { "type": "integer", "description": "Pending ones a request may still be finishing: left for later." },
                    "more": { "type": "boolean", "description": "More were due than one call retries." }
                }
            },
            "Rotation": {
                "type": "object",
                "required": ["jobId", "state", "step", "finished", "startedAt", "finishedAt", "oldCa", "newCa", "revoked", "total", "resumed", "error", "adminAction"],
                "properties": {
                    "jobId": string.clone(),
                    "state": { "type": "string", "enum": ["running", "finished", "failed", "interrupted"], "description": "interrupted: found unfinished in the registry; POST ca/rotate resumes it. On AWS a failed rotation is retried by the scheduled maintenance." },
                    "step": { "type": ["string", "null"], "enum": ["registering", "switching", "revoking", "deactivating", "done", "failed", null] },
                    "total": { "type": ["integer", "null"], "description": "Certificates to revoke, when known." },
                    "adminAction": { "type": ["string", "null"], "description": "What the PKI admin must still do by hand (AWS: revoke the old CA at a parent outside this account)." },
                    "finished": { "type": "boolean" },
                    "startedAt": time.clone(),
                    "finishedAt": nullable_time,
                    "oldCa": nullable("string"),
                    "newCa": nullable("string"),
                    "revoked": { "type": "integer", "description": "Certificates revoked by the cascade so far." },
                    "resumed": { "type": "boolean" },
                    "error": nullable("string")
                }
            },
            "HourBucket": {
                "type": "object",
                "required": ["hour", "allow", "deny"],
                "properties": {
                    "hour": time,
                    "allow": { "type": "integer" },
                    "deny": { "type": "integer" }
                }
            }
        }
    })
}
