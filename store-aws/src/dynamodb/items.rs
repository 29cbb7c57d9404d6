//! The certificate item and the attribute readers every module of the registry (and the
//! admin reads, `crate::dynamodb_admin`) shares: a damaged item is
//! [`DynamoDbError::Corrupt`], naming the attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use provisioner_core::{CertificateRecord, CertificateStatus, DeviceKey, RevocationReason};

use super::{DynamoDbError, Item};

/// A number attribute.
pub(crate) fn number_value(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A new certificate: always ACTIVE, as SQLite records it.
pub(super) fn new_certificate_item(certificate: &CertificateRecord) -> Item {
    let c = certificate;
    HashMap::from([
        (
            "certificateId".to_owned(),
            AttributeValue::S(c.certificate_id.clone()),
        ),
        (
            "deviceId".to_owned(),
            AttributeValue::S(c.device_id.clone()),
        ),
        ("serial".to_owned(), AttributeValue::S(c.serial.clone())),
        ("issuer".to_owned(), AttributeValue::S(c.issuer.clone())),
        (
            "publicKey".to_owned(),
            AttributeValue::S(c.public_key.canonical()),
        ),
        ("issuedAt".to_owned(), number_value(c.issued_at)),
        ("notBefore".to_owned(), number_value(c.not_before)),
        ("notAfter".to_owned(), number_value(c.not_after)),
        (
            "status".to_owned(),
            AttributeValue::S(status_name(CertificateStatus::Active).into()),
        ),
        (
            "certificatePem".to_owned(),
            AttributeValue::S(c.certificate_pem.clone()),
        ),
    ])
}

/// Reads a certificate item.
pub(crate) fn certificate_from_item(item: &Item) -> Result<CertificateRecord, DynamoDbError> {
    let id = text(item, "certificateId").map_err(DynamoDbError::Corrupt)?;
    let read = || -> Result<CertificateRecord, String> {
        let status = status_from_name(&text(item, "status")?)?;
        let revoked = match (
            optional_number(item, "revokedAt")?,
            optional_text(item, "revocationReason")?,
        ) {
            (Some(at), Some(reason)) => Some((
                at,
                RevocationReason::from_name(&reason)
                    .ok_or_else(|| format!("unknown revocation reason {reason:?}"))?,
            )),
            (None, None) => None,
            _ => return Err("revokedAt and revocationReason go together".into()),
        };
        if (status == CertificateStatus::Revoked) != revoked.is_some() {
            return Err("a REVOKED certificate, and only one, has a revocation".into());
        }
        Ok(CertificateRecord {
            certificate_id: id.clone(),
            device_id: text(item, "deviceId")?,
            serial: text(item, "serial")?,
            issuer: text(item, "issuer")?,
            public_key: stored_key(&text(item, "publicKey")?)?,
            issued_at: number(item, "issuedAt")?,
            not_before: number(item, "notBefore")?,
            not_after: number(item, "notAfter")?,
            status,
            revoked,
            certificate_pem: text(item, "certificatePem")?,
        })
    };
    read().map_err(|e| corrupt_item("certificate", &id, &e))
}

/// The failure for a damaged item: its `kind`, its `id` and the `problem`.
pub(crate) fn corrupt_item(kind: &str, id: &str, problem: &str) -> DynamoDbError {
    DynamoDbError::Corrupt(format!("{kind} {id:?}: {problem}"))
}

/// The string attribute `name`, which must be there.
pub(crate) fn text(item: &Item, name: &str) -> Result<String, String> {
    optional_text(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

/// The string attribute `name`, if it is there.
pub(crate) fn optional_text(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(format!("attribute {name} is not a string")),
    }
}

/// The whole number attribute `name`, which must be there.
pub(crate) fn number(item: &Item, name: &str) -> Result<i64, String> {
    optional_number(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

/// The whole number attribute `name`, if it is there.
pub(crate) fn optional_number(item: &Item, name: &str) -> Result<Option<i64>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute {name} is not a whole number of seconds")),
        Some(_) => Err(format!("attribute {name} is not a number")),
    }
}

/// The boolean attribute `name`, which must be there.
pub(crate) fn boolean(item: &Item, name: &str) -> Result<bool, String> {
    match item.get(name) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        None => Err(format!("attribute {name} is missing")),
        Some(_) => Err(format!("attribute {name} is not a boolean")),
    }
}

/// A stored public key.
pub(crate) fn stored_key(text: &str) -> Result<DeviceKey, String> {
    DeviceKey::parse(text).map_err(|e| format!("the stored public key does not parse: {e}"))
}

/// The stored name of a certificate status.
pub(crate) fn status_name(status: CertificateStatus) -> &'static str {
    match status {
        CertificateStatus::Active => "ACTIVE",
        CertificateStatus::Inactive => "INACTIVE",
        CertificateStatus::Revoked => "REVOKED",
    }
}

fn status_from_name(name: &str) -> Result<CertificateStatus, String> {
    match name {
        "ACTIVE" => Ok(CertificateStatus::Active),
        "INACTIVE" => Ok(CertificateStatus::Inactive),
        "REVOKED" => Ok(CertificateStatus::Revoked),
        other => Err(format!("unknown certificate status {other:?}")),
    }
}
