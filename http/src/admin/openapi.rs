//! The OpenAPI 3.1 document of the admin API, served behind the token at
//! `GET /admin/api/openapi.json`: the helpers that write an operation here, the routes in
//! [`paths`], the schemas and shared answers in [`components`]. It is written by hand,
//! beside the handlers it describes; `GET openapi.json` in the tests checks that every
//! route is in it.

use axum::Json;
use serde_json::{json, Value};

use super::API_PREFIX;

mod components;
mod paths;

/// `GET openapi.json`: the document.
pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// A reference to a schema of the document's components.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON answer with a schema.
fn answer(description: &str, schema_name: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema(schema_name) } }
    })
}

/// An error answer: `{error, message}` with the codes it may carry.
fn refusal(description: &str, codes: &[&str]) -> Value {
    json!({
        "description": format!("{description} (error: {})", codes.join(", ")),
        "content": { "application/json": { "schema": schema("Error") } }
    })
}

/// One operation: summary, parameters, answers; every one may also be 401, and
/// 503 when the registry is busy.
fn operation(id: &str, summary: &str, parameters: Value, mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert(
            "401".into(),
            json!({ "$ref": "#/components/responses/Unauthorized" }),
        );
        map.insert(
            "503".into(),
            refusal(
                "The registry is busy; retry after Retry-After seconds",
                &["registry_busy"],
            ),
        );
    }
    json!({
        "operationId": id,
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

/// The OpenAPI 3.1 description of every admin route (served, behind the token, at
/// `GET /admin/api/openapi.json`).
pub fn openapi_document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Provisioner admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Devices, certificates, the issuing CA, the audit log, issuance statistics and (on AWS) regional registrations of a provisioner. Every route needs `Authorization: Bearer TOKEN`: the admin token locally (`provisioner admin token` prints it), a Cognito ID token on AWS. Errors are `{error, message}`: a stable code and what to fix."
        },
        "servers": [{ "url": API_PREFIX }],
        "security": [{ "adminToken": [] }],
        "paths": paths::paths(),
        "components": components::components(),
    })
}
