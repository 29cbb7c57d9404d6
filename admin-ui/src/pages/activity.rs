//! Activity: requests per hour over the last day, and the audit feed (every allow and
//! deny, with its reason), newest first.

use leptos::prelude::*;

use crate::api::{AuditEvent, HourCount, Page, Session};
use crate::chart::IssuanceChart;
use crate::ui::{fetched, human_time, short, Badge, Empty, ErrorMessage, Load, Loading, Pager};

/// Audit events per page.
pub const EVENTS_PER_PAGE: usize = 50;

/// Hours the chart covers.
pub const CHART_HOURS: u32 = 24;

/// The activity page.
#[component]
pub fn ActivityPage(
    /// The signed-in session.
    session: Session,
) -> impl IntoView {
    let refresh = RwSignal::new(0_u32);
    let earlier = RwSignal::new(Vec::<Option<String>>::new());
    let cursor = RwSignal::new(None::<String>);
    let stats = fetched(
        move || refresh.get(),
        move |_| async move {
            session
                .get_json::<Vec<HourCount>>(&format!("stats/issuance?hours={CHART_HOURS}"))
                .await
        },
    );
    let feed = fetched(
        move || {
            refresh.track();
            cursor.get()
        },
        move |cursor| async move {
            let mut query = format!("audit?limit={EVENTS_PER_PAGE}");
            if let Some(c) = cursor {
                query.push_str(&format!("&cursor={c}"));
            }
            session.get_json::<Page<AuditEvent>>(&query).await
        },
    );
    let chart = move || match stats.get() {
        Load::Loading => view! { <Loading what="the request rate"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(hours) => view! { <IssuanceChart hours=hours/> }.into_any(),
    };
    let events = move || match feed.get() {
        Load::Loading => view! { <Loading what="the audit log"/> }.into_any(),
        Load::Failed(e) => view! { <ErrorMessage error=e/> }.into_any(),
        Load::Ready(page) if page.items.is_empty() => view! {
            <Empty text="No decisions yet: every POST /new, allowed or denied, is listed here."/>
        }
        .into_any(),
        Load::Ready(page) => {
            let next = page.next_cursor.clone();
            let rows = page
                .items
                .into_iter()
                .map(|e| view! { <AuditRow event=e/> })
                .collect::<Vec<_>>();
            view! {
                <table class="audit">
                    <thead><tr><th>"Time"</th><th>"Decision"</th><th>"Reason"</th><th>"Device"</th><th>"Client"</th><th>"Certificate"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <Pager cursor earlier next back="Newer" forward="Older"/>
            }
            .into_any()
        }
    };
    view! {
        <section class="page">
            <header class="page-head">
                <h2>"Activity"</h2>
                <button id="refresh-activity" on:click=move |_| {
                    earlier.set(Vec::new());
                    cursor.set(None);
                    refresh.update(|n| *n += 1);
                }>"Refresh"</button>
            </header>
            <h3>"Requests per hour"</h3>
            {chart}
            <h3>"Audit log"</h3>
            {events}
        </section>
    }
}

/// One decision of the audit log.
#[component]
pub fn AuditRow(
    /// The event.
    event: AuditEvent,
) -> impl IntoView {
    view! {
        <tr class=format!("decision-{}", event.decision)>
            <td>{human_time(&event.at)}</td>
            <td><Badge status=event.decision.clone()/></td>
            <td class="mono">{event.code.clone()}</td>
            <td class="mono">{event.device_id.clone().unwrap_or_default()}</td>
            <td class="mono">{event.remote_addr.clone().unwrap_or_default()}</td>
            <td class="mono">{event.certificate_id.as_deref().map(|c| short(c, 12)).unwrap_or_default()}</td>
        </tr>
    }
}
