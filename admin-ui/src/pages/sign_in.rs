//! Sign-in: what `GET /admin/sign-in.json` offers, the "Sign in with Cognito" button
//! (the hosted UI, [`crate::oidc`]) and the admin token form, either or both. Whatever
//! signs in is checked against the service before it is kept.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{ApiError, HourCount, Session};
use crate::oidc::{self, OidcProvider, Return, SignInFailure, SignInOptions};
use crate::ui::{ErrorMessage, Load, Loading};

/// The sign-in page. On a return from Cognito (`?code=…&state=…` or `?error=…`) it
/// first clears the address bar, then completes the sign-in or says why it failed.
#[component]
pub fn SignIn(
    /// The session to sign in.
    session: Session,
) -> impl IntoView {
    // Read once, then taken out of the address bar at once: the code is single-use and
    // must survive neither a reload nor a bookmark.
    let returned = oidc::read_return(&oidc::address_query());
    if returned.is_some() {
        oidc::clear_address_query();
    }
    let completing = RwSignal::new(returned.is_some());
    let failure = RwSignal::new(None::<SignInFailure>);
    let options = RwSignal::new(Load::<SignInOptions>::Loading);
    spawn_local(async move {
        let loaded = oidc::fetch_sign_in_options().await;
        let provider = loaded.as_ref().ok().and_then(|o| o.oidc.clone());
        options.set(loaded.into());
        if let Some(returned) = returned {
            let outcome = complete(session, provider, returned).await;
            completing.set(false);
            if let Err(f) = outcome {
                failure.set(Some(f));
            }
        }
    });

    let choices = move || match options.get() {
        Load::Loading => view! { <Loading what="the sign-in options"/> }.into_any(),
        // The admin token is what always worked: offer it beside the failure.
        Load::Failed(e) => view! {
            <ErrorMessage error=e/>
            <TokenForm session=session/>
        }
        .into_any(),
        Load::Ready(o) => {
            let both = o.token && o.oidc.is_some();
            let none = !o.token && o.oidc.is_none();
            let cognito = o
                .oidc
                .map(|provider| view! { <CognitoButton provider=provider failure=failure/> });
            view! {
                {cognito}
                {both.then(|| view! { <p class="or">"or, with the admin token"</p> })}
                {o.token.then(|| view! { <TokenForm session=session/> })}
                {none.then(|| view! {
                    <div class="state empty">"This service accepts no sign-in from the dashboard: configure Cognito's hosted UI or an admin token on the server."</div>
                })}
            }
            .into_any()
        }
    };
    view! {
        <main class="sign-in">
            <h1>"Provisioner"</h1>
            <p class="lead">"Device registry, certificates and the issuing CA."</p>
            {move || session.notice().map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {move || completing.get().then(|| view! {
                <div class="state loading" aria-busy="true">"Completing the sign-in with Cognito…"</div>
            })}
            {move || failure.get().map(|f| view! {
                <div class="state error sign-in-failure" role="alert" data-code=f.code.clone()>
                    <strong>"Sign-in with Cognito failed"</strong>
                    <p class="message">{f.message}</p>
                </div>
            })}
            <Show when=move || !completing.get()>{choices}</Show>
        </main>
    }
}

/// Completes a return from the hosted UI: checks `state`, exchanges the code, checks
/// the ID token with the service, and signs in with it.
async fn complete(
    session: Session,
    provider: Option<OidcProvider>,
    returned: Return,
) -> Result<(), SignInFailure> {
    // Taken in any case: an answer, good or bad, ends the sign-in it belongs to.
    let pending = oidc::take_pending();
    let Some(provider) = provider else {
        return Err(SignInFailure {
            code: "oidc_not_configured".into(),
            message: "This service is not configured for sign-in with Cognito (or its sign-in options could not be read): use the admin token.".into(),
        });
    };
    let code = oidc::check_return(returned, pending.as_ref())?;
    let verifier = pending.map(|p| p.verifier).unwrap_or_default();
    let redirect = oidc::redirect_uri();
    let id_token = oidc::exchange_code(&provider, &code, &verifier, &redirect).await?;
    match probe(&id_token).await {
        Ok(()) => {
            session.sign_in_with_logout(id_token, Some(oidc::logout_url(&provider, &redirect)));
            Ok(())
        }
        Err(e) if e.is_unauthorized() => Err(SignInFailure {
            code: "token_refused_by_service".into(),
            message: format!(
                "Cognito signed you in, but the service refused the ID token: {}",
                e.message
            ),
        }),
        Err(e) => Err(SignInFailure {
            code: e.code,
            message: e.message,
        }),
    }
}

/// Whether the service accepts `bearer`: a cheap authenticated route.
async fn probe(bearer: &str) -> Result<(), ApiError> {
    Session::with_token(bearer)
        .get_json::<Vec<HourCount>>("stats/issuance?hours=1")
        .await
        .map(|_| ())
}

/// "Sign in with Cognito": leaves for the hosted UI (authorization code with PKCE).
#[component]
fn CognitoButton(
    provider: OidcProvider,
    failure: RwSignal<Option<SignInFailure>>,
) -> impl IntoView {
    let start = move |_| match oidc::begin(&provider) {
        Ok(url) => {
            if let Some(window) = web_sys::window() {
                let _ = window.location().assign(&url);
            }
        }
        Err(f) => failure.set(Some(f)),
    };
    view! {
        <button id="sign-in-oidc" class="cognito" type="button" on:click=start>"Sign in with Cognito"</button>
    }
}

/// The admin token form. A token the service accepts is kept in `sessionStorage` (this
/// tab only) and signs in; a refused one says so and keeps nothing.
#[component]
fn TokenForm(session: Session) -> impl IntoView {
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
            let answer = probe(&candidate).await;
            checking.set(false);
            match answer {
                Ok(()) => session.sign_in(candidate),
                Err(e) if e.is_unauthorized() => error.set(Some(ApiError {
                    message: "The service refused this token. `provisioner admin token` prints the current one.".into(),
                    ..e
                })),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
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
    }
}
