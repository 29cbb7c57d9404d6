//! The CA: the issuing chain, earlier issuing CAs, the CRL download, and rotation with a
//! typed confirmation and live progress of the cascading revocation. On the AWS backend
//! the rotation names the new ACM Private CA by its ARN, and a "Regions" section lists
//! the certificates whose registration with IoT Core in some region is not finished,
//! with a "Retry now".

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use crate::api::{
    ApiError, CaOverview, IssuingCa, Page, Registration, RetriedRegistrations, Rotation, Session,
};
use crate::pages::certificates::chain_entries;
use crate::pages::crls::CrlTable;
use crate::ui::{
    download, fetched, human_time, short, sleep, Badge, Empty, ErrorMessage, Load, Loading, Pager,
};

/// What the user types to confirm a rotation.
pub const ROTATE_CONFIRMATION: &str = "rotate";

/// Unfinished registrations per page of the "Regions" section.
pub const REGISTRATIONS_PER_PAGE: usize = 50;

/// Milliseconds between two looks at a running rotation.
const POLL_MS: i32 = 400;

/// The CA page.
#[component]
pub fn CaPage(
    /// The signed-in session.
    session: Session,
) -> impl IntoView {
    let reload = RwSignal::new(0_u32);
    let overview = fetched(
        move || reload.get(),
        move |_| async move { session.get_json::<CaOverview>("ca").await },
    );
    // Whether the fleet is on AWS, once known; kept while the overview reloads so the
    // rotate form does not flicker.
    let aws = RwSignal::new(None::<bool>);
    Effect::new(move |_| {
        if let Load::Ready(o) = overview.get() {
            // Set only on a change: the form is drawn again when it is set.
            if aws.get_untracked() != Some(o.is_aws()) {
                aws.set(Some(o.is_aws()));
            }
        }
    });
    let crl_error = RwSignal::new(None::<ApiError>);
    let download_crl = move |_| {
        spawn_local(async move {
            match session.get_text("ca/crl").await {
                Ok(pem) => {
                    crl_error.set(None);
                    download("issuing-ca.crl.pem", &pem, "application/x-pem-file");
                }
                Err(e) => crl_error.set(Some(e)),
            }
        });
    };
    let current = move || match overview.get() {
        Load::Loading => view! { <Loading what="the CA"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(o) => {
            let pending = o.pending_csr.clone().map(|id| {
                let text = if o.is_aws() {
                    format!("ACM Private CA {id} waits for its certificate: install it with `provisioner aws ca install`.")
                } else {
                    format!("Issuing CA {id} waits for its certificate: import it on the server with `provisioner ca import-cert FILE`.")
                };
                view! { <p class="warning">{text}</p> }
            });
            let current = match o.current.clone() {
                Some(ca) => view! { <CurrentCa ca=ca/> }.into_any(),
                None => view! { <Empty text="No issuing CA yet: `provisioner ca init` on the server creates one."/> }.into_any(),
            };
            let previous = if o.previous.is_empty() {
                view! { <Empty text="No earlier issuing CA: the first rotation will list the one it replaces here."/> }.into_any()
            } else {
                let rows = o
                    .previous
                    .iter()
                    .rev()
                    .map(|ca| view! {
                        <tr>
                            <td class="mono" title=ca.arn.clone()>{ca.id.clone()}</td>
                            <td>{ca.subject.clone()}</td>
                            <td><Badge status=ca.state.clone()/></td>
                            <td>{ca.revoked_at.as_deref().map(human_time).unwrap_or_default()}</td>
                        </tr>
                    })
                    .collect::<Vec<_>>();
                view! {
                    <table class="previous-cas">
                        <thead><tr><th>"CA"</th><th>"Subject"</th><th>"State"</th><th>"Certificates revoked"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }
                .into_any()
            };
            view! {
                {pending}
                {current}
                <h3>"Earlier issuing CAs"</h3>
                {previous}
                <CrlTable crls=o.crls.clone() aws=o.is_aws()/>
            }
            .into_any()
        }
    };
    view! {
        <section class="page">
            <h2>"Certificate authority"</h2>
            {current}
            <div class="actions">
                <button id="download-crl" on:click=download_crl>"Download CRL"</button>
            </div>
            {move || crl_error.get().map(|e| view! { <ErrorMessage error=e/> })}
            <RotatePanel session=session aws=aws on_rotated=move || reload.update(|n| *n += 1)/>
            {move || (aws.get() == Some(true)).then(|| view! { <RegionsPanel session=session/> })}
        </section>
    }
}

/// The current issuing CA and its chain.
#[component]
fn CurrentCa(ca: IssuingCa) -> impl IntoView {
    let chain = ca
        .chain_pem
        .as_deref()
        .map(chain_entries)
        .unwrap_or_default();
    let roles = ["Issuing CA", "Root CA"];
    let chain_view = chain
        .into_iter()
        .enumerate()
        .map(|(i, (subject, issuer, not_after))| {
            let role = roles.get(i).copied().unwrap_or("CA");
            view! {
                <li>
                    <strong>{role}</strong>
                    <span class="mono">{subject}</span>
                    <span class="muted">{format!("issued by {issuer}, valid until {not_after}")}</span>
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <div class="current-ca">
            <dl>
                <dt>"Issuing CA"</dt><dd class="mono">{ca.id.clone()}</dd>
                {ca.arn.clone().map(|arn| view! { <dt>"ARN"</dt><dd class="mono wrap">{arn}</dd> })}
                <dt>"Subject"</dt><dd>{ca.subject.clone()}</dd>
                <dt>"Serial"</dt><dd class="mono wrap">{ca.serial.clone()}</dd>
                <dt>"Valid"</dt><dd>{format!("{} to {}", human_time(&ca.not_before), human_time(&ca.not_after))}</dd>
                <dt>"SHA-256 fingerprint"</dt><dd class="mono wrap">{ca.certificate_id.clone()}</dd>
            </dl>
            <h3>"Chain"</h3>
            <ol class="chain">{chain_view}</ol>
        </div>
    }
}

/// Rotation: typed confirmation (and, on AWS, the new CA's ARN), then the job's progress
/// until it ends.
#[component]
pub fn RotatePanel(
    /// The signed-in session.
    session: Session,
    /// Whether the fleet is on AWS; `None` until the CA overview says (no form until then).
    #[prop(into)]
    aws: Signal<Option<bool>>,
    /// Runs when a rotation finished (the CA overview reloads).
    #[prop(into)]
    on_rotated: Callback<()>,
) -> impl IntoView {
    let typed = RwSignal::new(String::new());
    let target = RwSignal::new(String::new());
    let progress = RwSignal::new(None::<Rotation>);
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);

    // The last rotation, if one ran (404 `no_rotation` means none: nothing to show).
    spawn_local(async move {
        match session.get_json::<Rotation>("ca/rotation").await {
            Ok(r) => progress.set(Some(r)),
            Err(e) if e.code == "no_rotation" => {}
            Err(e) => error.set(Some(e)),
        }
    });

    let start = move |_| {
        // On AWS the rotation names the CA installed beforehand; locally the service
        // creates the next one and takes no body.
        let body = (aws.get_untracked() == Some(true))
            .then(|| json!({ "to": target.get_untracked().trim() }));
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match session.post_json::<Rotation>("ca/rotate", body).await {
                Ok(first) => progress.set(Some(first)),
                Err(e) => {
                    error.set(Some(e));
                    busy.set(false);
                    return;
                }
            }
            typed.set(String::new());
            target.set(String::new());
            loop {
                match session.get_json::<Rotation>("ca/rotation").await {
                    Ok(r) => {
                        let running = r.is_running();
                        progress.set(Some(r));
                        if !running {
                            break;
                        }
                    }
                    Err(e) => {
                        error.set(Some(e));
                        break;
                    }
                }
                sleep(POLL_MS).await;
            }
            busy.set(false);
            on_rotated.run(());
        });
    };
    let confirmed = move || {
        typed.with(|t| t.trim() == ROTATE_CONFIRMATION)
            && (aws.get() != Some(true) || target.with(|t| is_ca_arn(t.trim())))
    };
    let form = move || {
        aws.get().map(|on_aws| {
            let explanation = if on_aws {
                "Issuance moves to the ACM Private CA named here once it is registered in every region; then every certificate of the current CA is revoked at ACM Private CA and in IoT Core: devices come back through POST /new for a new certificate."
            } else {
                "A new issuing CA replaces the current one, and every certificate of the current one is revoked: devices come back through POST /new for a new certificate."
            };
            view! {
                <p>{explanation}</p>
                {on_aws.then(|| view! {
                    <label for="rotate-target">"ARN of the new issuing CA"</label>
                    <input id="rotate-target" class="arn" autocomplete="off" spellcheck="false"
                        placeholder="arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID"
                        prop:value=move || target.get()
                        on:input=move |ev| target.set(event_target_value(&ev))/>
                    <p class="muted">"Create and install it first: `provisioner aws ca create`, then `provisioner aws ca install`."</p>
                })}
                <label for="rotate-confirm">{format!("Type \u{201c}{ROTATE_CONFIRMATION}\u{201d} to confirm")}</label>
                <div class="inline">
                    <input id="rotate-confirm" autocomplete="off" prop:value=move || typed.get()
                        on:input=move |ev| typed.set(event_target_value(&ev))/>
                    <button class="danger" id="rotate" disabled=move || !confirmed() || busy.get() on:click=start>"Rotate"</button>
                </div>
            }
        })
    };
    view! {
        <div class="rotate">
            <h3>"Rotate the issuing CA"</h3>
            {form}
            {move || progress.get().map(|r| view! { <RotationProgress rotation=r/> })}
            {move || error.get().map(|e| view! { <ErrorMessage error=e/> })}
        </div>
    }
}

