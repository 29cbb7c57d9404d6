//! What the device API is configured with, in the operator's units: the flags of
//! `provisioner serve` and the variables of the issuer Lambda share these names, defaults
//! and conversion, so the two cannot drift apart (docs/ARCHITECTURE.md, "The rule: layers
//! call downwards only": binaries hold configuration, not decisions).

use provisioner_app::flow::FlowSettings;
use provisioner_core::{CsrPolicy, IssuanceProfile, IssuanceRateLimit};

const DAY: i64 = 24 * 60 * 60;

/// The default lifetime of a latent retrieval URL, in seconds
/// (`--retrieval-ttl-secs`, `PROVISIONER_RETRIEVAL_TTL_SECS`).
pub const DEFAULT_RETRIEVAL_TTL_SECS: u32 = 600;

/// The issuance profile and limits as an operator gives them (days, per hour, per
/// minute); [`IssuanceOptions::flow_settings`] turns them into the flow's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceOptions {
    /// Lifetime of issued certificates, in days.
    pub validity_days: u32,
    /// A request within this many days of the current certificate's expiry renews it.
    pub renew_within_days: u32,
    /// New certificates per device per hour (0 = no limit).
    pub rate_limit: u32,
    /// Failed requests per client address per minute (0 = no limit).
    pub failed_rate_limit: u32,
    /// Accept P-384 device keys signed with SHA-384.
    pub allow_p384: bool,
    /// The MQTT endpoint returned to devices.
    pub mqtt_endpoint: String,
}

impl IssuanceOptions {
    /// The default [`IssuanceOptions::validity_days`].
    pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
    /// The default [`IssuanceOptions::renew_within_days`].
    pub const DEFAULT_RENEW_WITHIN_DAYS: u32 = 30;
    /// The default [`IssuanceOptions::rate_limit`].
    pub const DEFAULT_RATE_LIMIT: u32 = 10;
    /// The default [`IssuanceOptions::failed_rate_limit`]: generous, since a factory line
    /// may sit behind one address.
    pub const DEFAULT_FAILED_RATE_LIMIT: u32 = 100;

    /// True when every request renews (the renewal window covers the whole validity): a
    /// replayed CSR then revokes the device's current certificate, since the proof of
    /// possession has no freshness.
    pub fn renews_every_request(&self) -> bool {
        self.renew_within_days >= self.validity_days
    }

    /// The flow's settings: the profile, the rate limits, the endpoint, and the default
    /// wait for another request's issuance.
    pub fn flow_settings(&self) -> FlowSettings {
        FlowSettings {
            profile: IssuanceProfile {
                csr: CsrPolicy {
                    allow_p384: self.allow_p384,
                    ..CsrPolicy::default()
                },
                validity_secs: i64::from(self.validity_days) * DAY,
                renew_within_secs: i64::from(self.renew_within_days) * DAY,
                ..IssuanceProfile::default()
            },
            rate_limit: IssuanceRateLimit {
                per_hour: self.rate_limit,
            },
            failures_per_minute: self.failed_rate_limit,
            endpoint: self.mqtt_endpoint.clone(),
            claim_wait: FlowSettings::DEFAULT_CLAIM_WAIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_seconds_and_the_limits_pass_through() {
        let options = IssuanceOptions {
            validity_days: 2,
            renew_within_days: 1,
            rate_limit: 3,
            failed_rate_limit: 4,
            allow_p384: true,
            mqtt_endpoint: "mqtt.example:8883".into(),
        };
        let flow = options.flow_settings();
        assert_eq!(flow.profile.validity_secs, 2 * DAY);
        assert_eq!(flow.profile.renew_within_secs, DAY);
        assert_eq!(flow.rate_limit.per_hour, 3);
        assert_eq!(flow.failures_per_minute, 4);
        assert!(flow.profile.csr.allow_p384);
        assert_eq!(flow.endpoint, "mqtt.example:8883");
        assert_eq!(flow.claim_wait, FlowSettings::DEFAULT_CLAIM_WAIT);
        assert!(!options.renews_every_request());
        let always = IssuanceOptions {
            renew_within_days: 2,
            ..options
        };
        assert!(always.renews_every_request());
    }
}
