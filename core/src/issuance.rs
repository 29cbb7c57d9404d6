//! The issuance profile and the decisions taken before anything is signed: whether a
//! request gets the device's current certificate back or a new one (the re-issue policy),
//! and whether the device has been issued too many certificates lately (the rate limit).
//!
//! Time is plain Unix seconds here; the adapters format it as RFC 3339.

use crate::csr::CsrPolicy;
use crate::error::Refusal;
use crate::key::DeviceKey;

/// Seconds since the Unix epoch, UTC.
pub type UnixTime = i64;

const DAY: i64 = 24 * 60 * 60;

/// What every certificate the service issues looks like, and when it is renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceProfile {
    /// Which CSRs are accepted.
    pub csr: CsrPolicy,
    /// Certificate lifetime in seconds (from the request time, not the backdated start).
    pub validity_secs: i64,
    /// A request inside this many seconds of the current certificate's expiry gets a new one.
    /// A value at or above `validity_secs` makes every request issue.
    pub renew_within_secs: i64,
    /// How far `notBefore` is set before the request time, for devices whose clocks lag.
    pub backdate_secs: i64,
}

impl Default for IssuanceProfile {
    /// 365 days of validity, renewal in the last 30 days, `notBefore` 5 minutes early.
    fn default() -> Self {
        Self {
            csr: CsrPolicy::default(),
            validity_secs: 365 * DAY,
            renew_within_secs: 30 * DAY,
            backdate_secs: 5 * 60,
        }
    }
}

impl IssuanceProfile {
    /// The validity window of a certificate issued at `now`: `(notBefore, notAfter)`.
    pub fn validity_at(&self, now: UnixTime) -> (UnixTime, UnixTime) {
        (now - self.backdate_secs, now + self.validity_secs)
    }
}

/// A certificate's state in the registry (the states IoT Core uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Valid for connections.
    Active,
    /// Registered but not (yet) usable.
    Inactive,
    /// Revoked: refused at the broker and listed on the CRL.
    Revoked,
}

/// What the re-issue policy needs to know of a certificate already issued to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCertificate {
    /// Hex SHA-256 of the certificate DER.
    pub certificate_id: String,
    /// The certified key.
    pub public_key: DeviceKey,
    /// Its registry status.
    pub status: CertificateStatus,
    /// End of validity.
    pub not_after: UnixTime,
}

/// The re-issue policy's answer for one verified, authorised request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReissueDecision {
    /// Return this certificate unchanged: a lost response or a wiped flash heals, and a
    /// replayed CSR changes nothing.
    ReturnExisting {
        /// The certificate to return.
        certificate_id: String,
    },
    /// Issue a new certificate; once it is recorded, revoke these (reason superseded).
    IssueNew {
        /// The device's ACTIVE certificates the new one replaces.
        supersede: Vec<String>,
    },
}

impl IssuanceProfile {
    /// The re-issue policy (the README's device contract).
    ///
    /// A device holding an ACTIVE, unexpired certificate for the requested key, outside
    /// the renewal window, gets it back (the one that lasts longest, if several). Otherwise
    /// a new certificate is issued and every ACTIVE certificate of the device, whatever its
    /// key, is superseded.
    pub fn reissue_decision(
        &self,
        requested_key: &DeviceKey,
        held: &[HeldCertificate],
        now: UnixTime,
    ) -> ReissueDecision {
        let current = held
            .iter()
            .filter(|c| c.status == CertificateStatus::Active && &c.public_key == requested_key)
            .filter(|c| now < c.not_after)
            .max_by_key(|c| c.not_after);
        match current {
            Some(c) if now < c.not_after - self.renew_within_secs => {
                ReissueDecision::ReturnExisting {
                    certificate_id: c.certificate_id.clone(),
                }
            }
            _ => ReissueDecision::IssueNew {
                supersede: held
                    .iter()
                    .filter(|c| c.status == CertificateStatus::Active)
                    .map(|c| c.certificate_id.clone())
                    .collect(),
            },
        }
    }
}

/// New certificates per device per hour; 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuanceRateLimit {
    /// Issuances allowed per device in any sliding hour.
    pub per_hour: u32,
}

impl IssuanceRateLimit {
    /// The sliding window the limit counts over.
    pub const WINDOW_SECS: i64 = 60 * 60;

