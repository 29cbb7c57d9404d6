//! The dashboard's components in headless Chromium (wasm-bindgen-test): mounted into the
//! page, driven through the DOM, with the admin API answered by a stand-in `fetch` that
//! records what was sent. Run with
//! `cargo test -p provisioner-admin-ui --target wasm32-unknown-unknown` and the runner
//! scripts/test.sh sets (`CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner`,
//! `CHROMEDRIVER=/usr/bin/chromedriver`).

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop loudly on broken fixtures

use js_sys::{Array, Function, Reflect};
use leptos::prelude::*;
use provisioner_admin_ui::api::{HourCount, Session, TOKEN_KEY};
use provisioner_admin_ui::app::Dashboard;
use provisioner_admin_ui::chart::IssuanceChart;
use provisioner_admin_ui::manifest_check::check_manifest;
use provisioner_admin_ui::pages::certificates::CertificatesPage;
use provisioner_admin_ui::pages::devices::DevicesPage;
use provisioner_admin_ui::pages::import::CheckReport;
use provisioner_admin_ui::ui::sleep;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement, HtmlInputElement};

wasm_bindgen_test_configure!(run_in_browser);

// Sign-in through Cognito's hosted UI (PKCE), and the views of the AWS backend.
#[path = "browser/aws.rs"]
mod aws;
#[path = "browser/cognito.rs"]
mod cognito;
// The CA page's revocation lists (age, next update, expiry warning).
#[path = "browser/crls.rs"]
mod crls;

/// `GET /admin/sign-in.json`, as the fake `fetch` matches it.
const SIGN_IN_JSON: &str = "/admin/sign-in.json";
/// The sign-in options of a service with the admin token only.
const TOKEN_ONLY: &str = r#"{"token":true,"oidc":null}"#;

/// The P-256 generator point, SEC1 uncompressed hex: a valid device key.
const KEY_HEX: &str = "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";

fn document() -> web_sys::Document {
    web_sys::window().unwrap().document().unwrap()
}

/// A fresh element to mount into, and its handle (dropping the handle unmounts).
fn mount<V: IntoView + 'static>(
    view: impl FnOnce() -> V + 'static,
) -> (HtmlElement, Box<dyn std::any::Any>) {
    let container: HtmlElement = document().create_element("div").unwrap().unchecked_into();
    document().body().unwrap().append_child(&container).unwrap();
    let handle = leptos::mount::mount_to(container.clone(), view);
    (container, Box::new(handle))
}

fn find(root: &HtmlElement, selector: &str) -> Option<Element> {
    root.query_selector(selector).unwrap()
}

fn find_all(root: &HtmlElement, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<Element>().ok())
        .collect()
}

fn text(root: &HtmlElement) -> String {
    root.text_content().unwrap_or_default()
}

/// Waits (up to 5 s) until `ready` holds; fails the test otherwise.
async fn until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..250 {
        if ready() {
            return;
        }
        sleep(20).await;
    }
    panic!("timed out waiting for {what}");
}

/// Replaces `window.fetch`: each route is (URL fragment, status, body); the first whose
/// fragment the URL contains answers; anything else is 404 text. Every request is
/// recorded in `window.__requests` as `{method, url, body}`.
fn fake_fetch(routes: &[(&str, u16, &str)]) {
    let routes: Vec<serde_json::Value> = routes
        .iter()
        .map(|(fragment, status, body)| serde_json::json!([fragment, status, body]))
        .collect();
    let source = format!(
        "const routes = {};
         return (async () => {{
           const request = new Request(input, init);
           const body = request.method === 'GET' ? '' : await request.clone().text();
           window.__requests.push({{ method: request.method, url: request.url, body,
                                     authorization: request.headers.get('authorization') }});
           for (const [fragment, status, answer] of routes) {{
             if (request.url.includes(fragment)) {{
               return new Response(answer, {{ status, headers: {{ 'content-type': 'application/json' }} }});
             }}
           }}
           return new Response('no such route in the test', {{ status: 404 }});
         }})();",
        serde_json::Value::Array(routes)
    );
    let window = web_sys::window().unwrap();
    Reflect::set(&window, &"__requests".into(), &Array::new()).unwrap();
    let fetch = Function::new_with_args("input, init", &source);
    Reflect::set(&window, &"fetch".into(), &fetch).unwrap();
}