/// Whether `text` looks like an ACM Private CA ARN (the service checks it for real).
pub fn is_ca_arn(text: &str) -> bool {
    text.starts_with("arn:")
        && text.contains(":acm-pca:")
        && text.contains(":certificate-authority/")
}

/// A rotation step in words.
pub fn step_words(step: &str) -> String {
    match step {
        "registering" => "Registering the new CA in every region".to_owned(),
        "switching" => "Switching issuance to the new CA".to_owned(),
        "revoking" => "Revoking the previous CA's certificates".to_owned(),
        "deactivating" => "Deactivating the previous CA".to_owned(),
        "done" => "Done".to_owned(),
        other => other.to_owned(),
    }
}

/// A rotation's state in words: its step, the revocations counted live (a bar when their
/// number is known), and what is left to do by hand.
#[component]
pub fn RotationProgress(
    /// The job as last seen.
    rotation: Rotation,
) -> impl IntoView {
    let running = rotation.is_running();
    let headline = match rotation.state.as_str() {
        "running" => "Rotation running".to_owned(),
        "finished" => "Rotation finished".to_owned(),
        "failed" => "Rotation failed".to_owned(),
        "interrupted" => "Rotation interrupted".to_owned(),
        other => format!("Rotation {other}"),
    };
    let pair = match (&rotation.old_ca, &rotation.new_ca) {
        (Some(old), Some(new)) => format!("{old} → {new}"),
        _ => "installing the new issuing CA…".to_owned(),
    };
    let so_far = if running { " so far" } else { "" };
    let revoked = match rotation.total {
        Some(total) => format!(
            "{} of {total} certificates of the previous CA revoked{so_far}",
            rotation.revoked
        ),
        None => format!(
            "{} certificates of the previous CA revoked{so_far}",
            rotation.revoked
        ),
    };
    // A bar with a length when the total is known; an indeterminate one while running
    // without it.
    let bar = match rotation.total {
        Some(total) => Some(
            view! {
                <progress class="revocations" aria-label="Certificates revoked"
                    max=total.max(1).to_string() value=rotation.revoked.min(total).to_string()></progress>
            }
            .into_any(),
        ),
        None if running => Some(view! { <progress aria-label="Rotation in progress"></progress> }.into_any()),
        None => None,
    };
    let step = rotation.step.clone().map(|s| {
        view! { <p class="step" data-step=s.clone()>{step_words(&s)}</p> }
    });
    view! {
        <div class="rotation" role="status" data-state=rotation.state.clone()>
            <strong>{headline}</strong>
            <p class="mono">{pair}</p>
            {step}
            {bar}
            <p class="revoked-count">{revoked}</p>
            {rotation.finished_at.as_deref().map(|at| view! { <p class="muted">{format!("Finished {}", human_time(at))}</p> })}
            {rotation.error.clone().map(|e| view! { <p class="warning">{e}</p> })}
            {rotation.admin_action.clone().map(|a| view! {
                <div class="admin-action" role="note"><strong>"Left for you to do"</strong><p>{a}</p></div>
            })}
        </div>
    }
}

