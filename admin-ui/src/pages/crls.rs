//! The CA page's "Revocation lists": each CRL the service publishes, when it was signed
//! (and how long ago) and when it expires, with a warning when one is within a day of
//! its next update: brokers refuse every device once it has passed.

use leptos::prelude::*;

use crate::api::Crl;
use crate::ui::human_time;

/// The CRLs of `GET ca`; nothing on AWS (ACM Private CA publishes them) beyond a note.
#[component]
pub fn CrlTable(
    /// The CRLs, as `GET ca` listed them.
    crls: Vec<Crl>,
    /// Whether the fleet is on AWS.
    aws: bool,
) -> impl IntoView {
    if aws {
        return view! {
            <div class="crls">
                <h3>"Revocation lists"</h3>
                <p class="muted">"ACM Private CA publishes the issuing CA's CRL in its S3 bucket; IoT Core refuses a revoked certificate by its status. Download CRL says where it is."</p>
            </div>
        }
        .into_any();
    }
    let warnings = crls
        .iter()
        .filter(|crl| crl.expires_soon)
        .map(|crl| view! { <p class="warning crl-warning" role="alert">{expiry_warning(crl)}</p> })
        .collect::<Vec<_>>();
    let rows = crls
        .iter()
        .map(|crl| {
            let signed = match (&crl.this_update, crl.age_secs) {
                (Some(at), Some(age)) => {
                    format!("{} ({} ago)", human_time(at), duration_words(age))
                }
                _ => "not written yet".to_owned(),
            };
            let next = match (&crl.next_update, crl.expires_in_secs) {
                (Some(at), Some(left)) if left > 0 => {
                    format!("{} (in {})", human_time(at), duration_words(left))
                }
                (Some(at), Some(left)) => {
                    format!("{} (expired {} ago)", human_time(at), duration_words(-left))
                }
                _ => String::new(),
            };
            view! {
                <tr class:crl-expiring=crl.expires_soon data-issuer=crl.issuer.clone()>
                    <td class="mono">{issuer_words(&crl.issuer)}</td>
                    <td class="crl-signed">{signed}</td>
                    <td class="crl-next">{next}</td>
                    <td class="crl-revoked">{crl.revoked}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <div class="crls">
            <h3>"Revocation lists"</h3>
            <p class="muted">"The service signs new CRLs within seconds of a revocation and again at half their lifetime; a broker refuses every device once a CRL it holds has passed its next update."</p>
            {warnings}
            <table class="crl-list">
                <thead><tr><th>"Issuer"</th><th>"Signed"</th><th>"Next update"</th><th>"Revoked"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

/// The CRL's issuer in words.
pub fn issuer_words(issuer: &str) -> String {
    if issuer == "root" {
        "Root CA".to_owned()
    } else {
        format!("Issuing CA {issuer}")
    }
}

/// The warning for a CRL close to (or past) its next update.
pub fn expiry_warning(crl: &Crl) -> String {
    let who = issuer_words(&crl.issuer);
    match crl.expires_in_secs {
        None => format!("The CRL of {who} has not been written: brokers that check CRLs refuse every device. Is `provisioner serve` running?"),
        Some(left) if left <= 0 => format!(
            "The CRL of {who} expired {} ago: brokers that check CRLs refuse every device. Is `provisioner serve` running?",
            duration_words(-left)
        ),
        Some(left) => format!(
            "The CRL of {who} expires in {}: brokers that check CRLs will refuse every device unless a new one is published (`provisioner serve` renews it at half its lifetime).",
            duration_words(left)
        ),
    }
}

/// A duration in the largest whole unit: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn duration_words(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..86_400 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}