/// The requests the stand-in received: (method, url, body, authorization).
fn requests() -> Vec<(String, String, String, String)> {
    let window = web_sys::window().unwrap();
    let list: Array = Reflect::get(&window, &"__requests".into())
        .unwrap()
        .unchecked_into();
    list.iter()
        .map(|r| {
            let field = |name: &str| {
                Reflect::get(&r, &JsValue::from_str(name))
                    .unwrap()
                    .as_string()
                    .unwrap_or_default()
            };
            (
                field("method"),
                field("url"),
                field("body"),
                field("authorization"),
            )
        })
        .collect()
}

fn type_into(input: &Element, value: &str) {
    let input: HtmlInputElement = input.clone().unchecked_into();
    input.set_value(value);
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    input
        .dispatch_event(&web_sys::Event::new_with_event_init_dict("input", &init).unwrap())
        .unwrap();
}

fn click(root: &HtmlElement, selector: &str) {
    let element: HtmlElement = find(root, selector)
        .unwrap_or_else(|| panic!("no {selector}"))
        .unchecked_into();
    element.click();
}

fn session_token() -> Option<String> {
    web_sys::window()
        .unwrap()
        .session_storage()
        .unwrap()
        .unwrap()
        .get_item(TOKEN_KEY)
        .unwrap()
}

fn clear_session() {
    web_sys::window()
        .unwrap()
        .session_storage()
        .unwrap()
        .unwrap()
        .clear()
        .unwrap();
}

#[wasm_bindgen_test]
fn the_manifest_check_marks_a_bad_row_invalid_with_its_reason() {
    // given a manifest with one good row and one key that is not a key
    let csv = format!("device_id,public_key\nsensor-01,{KEY_HEX}\nsensor-02,04deadbeef\n");
    let check = check_manifest("fleet.csv", csv.as_bytes());

    // when its report is shown
    let (root, _mounted) = mount(move || view! { <CheckReport check=check/> });

    // then the bad row is marked invalid, with the reader's reason, and the good one valid
    let invalid = find_all(&root, "tr.row-invalid");
    assert_eq!(invalid.len(), 1);
    let row = invalid[0].text_content().unwrap();
    assert!(row.contains("sensor-02"), "{row}");
    assert!(row.contains("invalid"), "{row}");
    assert!(row.contains("(invalid_public_key)"), "{row}");
    assert_eq!(find_all(&root, "tr.row-valid").len(), 1);
    assert!(text(&root).contains("1 valid"));
    assert!(text(&root).contains("1 invalid"));
}

#[wasm_bindgen_test]
async fn a_dropped_manifest_is_checked_first_then_only_its_valid_rows_go_to_the_dry_run() {
    // given the devices page, an empty registry, and a dry run that finds one new device
    let summary = r#"{"imported":1,"unchanged":0,"replaced":0,"conflicts":0,"invalid":0,"errors":[],"written":false,"atomic":true}"#;
    fake_fetch(&[
        ("devices/import", 200, summary),
        (
            "/admin/api/devices?",
            200,
            r#"{"items":[],"nextCursor":null}"#,
        ),
    ]);
    let session = Session::with_token("t0ken");
    let (root, _mounted) = mount(move || view! { <DevicesPage session=session/> });
    until("the empty state", || text(&root).contains("No devices yet")).await;

    // when a manifest with a bad row is dropped on the drop zone
    let csv = format!("sensor-01,{KEY_HEX}\nsensor 02,{KEY_HEX}\n");
    let parts = Array::of1(&JsValue::from_str(&csv));
    let file = web_sys::File::new_with_str_sequence(&parts, "fleet.csv").unwrap();
    let transfer = web_sys::DataTransfer::new().unwrap();
    transfer.items().add_with_file(&file).unwrap();
    let init = web_sys::DragEventInit::new();
    init.set_bubbles(true);
    init.set_cancelable(true);
    init.set_data_transfer(Some(&transfer));
    let drop = web_sys::DragEvent::new_with_event_init_dict("drop", &init).unwrap();
    find(&root, ".dropzone")
        .unwrap()
        .dispatch_event(&drop)
        .unwrap();

    // then the bad device id is shown invalid, and the dry run received the valid row only
    until("the dry run's answer", || text(&root).contains("Dry run")).await;
    let invalid = find_all(&root, "tr.row-invalid");
    assert_eq!(invalid.len(), 1);
    assert!(invalid[0]
        .text_content()
        .unwrap()
        .contains("invalid_device_id"));
    let sent: Vec<_> = requests()
        .into_iter()
        .filter(|r| r.1.contains("devices/import"))
        .collect();
    assert_eq!(sent.len(), 1);
    let (method, url, body, authorization) = &sent[0];
    assert_eq!(method, "POST");
    assert!(url.contains("dryRun=true"), "{url}");
    assert!(body.starts_with("sensor-01,MFkw"), "{body}");
    assert!(!body.contains("sensor 02"), "{body}");
    assert_eq!(authorization, "Bearer t0ken");
    assert!(find(&root, "#run-import").is_some());
}