/// "Regions" (AWS): the certificates whose registration with IoT Core in some region is
/// not finished (pending or failed), a page at a time, and "Retry now".
#[component]
pub fn RegionsPanel(
    /// The signed-in session.
    session: Session,
) -> impl IntoView {
    let refresh = RwSignal::new(0_u32);
    let earlier = RwSignal::new(Vec::<Option<String>>::new());
    let cursor = RwSignal::new(None::<String>);
    let unfinished = fetched(
        move || {
            refresh.track();
            cursor.get()
        },
        move |cursor| async move {
            let mut query = format!("registrations?limit={REGISTRATIONS_PER_PAGE}");
            if let Some(c) = cursor {
                query.push_str(&format!(
                    "&cursor={}",
                    String::from(js_sys::encode_uri_component(&c))
                ));
            }
            session.get_json::<Page<Registration>>(&query).await
        },
    );
    let retried = RwSignal::new(None::<RetriedRegistrations>);
    let retry_error = RwSignal::new(None::<ApiError>);
    let retrying = RwSignal::new(false);
    let retry = move |_| {
        retrying.set(true);
        retry_error.set(None);
        spawn_local(async move {
            match session
                .post_json::<RetriedRegistrations>("registrations/retry", None)
                .await
            {
                Ok(r) => {
                    retried.set(Some(r));
                    earlier.set(Vec::new());
                    cursor.set(None);
                    refresh.update(|n| *n += 1);
                }
                Err(e) => retry_error.set(Some(e)),
            }
            retrying.set(false);
        });
    };
    let table = move || {
        match unfinished.get() {
        Load::Loading => view! { <Loading what="the regional registrations"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(page) if page.items.is_empty() => view! {
            <Empty text="Every certificate is registered in every region: nothing waits for a retry."/>
        }
        .into_any(),
        Load::Ready(page) => {
            let next = page.next_cursor.clone();
            let rows = page
                .items
                .into_iter()
                .map(|r| {
                    view! {
                        <tr class=format!("registration-{}", r.status.to_ascii_lowercase())>
                            <td class="mono">{r.device_id.clone()}</td>
                            <td class="mono" title=r.certificate_id.clone()>{short(&r.certificate_id, 12)}</td>
                            <td class="mono">{r.region.clone()}</td>
                            <td><Badge status=r.status.clone()/></td>
                            <td class="attempts">{r.attempts}</td>
                            <td class="last-error">{r.last_error.clone().unwrap_or_default()}</td>
                            <td>{human_time(&r.updated_at)}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            view! {
                <table class="registrations">
                    <thead><tr>
                        <th>"Device"</th><th>"Certificate"</th><th>"Region"</th><th>"Status"</th>
                        <th>"Attempts"</th><th>"Last error"</th><th>"Updated"</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <Pager cursor earlier next back="Previous" forward="Next"/>
            }
            .into_any()
        }
    }
    };
    view! {
        <div class="regions">
            <header class="page-head">
                <h3>"Regions"</h3>
                <button id="retry-registrations" disabled=move || retrying.get() on:click=retry>
                    {move || if retrying.get() { "Retrying…" } else { "Retry now" }}
                </button>
            </header>
            <p class="muted">"Certificates are registered with IoT Core in every region the fleet connects to; a registration that failed is retried in the background, or now."</p>
            {move || retried.get().map(|r| view! { <p class="retried" role="status">{retried_words(&r)}</p> })}
            {move || retry_error.get().map(|e| view! { <ErrorMessage error=e/> })}
            {table}
        </div>
    }
}

/// What one "Retry now" did, in a sentence.
pub fn retried_words(r: &RetriedRegistrations) -> String {
    if r.attempted == 0 && r.in_flight == 0 {
        return "Nothing was due for a retry.".to_owned();
    }
    let mut text = format!(
        "Retried {}: {} done, {} still failing",
        r.attempted, r.done, r.failed
    );
    if r.in_flight > 0 {
        text.push_str(&format!(
            ", {} left alone (a request is finishing them)",
            r.in_flight
        ));
    }
    text.push('.');
    if r.more {
        text.push_str(" More are due: retry again.");
    }
    text
}
