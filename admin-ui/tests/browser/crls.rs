//! The CA page's revocation lists, from a `GET ca` fixture: each CRL's age and next
//! update, and the warning when one is within a day of expiry.

use provisioner_admin_ui::pages::ca::CaPage;

use super::*;

/// A local CA overview whose issuing CA's CRL is fresh and whose root CRL expires in
/// `root_expires_in` seconds.
fn overview_with_crls(root_expires_in: i64) -> String {
    serde_json::json!({
        "backend": "local", "canCreateNextCa": true, "rootKeyLocal": true, "pendingCsr": null,
        "previous": [],
        "current": {
            "id": "ca-1", "arn": null, "subject": "CN=Issuing CA", "serial": "01",
            "certificateId": "ab", "notBefore": "2026-01-01T00:00:00Z",
            "notAfter": "2031-01-01T00:00:00Z", "state": "current", "revokedAt": null,
            "chainPem": null
        },
        "crls": [
            { "issuer": "ca-1", "thisUpdate": "2026-12-05T10:00:00Z", "ageSecs": 120,
              "nextUpdate": "2026-12-12T10:00:00Z", "expiresInSecs": 604_680,
              "expiresSoon": false, "revoked": 3 },
            { "issuer": "root", "thisUpdate": "2026-11-28T12:00:00Z", "ageSecs": 604_800 - root_expires_in,
              "nextUpdate": "2026-12-05T12:00:00Z", "expiresInSecs": root_expires_in,
              "expiresSoon": root_expires_in < 86_400, "revoked": 0 }
        ]
    })
    .to_string()
}

async fn ca_page(overview: &str) -> (HtmlElement, Box<dyn std::any::Any>) {
    fake_fetch(&[
        (
            "ca/rotation",
            404,
            r#"{"error":"no_rotation","message":"no rotation ran"}"#,
        ),
        ("/admin/api/ca", 200, overview),
    ]);
    let session = Session::with_token("t");
    let (root, mounted) = mount(move || view! { <CaPage session=session/> });
    until("the revocation lists", || {
        find(&root, ".crl-list").is_some()
    })
    .await;
    (root, mounted)
}

#[wasm_bindgen_test]
async fn each_crl_shows_when_it_was_signed_and_when_it_expires() {
    // given a CA whose CRLs are both comfortably valid
    let (root, _mounted) = ca_page(&overview_with_crls(5 * 86_400)).await;

    // then each has a row with its age and time left, and nothing warns
    let rows = find_all(&root, ".crl-list tbody tr");
    assert_eq!(rows.len(), 2);
    let issuing = rows[0].text_content().unwrap();
    assert!(issuing.contains("Issuing CA ca-1"), "{issuing}");
    assert!(
        issuing.contains("2026-12-05 10:00:00 UTC (2 min ago)"),
        "{issuing}"
    );
    assert!(
        issuing.contains("2026-12-12 10:00:00 UTC (in 6 d)"),
        "{issuing}"
    );
    assert!(rows[1].text_content().unwrap().contains("Root CA"));
    assert!(find(&root, ".crl-warning").is_none());
    assert!(find(&root, "tr.crl-expiring").is_none());
}

#[wasm_bindgen_test]
async fn a_crl_within_a_day_of_expiry_is_warned_about() {
    // given a root CRL that expires in 5 hours
    let (root, _mounted) = ca_page(&overview_with_crls(5 * 3_600)).await;

    // then a warning names it and its row stands out; the fresh one does not
    let warning = find(&root, ".crl-warning").expect("a warning");
    let words = warning.text_content().unwrap();
    assert!(
        words.contains("The CRL of Root CA expires in 5 h"),
        "{words}"
    );
    assert_eq!(find_all(&root, ".crl-warning").len(), 1);
    let expiring = find_all(&root, "tr.crl-expiring");
    assert_eq!(expiring.len(), 1);
    assert_eq!(
        expiring[0].get_attribute("data-issuer").as_deref(),
        Some("root")
    );
}

#[wasm_bindgen_test]
async fn an_expired_crl_says_devices_are_refused() {
    // given an issuing CRL past its next update by two hours
    let overview = overview_with_crls(-2 * 3_600);
    let (root, _mounted) = ca_page(&overview).await;

    // then the warning says it expired and what that does
    let words = find(&root, ".crl-warning").unwrap().text_content().unwrap();
    assert!(words.contains("expired 2 h ago"), "{words}");
    assert!(words.contains("refuse every device"), "{words}");
}
