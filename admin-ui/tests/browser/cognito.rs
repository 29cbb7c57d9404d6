//! Sign-in through Cognito's hosted UI: the PKCE pieces against RFC 7636's own example,
//! the `state` check, and the return from the hosted UI driven through the sign-in page
//! with the token endpoint answered by the fake `fetch`.

use provisioner_admin_ui::api::{LOGOUT_KEY, SESSION_EXPIRED};
use provisioner_admin_ui::oidc::{
    self, check_return, code_challenge, code_verifier, OidcProvider, Pending, Return, PENDING_KEY,
};

use super::*;

/// A service offering both: the hosted UI (on a domain the fake `fetch` answers) and
/// the admin token.
const BOTH: &str = r#"{"token":true,"oidc":{"authorizeUrl":"https://auth.example.test/oauth2/authorize","tokenUrl":"https://auth.example.test/oauth2/token","logoutUrl":"https://auth.example.test/logout","clientId":"client-123","scope":"openid email"}}"#;
/// The hosted UI only.
const COGNITO_ONLY: &str = r#"{"token":false,"oidc":{"authorizeUrl":"https://auth.example.test/oauth2/authorize","tokenUrl":"https://auth.example.test/oauth2/token","logoutUrl":"https://auth.example.test/logout","clientId":"client-123","scope":"openid"}}"#;
/// The token endpoint's answer (the ID token is opaque to the dashboard).
const TOKENS: &str = r#"{"id_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln","access_token":"a","token_type":"Bearer","expires_in":3600}"#;
const ID_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";

fn provider() -> OidcProvider {
    let options: oidc::SignInOptions = serde_json::from_str(BOTH).unwrap();
    options.oidc.unwrap()
}

fn storage() -> web_sys::Storage {
    web_sys::window()
        .unwrap()
        .session_storage()
        .unwrap()
        .unwrap()
}

/// Puts `query` in the address bar (same path: the test page stays where it is).
fn set_query(query: &str) {
    let window = web_sys::window().unwrap();
    let path = window.location().pathname().unwrap();
    window
        .history()
        .unwrap()
        .replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}{query}")))
        .unwrap();
}

fn address_query() -> String {
    web_sys::window().unwrap().location().search().unwrap()
}

fn keep_pending(state: &str, verifier: &str) {
    let pending = Pending {
        state: state.into(),
        verifier: verifier.into(),
    };
    storage()
        .set_item(PENDING_KEY, &serde_json::to_string(&pending).unwrap())
        .unwrap();
}

fn origin() -> String {
    web_sys::window().unwrap().location().origin().unwrap()
}

#[wasm_bindgen_test]
fn the_s256_challenge_is_rfc_7636_appendix_b() {
    // given the 32 octets of RFC 7636 Appendix B
    let octets = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37,
        77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];

    // when they make a verifier, and the verifier its challenge
    let verifier = code_verifier(&octets);
    let challenge = code_challenge(&verifier);

    // then both are the RFC's
    assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

#[wasm_bindgen_test]
fn verifiers_are_43_url_safe_characters_and_never_repeat() {
    let a = oidc::random_string().unwrap();
    let b = oidc::random_string().unwrap();
    assert_eq!(a.len(), 43, "{a}");
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_ne!(a, b);
}

#[wasm_bindgen_test]
fn the_state_must_be_the_one_this_tab_sent() {
    let pending = Pending {
        state: "s-1".into(),
        verifier: "v".into(),
    };
    let answer = |state: Option<&str>| Return::Code {
        code: "c0de".into(),
        state: state.map(str::to_owned),
    };
    assert_eq!(
        check_return(answer(Some("s-1")), Some(&pending)).unwrap(),
        "c0de"
    );
    assert_eq!(
        check_return(answer(Some("s-2")), Some(&pending))
            .unwrap_err()
            .code,
        "state_mismatch"
    );
    assert_eq!(
        check_return(answer(None), Some(&pending)).unwrap_err().code,
        "state_mismatch"
    );
    assert_eq!(
        check_return(answer(Some("s-1")), None).unwrap_err().code,
        "no_pending_sign_in"
    );
    let refused = Return::Refused {
        error: "access_denied".into(),
        description: None,
    };
    assert_eq!(
        check_return(refused, Some(&pending)).unwrap_err().code,
        "access_denied"
    );
}

