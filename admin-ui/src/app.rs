//! The dashboard's frame: sign-in until a bearer is held (the admin token or a Cognito ID
//! token), then the navigation and the page chosen. A 401 on any page signs out (see
//! [`Session`]), which brings the sign-in back.

use leptos::prelude::*;

use crate::api::Session;
use crate::pages::activity::ActivityPage;
use crate::pages::ca::CaPage;
use crate::pages::certificates::CertificatesPage;
use crate::pages::devices::DevicesPage;
use crate::pages::sign_in::SignIn;

/// The pages of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// The device registry and imports.
    Devices,
    /// Issued certificates.
    Certificates,
    /// The issuing CA.
    Ca,
    /// The audit feed and the request rate.
    Activity,
}

impl Tab {
    /// Every tab, in navigation order.
    pub const ALL: [Tab; 4] = [Tab::Devices, Tab::Certificates, Tab::Ca, Tab::Activity];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Devices => "Devices",
            Tab::Certificates => "Certificates",
            Tab::Ca => "CA",
            Tab::Activity => "Activity",
        }
    }
}

/// The whole dashboard, on the session stored in this tab.
#[component]
pub fn App() -> impl IntoView {
    view! { <Dashboard session=Session::restore()/> }
}

/// The dashboard on `session`: the sign-in form, or the navigation and a page.
#[component]
pub fn Dashboard(
    /// The session (restored from `sessionStorage` by [`App`]).
    session: Session,
) -> impl IntoView {
    let tab = RwSignal::new(Tab::Devices);
    let nav = Tab::ALL
        .into_iter()
        .map(|t| {
            view! {
                <button class="tab" class:active=move || tab.get() == t
                    data-tab=t.title() on:click=move |_| tab.set(t)>{t.title()}</button>
            }
        })
        .collect::<Vec<_>>();
    let page = move || match tab.get() {
        Tab::Devices => view! { <DevicesPage session=session/> }.into_any(),
        Tab::Certificates => view! { <CertificatesPage session=session/> }.into_any(),
        Tab::Ca => view! { <CaPage session=session/> }.into_any(),
        Tab::Activity => view! { <ActivityPage session=session/> }.into_any(),
    };
    view! {
        <Show when=move || session.is_signed_in() fallback=move || view! { <SignIn session=session/> }>
            <header class="top">
                <h1>"Provisioner"</h1>
                <nav>{nav.clone()}</nav>
                <button class="small sign-out" on:click=move |_| session.sign_out_everywhere()>"Sign out"</button>
            </header>
            <main>{page}</main>
        </Show>
    }
}
