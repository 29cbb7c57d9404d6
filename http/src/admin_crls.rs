//! The CRLs in the admin API's `GET ca`: how each [`CrlRecord`] is shown (with its age
//! and time left at the moment of the answer, so the dashboard needs no clock of its
//! own), and its OpenAPI schema.

use provisioner_core::UnixTime;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::rfc3339;
use provisioner_app::fleet::CrlRecord;

/// How close to its nextUpdate a CRL is said to expire soon (`expiresSoon`), as the
/// dashboard warns: one day.
pub const EXPIRES_SOON_SECS: i64 = 24 * 60 * 60;

/// One CRL as `GET ca` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrlView {
    /// The issuing CA's id, or `root`.
    pub issuer: String,
    /// When it was signed (RFC 3339); null while not written.
    pub this_update: Option<String>,
    /// Seconds since then.
    pub age_secs: Option<i64>,
    /// When relying parties stop accepting it.
    pub next_update: Option<String>,
    /// Seconds until then (negative: expired).
    pub expires_in_secs: Option<i64>,
    /// Within [`EXPIRES_SOON_SECS`] of its nextUpdate, expired, or not written.
    pub expires_soon: bool,
    /// Certificates it lists.
    pub revoked: u64,
}

/// The views of `records` at `now`.
pub fn crl_views(records: Vec<CrlRecord>, now: UnixTime) -> Vec<CrlView> {
    records
        .into_iter()
        .map(|crl| {
            let expires_in_secs = crl.next_update.map(|at| at - now);
            CrlView {
                issuer: crl.issuer,
                this_update: crl.this_update.map(rfc3339),
                age_secs: crl.this_update.map(|at| now - at),
                next_update: crl.next_update.map(rfc3339),
                expires_in_secs,
                expires_soon: expires_in_secs.is_none_or(|left| left < EXPIRES_SOON_SECS),
                revoked: crl.revoked,
            }
        })
        .collect()
}

/// The OpenAPI schema of [`CrlView`].
pub fn crl_schema() -> Value {
    let nullable_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let nullable_secs = json!({ "type": ["integer", "null"] });
    json!({
        "type": "object",
        "required": ["issuer", "thisUpdate", "ageSecs", "nextUpdate", "expiresInSecs", "expiresSoon", "revoked"],
        "properties": {
            "issuer": { "type": "string", "description": "The issuing CA's id, or `root` (the root's CRL, when the root key is the service's own)." },
            "thisUpdate": nullable_time,
            "ageSecs": nullable_secs,
            "nextUpdate": nullable_time,
            "expiresInSecs": { "type": ["integer", "null"], "description": "Seconds until nextUpdate at the time of the answer; negative once expired." },
            "expiresSoon": { "type": "boolean", "description": "Within a day of nextUpdate, past it, or not written: brokers refuse every client once it has passed." },
            "revoked": { "type": "integer", "minimum": 0 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_within_a_day_of_its_next_update_expires_soon_and_a_fresh_one_does_not() {
        let now = 1_800_000_000;
        let record = |issuer: &str, this: Option<i64>, next: Option<i64>| CrlRecord {
            issuer: issuer.into(),
            this_update: this,
            next_update: next,
            revoked: 2,
        };
        let views = crl_views(
            vec![
                record("fresh", Some(now - 60), Some(now + 7 * 86_400 - 60)),
                record("close", Some(now - 6 * 86_400), Some(now + 3_600)),
                record("unwritten", None, None),
            ],
            now,
        );
        assert_eq!(views[0].age_secs, Some(60));
        assert!(!views[0].expires_soon);
        assert_eq!(views[1].expires_in_secs, Some(3_600));
        assert!(views[1].expires_soon);
        assert!(views[2].expires_soon);
        assert_eq!(views[2].this_update, None);
    }
}