#[wasm_bindgen_test]
fn the_chart_draws_one_bar_per_hour() {
    // given 24 hours, two of them busy
    let hours: Vec<HourCount> = (0..24)
        .map(|h| HourCount {
            hour: format!("2026-11-28T{h:02}:00:00Z"),
            allow: if h == 5 { 7 } else { 0 },
            deny: if h == 9 { 3 } else { 0 },
        })
        .collect();

    // when drawn
    let (root, _mounted) = mount(move || view! { <IssuanceChart hours=hours/> });

    // then there are 24 bars, the busiest fills the plot, and the caption sums them
    let bars = find_all(&root, "svg g.bar");
    assert_eq!(bars.len(), 24);
    assert_eq!(bars[5].get_attribute("data-allow").as_deref(), Some("7"));
    let tallest: f64 = bars[5]
        .query_selector("rect.bar-allow")
        .unwrap()
        .unwrap()
        .get_attribute("height")
        .unwrap()
        .parse()
        .unwrap();
    let deny: f64 = bars[9]
        .query_selector("rect.bar-deny")
        .unwrap()
        .unwrap()
        .get_attribute("height")
        .unwrap()
        .parse()
        .unwrap();
    assert!(tallest > 0.0 && (deny / tallest - 3.0 / 7.0).abs() < 1e-6);
    assert!(text(&root).contains("7 allowed"));
    assert!(text(&root).contains("3 denied"));
}

#[wasm_bindgen_test]
async fn signing_in_with_the_token_stores_it_for_this_tab_only() {
    // given no session, and a service that takes the token "right"
    clear_session();
    fake_fetch(&[
        (SIGN_IN_JSON, 200, TOKEN_ONLY),
        ("stats/issuance", 200, "[]"),
        (
            "/admin/api/devices",
            200,
            r#"{"items":[],"nextCursor":null}"#,
        ),
    ]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the sign-in form", || find(&root, "form #token").is_some()).await;
    assert!(
        find(&root, "#sign-in-oidc").is_none(),
        "no Cognito button without oidc"
    );

    // when the token is typed and the form submitted
    type_into(&find(&root, "#token").unwrap(), "right");
    click(&root, "form button[type=submit]");

    // then the dashboard opens, and the token is in sessionStorage
    until("the navigation", || find(&root, "nav").is_some()).await;
    assert_eq!(session_token().as_deref(), Some("right"));
    assert!(requests()
        .iter()
        .any(|r| r.1.contains("stats/issuance") && r.3 == "Bearer right"));
    clear_session();
}

#[wasm_bindgen_test]
async fn a_refused_token_is_not_kept_and_says_why() {
    clear_session();
    fake_fetch(&[
        (SIGN_IN_JSON, 200, TOKEN_ONLY),
        (
            "stats/issuance",
            401,
            r#"{"error":"unauthorized","message":"the bearer token is not the admin token"}"#,
        ),
    ]);
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });
    until("the sign-in form", || find(&root, "#token").is_some()).await;
    type_into(&find(&root, "#token").unwrap(), "wrong");
    click(&root, "form button[type=submit]");
    until("the refusal", || find(&root, ".state.error").is_some()).await;
    assert!(text(&root).contains("The service refused this token"));
    assert!(find(&root, "nav").is_none());
    assert_eq!(session_token(), None);
}

