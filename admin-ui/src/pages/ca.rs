//! The CA: the issuing chain, earlier issuing CAs, the CRL download, and rotation with a
//! typed confirmation and live progress of the cascading revocation.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{ApiError, CaOverview, IssuingCa, Rotation, Session};
use crate::pages::certificates::chain_entries;
use crate::ui::{download, fetched, human_time, sleep, Badge, Empty, ErrorMessage, Load, Loading};

/// What the user types to confirm a rotation.
pub const ROTATE_CONFIRMATION: &str = "rotate";

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
            let pending = o.pending_csr.clone().map(|id| view! {
                <p class="warning">{format!("Issuing CA {id} waits for its certificate: import it on the server with `provisioner ca import-cert FILE`.")}</p>
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
                            <td class="mono">{ca.id.clone()}</td>
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
            <RotatePanel session=session on_rotated=move || reload.update(|n| *n += 1)/>
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

/// Rotation: typed confirmation, then the job's progress until it ends.
#[component]
pub fn RotatePanel(
    /// The signed-in session.
    session: Session,
    /// Runs when a rotation finished (the CA overview reloads).
    #[prop(into)]
    on_rotated: Callback<()>,
) -> impl IntoView {
    let typed = RwSignal::new(String::new());
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
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            if let Err(e) = session
                .post_json::<serde_json::Value>("ca/rotate", None)
                .await
            {
                error.set(Some(e));
                busy.set(false);
                return;
            }
            typed.set(String::new());
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
    let confirmed = move || typed.with(|t| t.trim() == ROTATE_CONFIRMATION);
    view! {
        <div class="rotate">
            <h3>"Rotate the issuing CA"</h3>
            <p>"A new issuing CA replaces the current one, and every certificate of the current one is revoked: devices come back through POST /new for a new certificate."</p>
            <label for="rotate-confirm">{format!("Type \u{201c}{ROTATE_CONFIRMATION}\u{201d} to confirm")}</label>
            <div class="inline">
                <input id="rotate-confirm" autocomplete="off" prop:value=move || typed.get()
                    on:input=move |ev| typed.set(event_target_value(&ev))/>
                <button class="danger" id="rotate" disabled=move || !confirmed() || busy.get() on:click=start>"Rotate"</button>
            </div>
            {move || progress.get().map(|r| view! { <RotationProgress rotation=r/> })}
            {move || error.get().map(|e| view! { <ErrorMessage error=e/> })}
        </div>
    }
}

/// A rotation's state in words, with the revocations counted live.
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
    let revoked = format!(
        "{} certificates of the previous CA revoked{}",
        rotation.revoked,
        if running { " so far" } else { "" }
    );
    view! {
        <div class="rotation" role="status" data-state=rotation.state.clone()>
            <strong>{headline}</strong>
            <p class="mono">{pair}</p>
            {running.then(|| view! { <progress aria-label="Rotation in progress"></progress> })}
            <p class="revoked-count">{revoked}</p>
            {rotation.finished_at.as_deref().map(|at| view! { <p class="muted">{format!("Finished {}", human_time(at))}</p> })}
            {rotation.error.clone().map(|e| view! { <p class="warning">{e}</p> })}
        </div>
    }
}
