//! The views only the AWS backend fills, rendered from fixtures shaped as the admin API
//! answers: rotation to a named ACM Private CA with its steps, the "Regions" section
//! and its retry, and a certificate's registrations per region.

use provisioner_admin_ui::api::Rotation;
use provisioner_admin_ui::pages::ca::{CaPage, RegionsPanel, RotationProgress};
use provisioner_admin_ui::pages::certificates::CertificateDetails;

use super::*;

const NEW_CA: &str =
    "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/2b3c4d5e-0000-4000-8000-000000000002";

fn ca_overview(backend: &str) -> String {
    let arn = if backend == "aws" {
        r#""arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/1a2b3c4d-0000-4000-8000-000000000001""#
    } else {
        "null"
    };
    format!(
        r#"{{"backend":"{backend}","canCreateNextCa":{local},"rootKeyLocal":{local},"pendingCsr":null,"previous":[],
            "current":{{"id":"1a2b3c4d-0000-4000-8000-000000000001","arn":{arn},"subject":"CN=Fleet Issuing CA 1","serial":"01",
            "certificateId":"ab","notBefore":"2026-01-01T00:00:00Z","notAfter":"2031-01-01T00:00:00Z","state":"current",
            "revokedAt":null,"chainPem":null}}}}"#,
        local = backend == "local"
    )
}

fn rotation(state: &str, step: &str, revoked: u64, admin_action: Option<&str>) -> String {
    serde_json::json!({
        "jobId": "rot-1", "state": state, "step": step, "finished": state != "running",
        "startedAt": "2026-11-28T20:00:00Z",
        "finishedAt": if state == "running" { None } else { Some("2026-11-28T20:05:00Z") },
        "oldCa": "1a2b3c4d-0000-4000-8000-000000000001", "newCa": "2b3c4d5e-0000-4000-8000-000000000002",
        "revoked": revoked, "total": 3, "resumed": false, "error": null, "adminAction": admin_action,
    })
    .to_string()
}

const UNFINISHED: &str = r#"{"items":[
    {"certificateId":"c1c1c1c1c1c1c1c1c1c1","region":"us-east-1","deviceId":"sensor-01","status":"FAILED","attempts":3,
     "lastError":"ThrottlingException: rate exceeded","updatedAt":"2026-11-28T19:58:00Z"},
    {"certificateId":"c2c2c2c2c2c2c2c2c2c2","region":"ap-southeast-2","deviceId":"sensor-02","status":"PENDING","attempts":0,
     "lastError":null,"updatedAt":"2026-11-28T19:59:00Z"}],"nextCursor":null}"#;

#[wasm_bindgen_test]
async fn on_aws_the_rotation_names_the_new_ca_by_its_arn() {
    // given the CA page of an AWS fleet, no rotation yet
    let overview = ca_overview("aws");
    fake_fetch(&[
        (
            "ca/rotation",
            404,
            r#"{"error":"no_rotation","message":"no rotation ran"}"#,
        ),
        ("/admin/api/ca", 200, &overview),
        (
            "/admin/api/registrations",
            200,
            r#"{"items":[],"nextCursor":null}"#,
        ),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <CaPage session=session/> });
    until("the ARN field", || find(&root, "#rotate-target").is_some()).await;
    assert!(text(&root).contains("arn:aws:acm-pca:eu-west-1:111122223333"));

    // when "rotate" is typed: still disabled without the ARN of the new CA
    // (the pauses let the view catch up, so "still disabled" is not read too early)
    type_into(&find(&root, "#rotate-confirm").unwrap(), "rotate");
    let button: web_sys::HtmlButtonElement = find(&root, "#rotate").unwrap().unchecked_into();
    sleep(100).await;
    assert!(button.disabled());
    type_into(&find(&root, "#rotate-target").unwrap(), "not an arn");
    sleep(100).await;
    assert!(button.disabled());
    type_into(&find(&root, "#rotate-target").unwrap(), NEW_CA);
    until("the button enabled", || !button.disabled()).await;

    // and the rotation runs to its end
    let running = rotation("running", "registering", 0, None);
    let finished = rotation(
        "finished",
        "done",
        3,
        Some("Delete the previous CA in ACM Private CA once no device uses it."),
    );
    fake_fetch(&[
        ("ca/rotate", 202, &running),
        ("ca/rotation", 200, &finished),
        ("/admin/api/ca", 200, &overview),
        (
            "/admin/api/registrations",
            200,
            r#"{"items":[],"nextCursor":null}"#,
        ),
    ]);
    button.click();

    // then the request named the CA, and the progress shows the step, the count against
    // the total as a bar, and what is left to do
    until("the finished rotation", || {
        find(&root, ".rotation[data-state=finished]").is_some()
    })
    .await;
    let sent = requests()
        .into_iter()
        .find(|r| r.1.ends_with("/admin/api/ca/rotate"))
        .unwrap();
    assert_eq!(sent.0, "POST");
    let body: serde_json::Value = serde_json::from_str(&sent.2).unwrap();
    assert_eq!(body, serde_json::json!({ "to": NEW_CA }));
    let progress = find(&root, ".rotation").unwrap().text_content().unwrap();
    assert!(progress.contains("3 of 3 certificates"), "{progress}");
    assert!(progress.contains("Done"), "{progress}");
    assert!(
        progress.contains("Delete the previous CA in ACM Private CA"),
        "{progress}"
    );
    let bar = find(&root, "progress.revocations").unwrap();
    assert_eq!(bar.get_attribute("max").as_deref(), Some("3"));
    assert_eq!(bar.get_attribute("value").as_deref(), Some("3"));
}