#[wasm_bindgen_test]
fn beginning_keeps_the_verifier_and_sends_only_its_challenge() {
    // given no sign-in under way
    clear_session();

    // when a sign-in begins
    let url = oidc::begin(&provider()).unwrap();

    // then the authorize URL carries the code flow, the challenge of the verifier kept
    // in this tab, and the state kept, never the verifier itself
    let kept: Pending =
        serde_json::from_str(&storage().get_item(PENDING_KEY).unwrap().unwrap()).unwrap();
    let parsed = web_sys::Url::new(&url).unwrap();
    assert_eq!(
        format!("{}{}", parsed.origin(), parsed.pathname()),
        "https://auth.example.test/oauth2/authorize"
    );
    let query = parsed.search_params();
    let param = |name: &str| query.get(name).unwrap_or_default();
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("client_id"), "client-123");
    assert_eq!(param("redirect_uri"), format!("{}/", origin()));
    assert_eq!(param("scope"), "openid email");
    assert_eq!(param("state"), kept.state);
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(param("code_challenge"), code_challenge(&kept.verifier));
    assert!(!url.contains(&kept.verifier));
    clear_session();
}

#[wasm_bindgen_test]
async fn the_sign_in_page_offers_cognito_beside_the_token_or_alone() {
    clear_session();
    fake_fetch(&[(SIGN_IN_JSON, 200, BOTH)]);
    let (root, mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the Cognito button", || {
        find(&root, "#sign-in-oidc").is_some()
    })
    .await;
    assert!(text(&root).contains("Sign in with Cognito"));
    assert!(
        find(&root, "#token").is_some(),
        "token: true keeps the form"
    );
    drop(mounted);

    fake_fetch(&[(SIGN_IN_JSON, 200, COGNITO_ONLY)]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the Cognito button", || {
        find(&root, "#sign-in-oidc").is_some()
    })
    .await;
    assert!(
        find(&root, "#token").is_none(),
        "token: false hides the form"
    );
}

#[wasm_bindgen_test]
async fn returning_from_cognito_exchanges_the_code_and_signs_in_with_the_id_token() {
    // given a sign-in begun in this tab, and Cognito sending the browser back
    clear_session();
    keep_pending("st4te", "the-verifier-kept-in-this-tab-0123456789abc");
    set_query("?code=c0de-1&state=st4te");
    fake_fetch(&[
        (SIGN_IN_JSON, 200, BOTH),
        ("/oauth2/token", 200, TOKENS),
        ("stats/issuance", 200, "[]"),
        (
            "/admin/api/devices",
            200,
            r#"{"items":[],"nextCursor":null}"#,
        ),
    ]);

    // when the dashboard loads
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });

    // then it is signed in with the ID token, the code gone from the address bar
    until("the navigation", || find(&root, "nav").is_some()).await;
    assert_eq!(session_token().as_deref(), Some(ID_TOKEN));
    assert_eq!(address_query(), "");
    assert_eq!(storage().get_item(PENDING_KEY).unwrap(), None, "spent");
    let logout = storage().get_item(LOGOUT_KEY).unwrap().unwrap();
    let redirect = format!("{}/", origin());
    assert_eq!(
        logout,
        format!(
            "https://auth.example.test/logout?client_id=client-123&logout_uri={}",
            String::from(js_sys::encode_uri_component(&redirect))
        )
    );

    // and the exchange was the code flow's, with the verifier
    let sent = requests();
    let exchange = sent
        .iter()
        .find(|r| r.1 == "https://auth.example.test/oauth2/token")
        .expect("a token request");
    assert_eq!(exchange.0, "POST");
    let form = web_sys::UrlSearchParams::new_with_str(&exchange.2).unwrap();
    let field = |name: &str| form.get(name).unwrap_or_default();
    assert_eq!(field("grant_type"), "authorization_code");
    assert_eq!(field("client_id"), "client-123");
    assert_eq!(field("code"), "c0de-1");
    assert_eq!(field("redirect_uri"), redirect);
    assert_eq!(
        field("code_verifier"),
        "the-verifier-kept-in-this-tab-0123456789abc"
    );
    assert!(exchange.3.is_empty(), "no bearer to the identity provider");
    // The service was asked with the ID token as the bearer.
    assert!(sent
        .iter()
        .any(|r| r.1.contains("/admin/api/") && r.3 == format!("Bearer {ID_TOKEN}")));
    clear_session();
}