    /// Checks whether a device that was issued certificates at `issued_at` may get another.
    ///
    /// # Errors
    /// [`Refusal::RateLimited`] with the seconds until the oldest issuance in the window
    /// leaves it.
    pub fn check(
        &self,
        device_id: &str,
        issued_at: &[UnixTime],
        now: UnixTime,
    ) -> Result<(), Refusal> {
        if self.per_hour == 0 {
            return Ok(());
        }
        let mut in_window: Vec<UnixTime> = issued_at
            .iter()
            .copied()
            .filter(|t| now - t < Self::WINDOW_SECS)
            .collect();
        if in_window.len() < self.per_hour as usize {
            return Ok(());
        }
        in_window.sort_unstable();
        // The request may go through once enough of the window's issuances have aged out.
        let frees_a_slot = in_window[in_window.len() - self.per_hour as usize];
        Err(Refusal::RateLimited {
            device_id: device_id.to_owned(),
            retry_after_secs: (frees_a_slot + Self::WINDOW_SECS - now).max(1) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Curve;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    fn key(scalar: u64) -> DeviceKey {
        let mut bytes = [0u8; 32];
        bytes[24..].copy_from_slice(&scalar.to_be_bytes());
        let secret = p256::SecretKey::from_slice(&bytes).unwrap();
        let point = secret.public_key().to_encoded_point(false);
        DeviceKey::from_sec1(Curve::P256, point.as_bytes()).unwrap()
    }

    fn held(
        id: &str,
        key: DeviceKey,
        status: CertificateStatus,
        not_after: UnixTime,
    ) -> HeldCertificate {
        HeldCertificate {
            certificate_id: id.into(),
            public_key: key,
            status,
            not_after,
        }
    }

    const NOW: UnixTime = 1_800_000_000;

    #[test]
    fn a_device_with_no_certificate_gets_a_new_one_superseding_nothing() {
        let decision = IssuanceProfile::default().reissue_decision(&key(1), &[], NOW);
        assert_eq!(decision, ReissueDecision::IssueNew { supersede: vec![] });
    }

    #[test]
    fn an_active_certificate_outside_the_renewal_window_comes_back_unchanged() {
        let certs = [held(
            "a",
            key(1),
            CertificateStatus::Active,
            NOW + 200 * DAY,
        )];
        let decision = IssuanceProfile::default().reissue_decision(&key(1), &certs, NOW);
        assert_eq!(
            decision,
            ReissueDecision::ReturnExisting {
                certificate_id: "a".into()
            }
        );
    }

    #[test]
    fn inside_the_renewal_window_a_new_certificate_supersedes_the_current_one() {
        let certs = [held("a", key(1), CertificateStatus::Active, NOW + 10 * DAY)];
        let decision = IssuanceProfile::default().reissue_decision(&key(1), &certs, NOW);
        assert_eq!(
            decision,
            ReissueDecision::IssueNew {
                supersede: vec!["a".into()]
            }
        );
    }

    #[test]
    fn revoked_and_expired_certificates_are_never_returned() {
        let certs = [
            held(
                "revoked",
                key(1),
                CertificateStatus::Revoked,
                NOW + 200 * DAY,
            ),
            held("expired", key(1), CertificateStatus::Active, NOW - 1),
        ];
        let decision = IssuanceProfile::default().reissue_decision(&key(1), &certs, NOW);
        assert_eq!(
            decision,
            ReissueDecision::IssueNew {
                supersede: vec!["expired".into()]
            }
        );
    }

    #[test]
    fn a_new_key_supersedes_the_certificates_of_the_old_key() {
        let certs = [held(
            "old-key",
            key(1),
            CertificateStatus::Active,
            NOW + 200 * DAY,
        )];
        let decision = IssuanceProfile::default().reissue_decision(&key(2), &certs, NOW);
        assert_eq!(
            decision,
            ReissueDecision::IssueNew {
                supersede: vec!["old-key".into()]
            }
        );
    }

    #[test]
    fn a_renewal_window_as_long_as_the_validity_makes_every_request_issue() {
        let profile = IssuanceProfile {
            renew_within_secs: 365 * DAY,
            ..IssuanceProfile::default()
        };
        let (_, not_after) = profile.validity_at(NOW - 1);
        let certs = [held("fresh", key(1), CertificateStatus::Active, not_after)];
        let decision = profile.reissue_decision(&key(1), &certs, NOW);
        assert_eq!(
            decision,
            ReissueDecision::IssueNew {
                supersede: vec!["fresh".into()]
            }
        );
    }

    #[test]
    fn validity_is_backdated_but_lasts_its_length_from_now() {
        let (not_before, not_after) = IssuanceProfile::default().validity_at(NOW);
        assert_eq!(not_before, NOW - 300);
        assert_eq!(not_after, NOW + 365 * DAY);
    }

    #[test]
    fn the_rate_limit_refuses_the_request_over_the_limit_with_retry_after() {
        let limit = IssuanceRateLimit { per_hour: 2 };
        let issued = [NOW - 3000, NOW - 100];
        let refusal = limit.check("dev", &issued, NOW).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::RateLimited {
                device_id: "dev".into(),
                retry_after_secs: 600
            }
        );
        assert_eq!(crate::ErrorCode::status(&refusal), 429);
    }

    #[test]
    fn issuances_older_than_an_hour_do_not_count_and_zero_turns_the_limit_off() {
        let issued = [NOW - 4000, NOW - 3700, NOW - 10];
        assert_eq!(
            IssuanceRateLimit { per_hour: 2 }.check("dev", &issued, NOW),
            Ok(())
        );
        assert_eq!(
            IssuanceRateLimit { per_hour: 0 }.check("dev", &[NOW; 50], NOW),
            Ok(())
        );
    }
}
