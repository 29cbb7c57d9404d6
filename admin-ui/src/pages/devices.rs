//! Devices: the registry, searchable by id prefix and status, a page at a time; enabling
//! and disabling (after a confirmation that offers to revoke the device's certificates
//! too, for a stolen device); and the manifest import.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{ApiError, Device, DisabledDevice, Page, Session};
use crate::pages::import::ImportPanel;
use crate::ui::{fetched, short, Badge, Empty, ErrorMessage, Load, Loading, Pager};

/// Devices per page.
pub const DEVICES_PER_PAGE: usize = 25;

/// The devices page.
#[component]
pub fn DevicesPage(
    /// The signed-in session.
    session: Session,
) -> impl IntoView {
    let prefix = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    // The cursors of the pages before this one (to go back) and of this one.
    let earlier = RwSignal::new(Vec::<Option<String>>::new());
    let cursor = RwSignal::new(None::<String>);
    let refresh = RwSignal::new(0_u32);
    let action_error = RwSignal::new(None::<ApiError>);
    let devices = fetched(
        move || {
            refresh.track();
            (prefix.get(), status.get(), cursor.get())
        },
        move |(prefix, status, cursor)| async move {
            let mut query = format!("devices?limit={DEVICES_PER_PAGE}");
            if !prefix.is_empty() {
                query.push_str(&format!(
                    "&prefix={}",
                    String::from(js_sys::encode_uri_component(&prefix))
                ));
            }
            if !status.is_empty() {
                query.push_str(&format!("&status={status}"));
            }
            if let Some(c) = cursor {
                query.push_str(&format!("&cursor={c}"));
            }
            session.get_json::<Page<Device>>(&query).await
        },
    );
    // A new search starts at the first page.
    let restart = move || {
        earlier.set(Vec::new());
        cursor.set(None);
    };
    // The device whose disabling waits for confirmation, and what the last one did.
    let disabling = RwSignal::new(None::<Device>);
    let also_revoke = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let outcome = RwSignal::new(None::<(DisabledDevice, bool)>);
    let enable = move |device: Device| {
        outcome.set(None);
        spawn_local(async move {
            let path = format!(
                "devices/{}/enable",
                String::from(js_sys::encode_uri_component(&device.device_id))
            );
            match session.post_json::<Device>(&path, None).await {
                Ok(_) => {
                    action_error.set(None);
                    refresh.update(|n| *n += 1);
                }
                Err(e) => action_error.set(Some(e)),
            }
        });
    };
    let toggle = move |device: Device| {
        if device.enabled {
            also_revoke.set(false);
            outcome.set(None);
            disabling.set(Some(device));
        } else {
            enable(device);
        }
    };
    let confirm_disable = move |_| {
        let Some(device) = disabling.get_untracked() else {
            return;
        };
        let revoke = also_revoke.get_untracked();
        busy.set(true);
        spawn_local(async move {
            let path = format!(
                "devices/{}/disable",
                String::from(js_sys::encode_uri_component(&device.device_id))
            );
            let body = revoke.then(|| serde_json::json!({ "revoke": true }));
            match session.post_json::<DisabledDevice>(&path, body).await {
                Ok(done) => {
                    action_error.set(None);
                    disabling.set(None);
                    outcome.set(Some((done, revoke)));
                    refresh.update(|n| *n += 1);
                }
                Err(e) => action_error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    let confirmation = move || {
        disabling.get().map(|device| {
            view! {
                <div class="confirm" role="dialog" aria-label="Confirm disabling">
                    <p>{format!("Disable device {}? The service refuses it certificates until it is enabled again.", device.device_id)}</p>
                    <label>
                        <input type="checkbox" id="revoke-certificates"
                            prop:checked=move || also_revoke.get()
                            on:change=move |ev| also_revoke.set(event_target_checked(&ev))/>
                        " Also revoke its certificates (keyCompromise: for a stolen or compromised device)"
                    </label>
                    <div class="actions">
                        <button class="danger" id="confirm-disable" disabled=move || busy.get() on:click=confirm_disable>"Disable"</button>
                        <button on:click=move |_| disabling.set(None)>"Cancel"</button>
                    </div>
                </div>
            }
        })
    };
    let result = move || {
        outcome.get().map(|(done, revoke)| {
            let id = done.device.device_id.clone();
            let revoked = &done.revoked_certificates;
            let summary = match (revoke, revoked.len()) {
                (false, _) => format!("Device {id} disabled."),
                (true, 0) => format!("Device {id} disabled. It had no active certificate to revoke."),
                (true, 1) => format!("Device {id} disabled and its certificate revoked:"),
                (true, n) => format!("Device {id} disabled and its {n} certificates revoked:"),
            };
            let items = revoked
                .iter()
                .map(|r| {
                    let c = &r.certificate;
                    let reason = c.revocation_reason.clone().unwrap_or_default();
                    view! { <li class="mono" title=c.certificate_id.clone()>{format!("{} ({reason})", short(&c.certificate_id, 16))}</li> }
                })
                .collect::<Vec<_>>();
            let partly = revoked.iter().any(|r| !r.propagated).then(|| view! {
                <p class="warning partly-revoked">"Revoked in the registry, but not yet everywhere a certificate is trusted (CRL, ACM Private CA or IoT Core in some region): revoke it again from Certificates; the service log says what failed."</p>
            });
            view! {
                <div class="state disable-result" role="status">
                    <p>{summary}</p>
                    <ul class="revoked-certificates">{items}</ul>
                    {partly}
                </div>
            }
        })
    };
    let table = move || match devices.get() {
        Load::Loading => view! { <Loading what="devices"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(page) if page.items.is_empty() => {
            let text = if prefix.with(String::is_empty) && status.with(String::is_empty) {
                "No devices yet. Import the manufacturer's manifest above."
            } else {
                "No device matches this search."
            };
            view! { <Empty text=text/> }.into_any()
        }
        Load::Ready(page) => {
            let next = page.next_cursor.clone();
            let rows = page
                .items
                .into_iter()
                .map(|d| {
                    let label = if d.enabled { "Disable" } else { "Enable" };
                    let state = if d.enabled { "enabled" } else { "disabled" };
                    let for_click = d.clone();
                    view! {
                        <tr>
                            <td class="mono">{d.device_id.clone()}</td>
                            <td><Badge status=state/></td>
                            <td class="mono" title=d.key_fingerprint.clone()>{short(&d.key_fingerprint, 16)}</td>
                            <td>{d.source_manifest.clone().unwrap_or_default()}</td>
                            <td>{crate::ui::human_time(&d.imported_at)}</td>
                            <td><button class="small" on:click=move |_| toggle(for_click.clone())>{label}</button></td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            view! {
                <table class="devices">
                    <thead><tr>
                        <th>"Device id"</th><th>"Status"</th><th>"Key fingerprint"</th>
                        <th>"Manifest"</th><th>"Imported"</th><th></th>
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
            <h2>"Devices"</h2>
            <ImportPanel session=session on_imported=move || refresh.update(|n| *n += 1)/>
            <div class="filters">
                <input type="search" placeholder="Device id starts with…" aria-label="Device id prefix"
                    prop:value=move || prefix.get()
                    on:input=move |ev| { restart(); prefix.set(event_target_value(&ev)); }/>
                <select aria-label="Status" on:change=move |ev| { restart(); status.set(event_target_value(&ev)); }>
                    <option value="">"All"</option>
                    <option value="enabled">"Enabled"</option>
                    <option value="disabled">"Disabled"</option>
                </select>
            </div>
            {confirmation}
            {result}
            {move || action_error.get().map(|e| view! { <ErrorMessage error=e/> })}
            {table}
        </section>
    }
}