#[wasm_bindgen_test]
async fn errors_are_shown_as_sentences_never_as_the_raw_answer() {
    // given a busy registry (the service's JSON error) ...
    fake_fetch(&[(
        "/admin/api/devices",
        503,
        r#"{"error":"registry_busy","message":"the registry is busy with another write (an import?); retry shortly"}"#,
    )]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <DevicesPage session=session/> });
    until("the error", || find(&root, ".state.error").is_some()).await;
    let shown = find(&root, ".state.error").unwrap().text_content().unwrap();
    assert!(
        shown.contains("the registry is busy with another write"),
        "{shown}"
    );
    assert!(shown.contains("Busy, retry shortly"), "{shown}");
    assert!(!text(&root).contains('{') && !text(&root).contains("registry_busy"));
    drop(_mounted);

    // ... and a proxy's HTML page for a 502
    fake_fetch(&[(
        "/admin/api/certificates",
        502,
        "<html><body>Bad gateway</body></html>",
    )]);
    let (root, _mounted) = mount(move || view! { <CertificatesPage session=session/> });
    until("the error", || find(&root, ".state.error").is_some()).await;
    let shown = text(&root);
    assert!(shown.contains("answered HTTP 502"), "{shown}");
    assert!(
        !shown.contains("<html>") && !shown.contains("Bad gateway"),
        "{shown}"
    );
}

#[wasm_bindgen_test]
async fn a_401_on_any_page_sends_the_user_back_to_sign_in() {
    // given a signed-in tab whose token was rotated on the server meanwhile
    clear_session();
    web_sys::window()
        .unwrap()
        .session_storage()
        .unwrap()
        .unwrap()
        .set_item(TOKEN_KEY, "old")
        .unwrap();
    fake_fetch(&[
        (SIGN_IN_JSON, 200, TOKEN_ONLY),
        (
            "/admin/api/",
            401,
            r#"{"error":"unauthorized","message":"rotated"}"#,
        ),
    ]);

    // when the dashboard loads its first page
    let (root, _mounted) = mount(|| view! { <Dashboard session=Session::restore()/> });

    // then it is back at sign-in, saying why, with the token forgotten
    until("the sign-in form", || find(&root, "#token").is_some()).await;
    assert!(text(&root).contains("Sign in again"));
    assert_eq!(session_token(), None);
}

