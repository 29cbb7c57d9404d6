//! Certificates: `GET certificates` (a page, newest first), `GET certificates/{id}`
//! (with its PEM and regional registrations) and `POST certificates/{id}/revoke`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use provisioner_core::{CertificateRecord, CertificateStatus, RevocationReason};
use serde::{Deserialize, Serialize};

use super::error::{bad_request, unknown_certificate};
use super::input::{body, path, query};
use super::pagination::{decode_cursor, page, page_size, CursorKind, Page};
use super::registrations::RegistrationView;
use super::AdminContext;
use crate::api::{rfc3339, ApiError};
use provisioner_app::fleet::{CertificateQuery, RevokedCertificate};

/// A certificate as the admin API shows it (the `Certificate` schema; its PEM only in
/// the details).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertificateView {
    certificate_id: String,
    device_id: String,
    serial: String,
    issuer: String,
    public_key: String,
    issued_at: String,
    not_before: String,
    not_after: String,
    status: &'static str,
    revoked_at: Option<String>,
    revocation_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_pem: Option<String>,
}

/// The stored spelling of a certificate status.
fn status_name(status: CertificateStatus) -> &'static str {
    match status {
        CertificateStatus::Active => "ACTIVE",
        CertificateStatus::Inactive => "INACTIVE",
        CertificateStatus::Revoked => "REVOKED",
    }
}

impl CertificateView {
    pub(super) fn new(c: CertificateRecord, with_pem: bool) -> Self {
        Self {
            certificate_id: c.certificate_id,
            device_id: c.device_id,
            serial: c.serial,
            issuer: c.issuer,
            public_key: c.public_key.canonical(),
            issued_at: rfc3339(c.issued_at),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            status: status_name(c.status),
            revoked_at: c.revoked.map(|(at, _)| rfc3339(at)),
            revocation_reason: c.revoked.map(|(_, reason)| reason.name()),
            certificate_pem: with_pem.then_some(c.certificate_pem),
        }
    }
}

/// The query of `GET certificates`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateListQuery {
    status: Option<String>,
    device: Option<String>,
    issuer: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET certificates`: one page, newest first; `status`, `device` and `issuer` filter it.
pub(super) async fn list_certificates(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<CertificateListQuery>, QueryRejection>,
) -> Result<Json<Page<CertificateView>>, ApiError> {
    let q = query(parsed)?;
    let limit = page_size(q.limit.as_deref())?;
    let status = match q.status.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("") => None,
        Some("ACTIVE") => Some(CertificateStatus::Active),
        Some("INACTIVE") => Some(CertificateStatus::Inactive),
        Some("REVOKED") => Some(CertificateStatus::Revoked),
        Some(_) => {
            return Err(bad_request(
                "invalid_status",
                format!(
                    "status={:?} is not a certificate status: use active, inactive or revoked",
                    q.status.unwrap_or_default()
                ),
            ))
        }
    };
    let after = q
        .cursor
        .map(|c| decode_cursor(CursorKind::Certificates, &c))
        .transpose()?;
    let listed = context
        .fleet
        .certificates(CertificateQuery {
            device_id: q.device.filter(|d| !d.is_empty()),
            status,
            issuer: q.issuer.filter(|i| !i.is_empty()),
            after,
            limit,
        })
        .await?;
    Ok(Json(page(
        listed,
        |c| CertificateView::new(c, false),
        CursorKind::Certificates,
    )))
}

/// A certificate with its PEM and registrations (the `CertificateDetails` schema).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertificateDetails {
    #[serde(flatten)]
    certificate: CertificateView,
    registrations: Vec<RegistrationView>,
}

/// `GET certificates/{id}`: the certificate with its PEM and regional registrations.
pub(super) async fn certificate(
    State(context): State<Arc<AdminContext>>,
    certificate_id: Result<Path<String>, PathRejection>,
) -> Result<Json<CertificateDetails>, ApiError> {
    let certificate_id = path(certificate_id)?;
    let record = context
        .fleet
        .certificate(&certificate_id)
        .await?
        .ok_or_else(|| unknown_certificate(&certificate_id))?;
    let registrations = context.fleet.registrations_of(&certificate_id).await?;
    Ok(Json(CertificateDetails {
        certificate: CertificateView::new(record, true),
        registrations: registrations
            .into_iter()
            .map(RegistrationView::from)
            .collect(),
    }))
}

/// The body of `POST certificates/{id}/revoke`.
#[derive(Deserialize)]
struct RevokeBody {
    reason: Option<String>,
}

/// A revocation's outcome (the `Revoked` schema), also one item of a disabled device's
/// `revokedCertificates`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RevokedView {
    certificate: CertificateView,
    already_revoked: bool,
    /// The revocation reached everything beyond the registry (the CRLs locally; ACM
    /// Private CA and IoT Core on AWS).
    propagated: bool,
    /// Locally: the CRLs were written again (`propagated`); always false on AWS, where
    /// ACM Private CA publishes the CRL itself.
    crl_regenerated: bool,
}

impl From<RevokedCertificate> for RevokedView {
    fn from(revoked: RevokedCertificate) -> Self {
        Self {
            certificate: CertificateView::new(revoked.certificate, false),
            already_revoked: revoked.already_revoked,
            propagated: revoked.propagated,
            crl_regenerated: revoked.crl_regenerated,
        }
    }
}

/// The RFC 5280 reasons, as a refusal lists them.
pub(super) fn reason_names() -> String {
    RevocationReason::ALL
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST certificates/{id}/revoke` with `{"reason": NAME}`: revoked everywhere the
/// backend makes a revocation known; revoking again changes nothing.
pub(super) async fn revoke_certificate(
    State(context): State<Arc<AdminContext>>,
    certificate_id: Result<Path<String>, PathRejection>,
    read: Result<Bytes, BytesRejection>,
) -> Result<Json<RevokedView>, ApiError> {
    let certificate_id = path(certificate_id)?;
    let bytes = body(read, "body", 2 * 1024 * 1024)?;
    let no_reason = || {
        bad_request(
            "invalid_reason",
            format!(
                "send JSON {{\"reason\": NAME}} with an RFC 5280 reason: {}",
                reason_names()
            ),
        )
    };
    let parsed: RevokeBody = serde_json::from_slice(&bytes).map_err(|_| no_reason())?;
    let name = parsed.reason.ok_or_else(no_reason)?;
    let reason = RevocationReason::from_name(&name).ok_or_else(|| {
        bad_request(
            "invalid_reason",
            format!(
                "{name:?} is not an RFC 5280 revocation reason; use one of: {}",
                reason_names()
            ),
        )
    })?;
    let revoked = context
        .fleet
        .revoke(&certificate_id, reason, context.now())
        .await?;
    Ok(Json(revoked.into()))
}
