//! Sign-in: the admin token, checked against the service before it is kept.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{ApiError, HourCount, Session};
use crate::ui::ErrorMessage;

/// The sign-in form. A token the service accepts is kept in `sessionStorage` (this tab
/// only) and signs in; a refused one says so and keeps nothing.
#[component]
pub fn SignIn(
    /// The session to sign in.
    session: Session,
) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let checking = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let candidate = token.get_untracked().trim().to_owned();
        if candidate.is_empty() {
            error.set(Some(ApiError {
                status: 400,
                code: "missing_token".into(),
                message:
                    "Paste the admin token: `provisioner admin token` prints it on the server."
                        .into(),
            }));
            return;
        }
        checking.set(true);
        error.set(None);
        spawn_local(async move {
            // A cheap authenticated route tells whether the token is the admin token.
            let probe = Session::with_token(&candidate);
            let answer = probe
                .get_json::<Vec<HourCount>>("stats/issuance?hours=1")
                .await;
            checking.set(false);
            match answer {
                Ok(_) => session.sign_in(candidate),
                Err(e) if e.is_unauthorized() => error.set(Some(ApiError {
                    message: "The service refused this token. `provisioner admin token` prints the current one.".into(),
                    ..e
                })),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <main class="sign-in">
            <h1>"Provisioner"</h1>
            <p class="lead">"Device registry, certificates and the issuing CA."</p>
            {move || session.notice().map(|n| view! { <p class="notice" role="status">{n}</p> })}
            <form on:submit=submit>
                <label for="token">"Admin token"</label>
                <input id="token" name="token" type="password" autocomplete="off"
                    placeholder="printed by `provisioner admin token`"
                    prop:value=move || token.get()
                    on:input=move |ev| token.set(event_target_value(&ev))/>
                <button type="submit" disabled=move || checking.get()>
                    {move || if checking.get() { "Checking…" } else { "Sign in" }}
                </button>
            </form>
            {move || error.get().map(|e| view! { <ErrorMessage error=e/> })}
        </main>
    }
}