#[wasm_bindgen_test]
async fn a_state_mismatch_is_refused_and_the_code_never_sent() {
    clear_session();
    keep_pending("mine", "v");
    set_query("?code=stolen&state=theirs");
    fake_fetch(&[(SIGN_IN_JSON, 200, BOTH), ("/oauth2/token", 200, TOKENS)]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the failure", || find(&root, ".sign-in-failure").is_some()).await;
    let failure = find(&root, ".sign-in-failure").unwrap();
    assert_eq!(
        failure.get_attribute("data-code").as_deref(),
        Some("state_mismatch")
    );
    assert!(text(&root).contains("does not belong to the sign-in started in this tab"));
    assert!(!requests().iter().any(|r| r.1.contains("/oauth2/token")));
    assert_eq!(session_token(), None);
    assert_eq!(address_query(), "");
    assert!(find(&root, "#sign-in-oidc").is_some(), "sign in again");
}

#[wasm_bindgen_test]
async fn a_refusal_at_cognito_is_shown_in_words() {
    clear_session();
    keep_pending("s", "v");
    set_query("?error=access_denied&error_description=User%20cancelled%20the%20sign-in");
    fake_fetch(&[(SIGN_IN_JSON, 200, BOTH)]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the failure", || find(&root, ".sign-in-failure").is_some()).await;
    let shown = find(&root, ".sign-in-failure")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(shown.contains("Cognito did not sign you in"), "{shown}");
    assert!(shown.contains("User cancelled the sign-in"), "{shown}");
    assert_eq!(address_query(), "");
    assert!(find(&root, "#token").is_some(), "the token form stays");
}

#[wasm_bindgen_test]
async fn a_token_endpoint_refusal_is_a_sentence_not_its_json() {
    clear_session();
    keep_pending("s", "v");
    set_query("?code=used&state=s");
    fake_fetch(&[
        (SIGN_IN_JSON, 200, BOTH),
        (
            "/oauth2/token",
            400,
            r#"{"error":"invalid_grant","error_description":"code already used"}"#,
        ),
    ]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the failure", || find(&root, ".sign-in-failure").is_some()).await;
    let shown = text(&root);
    assert!(shown.contains("invalid_grant"), "{shown}");
    assert!(shown.contains("expired or was already used"), "{shown}");
    assert!(
        !shown.contains('{') && !shown.contains("error_description"),
        "{shown}"
    );
    assert_eq!(session_token(), None);
}

#[wasm_bindgen_test]
async fn an_id_token_the_service_refuses_is_not_kept() {
    clear_session();
    keep_pending("s", "v");
    set_query("?code=c&state=s");
    fake_fetch(&[
        (SIGN_IN_JSON, 200, BOTH),
        ("/oauth2/token", 200, TOKENS),
        (
            "stats/issuance",
            401,
            r#"{"error":"invalid_token","reason":"missing_group","message":"the user is not in the group admins"}"#,
        ),
    ]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the failure", || find(&root, ".sign-in-failure").is_some()).await;
    assert!(text(&root)
        .contains("the service refused the ID token: the user is not in the group admins"));
    assert_eq!(session_token(), None);
    assert!(find(&root, "nav").is_none());
}

#[wasm_bindgen_test]
async fn an_expired_session_returns_to_sign_in_saying_so() {
    // given a tab signed in with an ID token that has since expired
    clear_session();
    storage().set_item(TOKEN_KEY, ID_TOKEN).unwrap();
    storage()
        .set_item(LOGOUT_KEY, "https://auth.example.test/logout?client_id=c")
        .unwrap();
    fake_fetch(&[
        (SIGN_IN_JSON, 200, BOTH),
        (
            "/admin/api/",
            401,
            r#"{"error":"invalid_token","reason":"expired","message":"the token has expired"}"#,
        ),
    ]);

    // when a page asks the service
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });

    // then the sign-in page says the session expired, with the bearer forgotten
    until("the sign-in page", || {
        find(&root, "#sign-in-oidc").is_some()
    })
    .await;
    assert!(text(&root).contains(SESSION_EXPIRED));
    assert_eq!(session_token(), None);
    assert_eq!(storage().get_item(LOGOUT_KEY).unwrap(), None);
}
