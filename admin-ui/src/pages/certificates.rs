//! Certificates: filtered by status, device and issuer, a page at a time; a detail panel
//! (subject, serial, validity, issuer, fingerprint, PEM download, and on AWS its
//! registration with IoT Core per region); revocation with a confirmation that asks for
//! the reason.

use der::Decode;
use leptos::prelude::*;
use leptos::task::spawn_local;
use provisioner_core::RevocationReason;
use serde_json::json;

use crate::api::{ApiError, Certificate, Page, Registration, Revoked, Session};
use crate::ui::{
    download, fetched, human_time, short, Badge, Empty, ErrorMessage, Load, Loading, Pager,
};

/// Certificates per page.
pub const CERTIFICATES_PER_PAGE: usize = 25;

/// The subject DN of a PEM certificate (RFC 4514 text), read in the browser.
pub fn pem_subject(pem: &str) -> Option<String> {
    chain_entries(pem)
        .into_iter()
        .next()
        .map(|(subject, _, _)| subject)
}

/// Each certificate of a PEM chain: (subject, issuer, not after), in file order.
pub fn chain_entries(pem: &str) -> Vec<(String, String, String)> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .filter_map(|block| {
            let start = block.find("-----BEGIN CERTIFICATE-----")?;
            let (_, der) = pem_rfc7468::decode_vec(&block.as_bytes()[start..]).ok()?;
            let cert = x509_cert::Certificate::from_der(&der).ok()?;
            let tbs = cert.tbs_certificate;
            Some((
                tbs.subject.to_string(),
                tbs.issuer.to_string(),
                tbs.validity.not_after.to_string(),
            ))
        })
        .collect()
}