#[wasm_bindgen_test]
async fn revoking_asks_for_a_reason_and_sends_it() {
    // given one active certificate
    let certificate = r#"{"certificateId":"ab12","deviceId":"sensor-01","serial":"0f","issuer":"e99082bf12ad60b8","publicKey":"MFkw","issuedAt":"2026-11-28T17:00:00Z","notBefore":"2026-11-28T16:55:00Z","notAfter":"2027-11-28T17:00:00Z","status":"ACTIVE","revokedAt":null,"revocationReason":null}"#;
    let list = format!(r#"{{"items":[{certificate}],"nextCursor":null}}"#);
    let revoked = format!(
        r#"{{"certificate":{},"alreadyRevoked":false,"crlRegenerated":true}}"#,
        certificate.replace("ACTIVE", "REVOKED")
    );
    fake_fetch(&[
        ("/revoke", 200, &revoked),
        ("certificates/ab12", 200, certificate),
        ("/admin/api/certificates?", 200, &list),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <CertificatesPage session=session/> });
    until("the list", || find(&root, "tr.clickable").is_some()).await;

    // when it is opened, and revoked for cessation of operation
    click(&root, "tr.clickable");
    until("the details", || {
        text(&root).contains("SHA-256 fingerprint")
    })
    .await;
    assert!(text(&root).contains("Download PEM"));
    click(&root, "button.danger");
    until("the confirmation", || {
        find(&root, "#revoke-reason").is_some()
    })
    .await;
    let select: web_sys::HtmlSelectElement =
        find(&root, "#revoke-reason").unwrap().unchecked_into();
    select.set_value("cessationOfOperation");
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    select
        .dispatch_event(&web_sys::Event::new_with_event_init_dict("change", &init).unwrap())
        .unwrap();
    click(&root, "#confirm-revoke");

    // then the revocation was sent with that reason
    until("the revocation", || {
        requests().iter().any(|r| r.1.ends_with("/revoke"))
    })
    .await;
    let sent = requests()
        .into_iter()
        .find(|r| r.1.ends_with("/revoke"))
        .unwrap();
    assert_eq!(sent.0, "POST");
    assert!(sent.1.ends_with("/admin/api/certificates/ab12/revoke"));
    let body: serde_json::Value = serde_json::from_str(&sent.2).unwrap();
    assert_eq!(body["reason"], "cessationOfOperation");
    // Done everywhere (no `propagated: false`): no warning.
    sleep(100).await;
    assert!(find(&root, ".partly-revoked").is_none());
}

#[wasm_bindgen_test]
async fn disabling_offers_to_revoke_the_certificates_and_shows_what_was_revoked() {
    // given an enabled device
    let device = r#"{"deviceId":"sensor-01","publicKey":"MFkw","keyFingerprint":"9f86d081884c7d65","enabled":true,"sourceManifest":"fleet.csv","importedAt":"2026-11-28T17:00:00Z"}"#;
    let certificate = r#"{"certificateId":"ab12cd34ef56ab12cd34","deviceId":"sensor-01","serial":"0f","issuer":"e99082bf12ad60b8","publicKey":"MFkw","issuedAt":"2026-11-28T17:00:00Z","notBefore":"2026-11-28T16:55:00Z","notAfter":"2027-11-28T17:00:00Z","status":"REVOKED","revokedAt":"2026-11-29T08:00:00Z","revocationReason":"keyCompromise"}"#;
    let disabled = format!(
        r#"{},"revokedCertificates":[{{"certificate":{certificate},"alreadyRevoked":false,"propagated":true,"crlRegenerated":true}}]}}"#,
        device
            .replace(r#""enabled":true"#, r#""enabled":false"#)
            .trim_end_matches('}')
    );
    fake_fetch(&[
        ("/disable", 200, &disabled),
        (
            "/admin/api/devices?",
            200,
            &format!(r#"{{"items":[{device}],"nextCursor":null}}"#),
        ),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <DevicesPage session=session/> });
    until("the list", || text(&root).contains("sensor-01")).await;

    // when Disable is clicked: nothing is sent yet, the confirmation offers to revoke
    click(&root, "table.devices button");
    until("the confirmation", || {
        find(&root, "#revoke-certificates").is_some()
    })
    .await;
    assert!(!requests().iter().any(|r| r.1.contains("/disable")));
    let checkbox: HtmlInputElement = find(&root, "#revoke-certificates")
        .unwrap()
        .unchecked_into();
    assert!(!checkbox.checked());
    checkbox.click();
    click(&root, "#confirm-disable");

    // then the disable is sent with {"revoke": true}, and the result names the revoked
    // certificate with its reason
    until("the result", || find(&root, ".disable-result").is_some()).await;
    let sent = requests()
        .into_iter()
        .find(|r| r.1.contains("/disable"))
        .unwrap();
    assert_eq!(sent.0, "POST");
    assert!(
        sent.1.ends_with("/admin/api/devices/sensor-01/disable"),
        "{}",
        sent.1
    );
    let body: serde_json::Value = serde_json::from_str(&sent.2).unwrap();
    assert_eq!(body, serde_json::json!({ "revoke": true }));
    let result = find(&root, ".disable-result")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(
        result.contains("sensor-01 disabled and its certificate revoked"),
        "{result}"
    );
    assert!(result.contains("ab12cd34ef56ab12"), "{result}");
    assert!(result.contains("keyCompromise"), "{result}");
    assert!(find(&root, ".partly-revoked").is_none());
    assert!(find(&root, "#revoke-certificates").is_none());
}

#[wasm_bindgen_test]
async fn disabling_without_the_checkbox_sends_no_body() {
    // given an enabled device
    let device = r#"{"deviceId":"sensor-02","publicKey":"MFkw","keyFingerprint":"9f86d081884c7d65","enabled":true,"sourceManifest":null,"importedAt":"2026-11-28T17:00:00Z"}"#;
    let disabled = device.replace(r#""enabled":true"#, r#""enabled":false"#);
    fake_fetch(&[
        ("/disable", 200, &disabled),
        (
            "/admin/api/devices?",
            200,
            &format!(r#"{{"items":[{device}],"nextCursor":null}}"#),
        ),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <DevicesPage session=session/> });
    until("the list", || text(&root).contains("sensor-02")).await;

    // when it is disabled without asking to revoke
    click(&root, "table.devices button");
    until("the confirmation", || {
        find(&root, "#confirm-disable").is_some()
    })
    .await;
    click(&root, "#confirm-disable");

    // then the request has no body, and the result says only that it is disabled
    until("the result", || find(&root, ".disable-result").is_some()).await;
    let sent = requests()
        .into_iter()
        .find(|r| r.1.contains("/disable"))
        .unwrap();
    assert_eq!(sent.2, "");
    let result = find(&root, ".disable-result")
        .unwrap()
        .text_content()
        .unwrap();
    assert_eq!(result.trim(), "Device sensor-02 disabled.");
}