#[wasm_bindgen_test]
async fn locally_there_is_no_arn_to_give_nor_regions() {
    let overview = ca_overview("local");
    fake_fetch(&[
        (
            "ca/rotation",
            404,
            r#"{"error":"no_rotation","message":"no rotation ran"}"#,
        ),
        ("/admin/api/ca", 200, &overview),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <CaPage session=session/> });
    until("the rotate form", || {
        find(&root, "#rotate-confirm").is_some()
    })
    .await;
    assert!(find(&root, "#rotate-target").is_none());
    assert!(find(&root, ".regions").is_none());
    type_into(&find(&root, "#rotate-confirm").unwrap(), "rotate");
    let button: web_sys::HtmlButtonElement = find(&root, "#rotate").unwrap().unchecked_into();
    until("the button enabled", || !button.disabled()).await;
    assert!(!requests().iter().any(|r| r.1.contains("registrations")));
}

#[wasm_bindgen_test]
fn a_running_rotation_shows_its_step_and_how_far_it_is() {
    let rotation: Rotation =
        serde_json::from_str(&rotation("running", "revoking", 1, None)).unwrap();
    let (root, _mounted) = mount(move || view! { <RotationProgress rotation=rotation/> });
    let shown = text(&root);
    assert!(
        shown.contains("Revoking the previous CA's certificates"),
        "{shown}"
    );
    assert!(
        shown.contains("1 of 3 certificates of the previous CA revoked so far"),
        "{shown}"
    );
    let bar = find(&root, "progress.revocations").unwrap();
    assert_eq!(bar.get_attribute("value").as_deref(), Some("1"));
    assert!(find(&root, ".admin-action").is_none());
}

