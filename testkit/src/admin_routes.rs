//! The admin API's routes, shared by the tests that go through every one of them
//! (`admin_api.rs`, `admin_jwt.rs`): `#[path = "support/admin_routes.rs"] mod admin_routes;`.

/// Every route: method, a concrete path, and the path as the OpenAPI document names it.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/admin/api/devices", "/devices"),
    ("GET", "/admin/api/devices/dev-1", "/devices/{deviceId}"),
    ("POST", "/admin/api/devices/import", "/devices/import"),
    (
        "POST",
        "/admin/api/devices/dev-1/disable",
        "/devices/{deviceId}/disable",
    ),
    (
        "POST",
        "/admin/api/devices/dev-1/enable",
        "/devices/{deviceId}/enable",
    ),
    ("GET", "/admin/api/certificates", "/certificates"),
    (
        "GET",
        "/admin/api/certificates/abc",
        "/certificates/{certificateId}",
    ),
    (
        "POST",
        "/admin/api/certificates/abc/revoke",
        "/certificates/{certificateId}/revoke",
    ),
    ("GET", "/admin/api/ca", "/ca"),
    ("GET", "/admin/api/ca/crl", "/ca/crl"),
    ("GET", "/admin/api/ca/rotation", "/ca/rotation"),
    ("GET", "/admin/api/registrations", "/registrations"),
    (
        "POST",
        "/admin/api/registrations/retry",
        "/registrations/retry",
    ),
    ("GET", "/admin/api/audit", "/audit"),
    ("GET", "/admin/api/stats/issuance", "/stats/issuance"),
    ("GET", "/admin/api/openapi.json", "/openapi.json"),
    // Last: it starts a rotation.
    ("POST", "/admin/api/ca/rotate", "/ca/rotate"),
];
