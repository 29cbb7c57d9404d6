//! `provisioner devices disable|enable` on the local backend, as an operator cutting off a
//! stolen device runs it: the real binary on a real data directory, beside a running
//! `provisioner serve`; the CRL it writes is read back by OpenSSL.

use crate::support;

use std::process::Output;

use support::{assert_exit, certs, fleet, json, openssl, provision, provisioner, Served};

fn devices(args: &[&str], data: &str) -> Output {
    let mut all = vec!["devices"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", data]);
    provisioner(&all)
}

#[test]
fn disable_with_revoke_cuts_a_stolen_device_off_in_one_step() {
    // given two provisioned devices under a running service
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let data = data_dir.to_str().unwrap();
    let fleet = fleet(&tmp.path().join("fleet"), 2);
    let served = Served::start(&data_dir, &[]);
    let manifest = fleet.dir.join("manifest.csv");
    assert_exit(
        &provisioner(&["import", manifest.to_str().unwrap(), "--data-dir", data]),
        0,
    );
    let (stolen, other) = (&fleet.ids[0], &fleet.ids[1]);
    let out = tmp.path().join("device");
    let first = provision(&served.url, &fleet.dir, stolen, &out);
    assert_exit(&first, 0);
    let certificate_id = json(&first)["certificateId"].as_str().unwrap().to_owned();
    assert_exit(&provision(&served.url, &fleet.dir, other, &out), 0);

    // when the stolen one is disabled with --revoke
    let disabled = devices(&["disable", stolen, "--revoke", "--json"], data);

    // then it is disabled and its certificate revoked for keyCompromise
    assert_exit(&disabled, 0);
    let answer = json(&disabled);
    assert_eq!(answer["deviceId"], stolen.as_str());
    assert_eq!(answer["enabled"], false);
    let revoked = answer["revokedCertificates"].as_array().unwrap();
    assert_eq!(revoked.len(), 1, "{answer}");
    assert_eq!(revoked[0]["certificateId"], certificate_id.as_str());
    assert_eq!(revoked[0]["status"], "REVOKED");
    assert_eq!(revoked[0]["revocationReason"], "keyCompromise");
    assert_eq!(revoked[0]["propagated"], true);

    // and the service refuses it 403 device_disabled
    let refused = provision(&served.url, &fleet.dir, stolen, &out);
    assert_exit(&refused, 1);
    let refusal = json(&refused);
    assert_eq!(
        (refusal["status"].as_u64(), refusal["error"].as_str()),
        (Some(403), Some("device_disabled")),
        "{refusal}"
    );

    // and `certs list` shows every certificate of it REVOKED; the other device's is ACTIVE
    let listed = certs(&data_dir, stolen);
    assert_eq!(listed.len(), 1);
    assert!(listed
        .iter()
        .all(|c| c["status"] == "REVOKED" && c["revocationReason"] == "keyCompromise"));
    assert_eq!(certs(&data_dir, other)[0]["status"], "ACTIVE");

    // and the CRL the command wrote lists its serial, as OpenSSL reads it
    let issuer = listed[0]["issuer"].as_str().unwrap();
    let crl = data_dir.join("ca/issuing").join(issuer).join("crl.pem");
    let text = String::from_utf8(
        openssl(
            tmp.path(),
            &["crl", "-noout", "-text", "-in", crl.to_str().unwrap()],
        )
        .stdout,
    )
    .unwrap()
    .to_ascii_lowercase();
    let serial = listed[0]["serial"]
        .as_str()
        .unwrap()
        .trim_start_matches('0')
        .to_ascii_lowercase();
    assert!(text.contains(&format!("serial number: {serial}")), "{text}");
    assert!(text.contains("key compromise"), "{text}");

    // and once enabled again it gets a new certificate
    let enabled = devices(&["enable", stolen, "--json"], data);
    assert_exit(&enabled, 0);
    assert_eq!(json(&enabled)["enabled"], true);
    let healed = provision(&served.url, &fleet.dir, stolen, &out);
    assert_exit(&healed, 0);
    assert_ne!(json(&healed)["certificateId"], certificate_id.as_str());
}

#[test]
fn disable_without_revoke_keeps_certificates_and_mistakes_are_refused() {
    // given a provisioned device
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let data = data_dir.to_str().unwrap();
    let fleet = fleet(&tmp.path().join("fleet"), 1);
    let served = Served::start(&data_dir, &[]);
    let manifest = fleet.dir.join("manifest.csv");
    assert_exit(
        &provisioner(&["import", manifest.to_str().unwrap(), "--data-dir", data]),
        0,
    );
    let id = &fleet.ids[0];
    assert_exit(
        &provision(&served.url, &fleet.dir, id, &tmp.path().join("d")),
        0,
    );
    drop(served);

    // when it is disabled without --revoke: it says so, and the certificate stays ACTIVE
    let disabled = devices(&["disable", id], data);
    assert_exit(&disabled, 0);
    assert_eq!(
        String::from_utf8_lossy(&disabled.stdout),
        format!("device {id} is disabled\n")
    );
    assert_eq!(certs(&data_dir, id)[0]["status"], "ACTIVE");

    // and with --revoke and a reason, in words: the certificate, with the reason
    let revoked = devices(
        &[
            "disable",
            id,
            "--revoke",
            "--reason",
            "cessationOfOperation",
        ],
        data,
    );
    assert_exit(&revoked, 0);
    let text = String::from_utf8_lossy(&revoked.stdout).into_owned();
    assert!(text.contains("revoked certificate"), "{text}");
    assert!(text.contains("cessationOfOperation"), "{text}");
    assert_eq!(
        certs(&data_dir, id)[0]["revocationReason"],
        "cessationOfOperation"
    );

    // then an unknown device is a JSON error, a reason without --revoke or an unknown
    // reason a usage error
    let unknown = devices(&["disable", "nobody", "--revoke", "--json"], data);
    assert_exit(&unknown, 1);
    assert_eq!(json(&unknown)["error"], "unknown_device");
    let unknown = devices(&["enable", "nobody"], data);
    assert_exit(&unknown, 1);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
    for args in [
        &["disable", id.as_str(), "--reason", "keyCompromise"][..],
        &["disable", id.as_str(), "--revoke", "--reason", "stolen"][..],
    ] {
        let usage = devices(args, data);
        assert_exit(&usage, 2);
    }
}