#[wasm_bindgen_test]
async fn the_regions_list_unfinished_registrations_and_retry_them() {
    // given two unfinished registrations
    fake_fetch(&[
        (
            "registrations/retry",
            200,
            r#"{"attempted":2,"done":1,"failed":1,"inFlight":0,"more":false}"#,
        ),
        ("/admin/api/registrations", 200, UNFINISHED),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || view! { <RegionsPanel session=session/> });
    until("the rows", || {
        find_all(&root, "table.registrations tbody tr").len() == 2
    })
    .await;

    // then each shows its region, status, attempts and last error
    let failed = find(&root, "tr.registration-failed")
        .unwrap()
        .text_content()
        .unwrap();
    for part in [
        "sensor-01",
        "us-east-1",
        "FAILED",
        "3",
        "ThrottlingException: rate exceeded",
    ] {
        assert!(failed.contains(part), "{part} in {failed}");
    }
    let pending = find(&root, "tr.registration-pending")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(
        pending.contains("ap-southeast-2") && pending.contains("PENDING"),
        "{pending}"
    );

    // when "Retry now" is pressed
    click(&root, "#retry-registrations");

    // then the retry was posted, its counts shown, and the list asked again
    until("the counts", || find(&root, ".retried").is_some()).await;
    assert_eq!(
        find(&root, ".retried").unwrap().text_content().unwrap(),
        "Retried 2: 1 done, 1 still failing."
    );
    let sent = requests();
    assert!(sent
        .iter()
        .any(|r| r.0 == "POST" && r.1.ends_with("/admin/api/registrations/retry")));
    until("the reload", || {
        requests()
            .iter()
            .filter(|r| r.0 == "GET" && r.1.contains("/admin/api/registrations?"))
            .count()
            == 2
    })
    .await;
}

#[wasm_bindgen_test]
async fn the_regions_say_so_when_nothing_waits_and_show_a_failure_in_words() {
    fake_fetch(&[(
        "/admin/api/registrations",
        200,
        r#"{"items":[],"nextCursor":null}"#,
    )]);
    let session = Session::with_token("t");
    let (root, mounted) = mount(move || view! { <RegionsPanel session=session/> });
    until("the empty state", || find(&root, ".state.empty").is_some()).await;
    assert!(text(&root).contains("Every certificate is registered in every region"));
    drop(mounted);

    fake_fetch(&[(
        "/admin/api/registrations",
        503,
        r#"{"error":"registry_busy","message":"the registry is throttled; retry in 2 s"}"#,
    )]);
    let (root, _mounted) = mount(move || view! { <RegionsPanel session=session/> });
    until("the error", || find(&root, ".state.error").is_some()).await;
    assert!(text(&root).contains("the registry is throttled"));
}

#[wasm_bindgen_test]
async fn a_certificate_lists_its_registration_in_each_region_and_a_partial_revocation() {
    let certificate = r#"{"certificateId":"c1","deviceId":"sensor-01","serial":"0f","issuer":"1a2b3c4d","publicKey":"MFkw",
        "issuedAt":"2026-11-28T17:00:00Z","notBefore":"2026-11-28T16:55:00Z","notAfter":"2027-11-28T17:00:00Z",
        "status":"ACTIVE","revokedAt":null,"revocationReason":null,"certificatePem":null,"registrations":[
        {"certificateId":"c1","region":"eu-west-1","deviceId":"sensor-01","status":"DONE","attempts":1,"lastError":null,"updatedAt":"2026-11-28T17:00:01Z"},
        {"certificateId":"c1","region":"us-east-1","deviceId":"sensor-01","status":"FAILED","attempts":4,"lastError":"ResourceAlreadyExistsException","updatedAt":"2026-11-28T17:03:00Z"}]}"#;
    let revoked = r#"{"certificate":{"certificateId":"c1","deviceId":"sensor-01","serial":"0f","issuer":"1a2b3c4d","publicKey":"MFkw",
        "issuedAt":"2026-11-28T17:00:00Z","notBefore":"2026-11-28T16:55:00Z","notAfter":"2027-11-28T17:00:00Z",
        "status":"REVOKED","revokedAt":"2026-11-28T18:00:00Z","revocationReason":"keyCompromise"},
        "alreadyRevoked":false,"propagated":false,"crlRegenerated":false}"#;
    fake_fetch(&[
        ("/revoke", 200, revoked),
        ("certificates/c1", 200, certificate),
    ]);
    let session = Session::with_token("t");
    let (root, _mounted) = mount(move || {
        view! { <CertificateDetails session=session certificate_id="c1".to_owned() on_change=|| () on_close=|| ()/> }
    });
    until("the regions", || {
        find(&root, "table.certificate-regions").is_some()
    })
    .await;
    let rows = find_all(&root, "table.certificate-regions tbody tr");
    assert_eq!(rows.len(), 2);
    let us = find(&root, "tr[data-region=us-east-1]")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(
        us.contains("FAILED")
            && us.contains("4 attempts")
            && us.contains("ResourceAlreadyExistsException"),
        "{us}"
    );
    assert!(find(&root, "tr[data-region=eu-west-1] .badge-done").is_some());

    // and a revocation that did not reach every region says so
    assert!(find(&root, ".partly-revoked").is_none());
    click(&root, "button.danger");
    until("the confirmation", || {
        find(&root, "#confirm-revoke").is_some()
    })
    .await;
    click(&root, "#confirm-revoke");
    until("the warning", || find(&root, ".partly-revoked").is_some()).await;
    assert!(text(&root).contains("not yet everywhere the certificate is trusted"));
}