/// The certificates page.
#[component]
pub fn CertificatesPage(
    /// The signed-in session.
    session: Session,
) -> impl IntoView {
    let status = RwSignal::new(String::new());
    let device = RwSignal::new(String::new());
    let issuer = RwSignal::new(String::new());
    let earlier = RwSignal::new(Vec::<Option<String>>::new());
    let cursor = RwSignal::new(None::<String>);
    let refresh = RwSignal::new(0_u32);
    let selected = RwSignal::new(None::<String>);
    let certificates = fetched(
        move || {
            refresh.track();
            (status.get(), device.get(), issuer.get(), cursor.get())
        },
        move |(status, device, issuer, cursor)| async move {
            let mut query = format!("certificates?limit={CERTIFICATES_PER_PAGE}");
            for (name, value) in [("status", status), ("device", device), ("issuer", issuer)] {
                if !value.is_empty() {
                    query.push_str(&format!(
                        "&{name}={}",
                        String::from(js_sys::encode_uri_component(&value))
                    ));
                }
            }
            if let Some(c) = cursor {
                query.push_str(&format!("&cursor={c}"));
            }
            session.get_json::<Page<Certificate>>(&query).await
        },
    );
    let restart = move || {
        earlier.set(Vec::new());
        cursor.set(None);
    };
    let table = move || match certificates.get() {
        Load::Loading => view! { <Loading what="certificates"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(page) if page.items.is_empty() => view! {
            <Empty text="No certificates match. Devices get one when they provision (POST /new)."/>
        }
        .into_any(),
        Load::Ready(page) => {
            let next = page.next_cursor.clone();
            let rows = page
                .items
                .into_iter()
                .map(|c| {
                    let id = c.certificate_id.clone();
                    let is_selected = {
                        let id = id.clone();
                        move || selected.with(|s| s.as_deref() == Some(id.as_str()))
                    };
                    view! {
                        <tr class="clickable" class:selected=is_selected
                            on:click=move |_| selected.set(Some(id.clone()))>
                            <td class="mono">{c.device_id.clone()}</td>
                            <td><Badge status=c.status.clone()/></td>
                            <td class="mono">{short(&c.serial, 12)}</td>
                            <td>{c.issuer.clone()}</td>
                            <td>{human_time(&c.issued_at)}</td>
                            <td>{human_time(&c.not_after)}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            view! {
                <table class="certificates">
                    <thead><tr>
                        <th>"Device"</th><th>"Status"</th><th>"Serial"</th><th>"Issuer"</th>
                        <th>"Issued"</th><th>"Expires"</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <Pager cursor earlier next back="Previous" forward="Next"/>
            }
            .into_any()
        }
    };
    view! {
        <section class="page">
            <h2>"Certificates"</h2>
            <div class="filters">
                <select aria-label="Status" on:change=move |ev| { restart(); status.set(event_target_value(&ev)); }>
                    <option value="">"All statuses"</option>
                    <option value="active">"Active"</option>
                    <option value="inactive">"Inactive"</option>
                    <option value="revoked">"Revoked"</option>
                </select>
                <input type="search" placeholder="Device id" aria-label="Device id"
                    prop:value=move || device.get()
                    on:input=move |ev| { restart(); device.set(event_target_value(&ev)); }/>
                <input type="search" placeholder="Issuing CA" aria-label="Issuer"
                    prop:value=move || issuer.get()
                    on:input=move |ev| { restart(); issuer.set(event_target_value(&ev)); }/>
            </div>
            <div class="split">
                <div class="list">{table}</div>
                {move || selected.get().map(|id| view! {
                    <CertificateDetails session=session certificate_id=id
                        on_change=move || refresh.update(|n| *n += 1)
                        on_close=move || selected.set(None)/>
                })}
            </div>
        </section>
    }
}

/// One certificate in full, with its PEM and the revoke action.
#[component]
pub fn CertificateDetails(
    /// The signed-in session.
    session: Session,
    /// The certificate shown.
    certificate_id: String,
    /// Runs after a revocation (the list reloads).
    #[prop(into)]
    on_change: Callback<()>,
    /// Closes the panel.
    #[prop(into)]
    on_close: Callback<()>,
) -> impl IntoView {
    let reload = RwSignal::new(0_u32);
    let id = certificate_id.clone();
    let details = fetched(
        move || reload.get(),
        move |_| {
            let path = format!("certificates/{id}");
            async move { session.get_json::<Certificate>(&path).await }
        },
    );
    let confirming = RwSignal::new(false);
    let reason = RwSignal::new(RevocationReason::KeyCompromise.name().to_owned());
    let revoke_error = RwSignal::new(None::<ApiError>);
    let revoking = RwSignal::new(false);
    // Revoked in the registry, but not yet everywhere it is trusted.
    let partly = RwSignal::new(false);
    let revoke = move |_| {
        let path = format!("certificates/{certificate_id}/revoke");
        let body = json!({ "reason": reason.get_untracked() });
        revoking.set(true);
        spawn_local(async move {
            match session.post_json::<Revoked>(&path, Some(body)).await {
                Ok(revoked) => {
                    confirming.set(false);
                    revoke_error.set(None);
                    partly.set(!revoked.propagated);
                    reload.update(|n| *n += 1);
                    on_change.run(());
                }
                Err(e) => revoke_error.set(Some(e)),
            }
            revoking.set(false);
        });
    };
    let body = move || match details.get() {
        Load::Loading => view! { <Loading what="the certificate"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(c) => {
            let pem = c.certificate_pem.clone().unwrap_or_default();
            let subject = pem_subject(&pem).unwrap_or_else(|| format!("CN={}", c.device_id));
            let file_name = format!("{}.cert.pem", c.device_id);
            let revocable = c.status != "REVOKED";
            // Locally there are none: the section is for the AWS backend only.
            let regions = (!c.registrations.is_empty())
                .then(|| view! { <CertificateRegions registrations=c.registrations.clone()/> });
            let revoked = c.revoked_at.clone().map(|at| {
                format!(
                    "{} ({})",
                    human_time(&at),
                    c.revocation_reason.clone().unwrap_or_default()
                )
            });
            view! {
                <dl>
                    <dt>"Subject"</dt><dd class="mono">{subject}</dd>
                    <dt>"Status"</dt><dd><Badge status=c.status.clone()/></dd>
                    {revoked.map(|r| view! { <dt>"Revoked"</dt><dd>{r}</dd> })}
                    <dt>"Serial"</dt><dd class="mono wrap">{c.serial.clone()}</dd>
                    <dt>"Valid from"</dt><dd>{human_time(&c.not_before)}</dd>
                    <dt>"Valid until"</dt><dd>{human_time(&c.not_after)}</dd>
                    <dt>"Issuer"</dt><dd>{c.issuer.clone()}</dd>
                    <dt>"SHA-256 fingerprint"</dt><dd class="mono wrap">{c.certificate_id.clone()}</dd>
                </dl>
                {regions}
                <div class="actions">
                    <button on:click=move |_| download(&file_name, &pem, "application/x-pem-file")>"Download PEM"</button>
                    {revocable.then(|| view! {
                        <button class="danger" on:click=move |_| confirming.set(true)>"Revoke…"</button>
                    })}
                </div>
            }
            .into_any()
        }
    };
    let reasons = RevocationReason::ALL
        .iter()
        .map(|r| {
            let default = *r == RevocationReason::KeyCompromise;
            view! { <option value=r.name() selected=default>{r.name()}</option> }
        })
        .collect::<Vec<_>>();
    view! {
        <aside class="details">
            <header>
                <h3>"Certificate"</h3>
                <button class="small" aria-label="Close" on:click=move |_| on_close.run(())>"×"</button>
            </header>
            {body}
            <Show when=move || confirming.get()>
                <div class="confirm" role="dialog" aria-label="Confirm revocation">
                    <p>"Revoke this certificate? The device can no longer connect; it may provision again through POST /new."</p>
                    <label>"Reason "
                        <select id="revoke-reason" on:change=move |ev| reason.set(event_target_value(&ev))>
                            {reasons.clone()}
                        </select>
                    </label>
                    <div class="actions">
                        <button class="danger" id="confirm-revoke" disabled=move || revoking.get() on:click=revoke.clone()>"Revoke certificate"</button>
                        <button on:click=move |_| confirming.set(false)>"Cancel"</button>
                    </div>
                </div>
            </Show>
            {move || revoke_error.get().map(|e| view! { <ErrorMessage error=e/> })}
            {move || partly.get().then(|| view! {
                <p class="warning partly-revoked">"Revoked in the registry, but not yet everywhere the certificate is trusted (CRL, ACM Private CA or IoT Core in some region): the service retries the rest; its log says what failed."</p>
            })}
        </aside>
    }
}

/// A certificate's registration with IoT Core in each region (AWS backend).
#[component]
pub fn CertificateRegions(
    /// One row per region.
    registrations: Vec<Registration>,
) -> impl IntoView {
    let rows = registrations
        .into_iter()
        .map(|r| {
            let attempts = match r.attempts {
                1 => "1 attempt".to_owned(),
                n => format!("{n} attempts"),
            };
            view! {
                <tr data-region=r.region.clone()>
                    <td class="mono">{r.region.clone()}</td>
                    <td><Badge status=r.status.clone()/></td>
                    <td>{attempts}</td>
                    <td class="last-error">{r.last_error.clone().unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <h4>"Regions"</h4>
        <table class="certificate-regions">
            <thead><tr><th>"Region"</th><th>"IoT Core"</th><th>"Attempts"</th><th>"Last error"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
