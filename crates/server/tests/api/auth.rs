//! Authorization rules of SPEC §2 over real mutual TLS.

use crate::helpers::*;

#[tokio::test]
async fn alice_reads_her_own_account() {
    let app = TestApp::spawn().await;
    let (status, body) = app.action(&app.alice, "action=account").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sip_address"], ALICE);
}

#[tokio::test]
async fn account_parameter_naming_another_account_is_403_and_own_is_accepted() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .action(&app.bob, &format!("action=account&account={ALICE}"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["success"], false);
    assert!(body.to_string().contains("own account"), "{body}");
    assert!(
        !body.to_string().contains("alice"),
        "must not leak alice's data: {body}"
    );

    let (status, body) = app
        .action(&app.bob, &format!("action=account&account={BOB}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sip_address"], BOB);

    // POST form body with the trick is refused the same way.
    let response = app
        .client(Some(&app.bob))
        .post(format!("{}/settings.phtml", app.base))
        .form(&[("action", "account"), ("account", ALICE)])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await.0, 403);
}

#[tokio::test]
async fn no_certificate_is_a_json_401() {
    let app = TestApp::spawn().await;
    let response = app
        .client(None)
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_at_the_handshake() {
    let app = TestApp::spawn().await;
    let foreign =
        sip_settings_pki::Pki::load(&sip_settings_pki::Pki::create_ca("evil CA", 1).unwrap())
            .unwrap();
    let now = chrono::Utc::now();
    let cert = foreign
        .issue_unrecorded(&sip_settings_core::cert::IssueRequest {
            subject: sip_settings_core::cert::CertSubject::Account(
                sip_settings_core::AccountId::parse(ALICE).unwrap(),
            ),
            not_before: now,
            not_after: now + chrono::Duration::days(1),
        })
        .unwrap();
    let result = app
        .client(Some(&cert))
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await;
    assert!(
        result.is_err(),
        "foreign certificate was served: {:?}",
        result.map(|r| r.status())
    );
}

#[tokio::test]
async fn expired_certificate_is_refused_even_though_it_was_recorded() {
    let app = TestApp::spawn().await;
    let expired = app.unrecorded_cert(ALICE, -30, -1);
    app.services
        .store()
        .insert_certificate(&expired.record)
        .await
        .unwrap();
    let result = app
        .client(Some(&expired))
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await;
    assert!(result.is_err(), "expired certificate was served");
    // Not yet valid, likewise.
    let future = app.unrecorded_cert(ALICE, 2, 30);
    app.services
        .store()
        .insert_certificate(&future.record)
        .await
        .unwrap();
    let result = app
        .client(Some(&future))
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await;
    assert!(result.is_err(), "not-yet-valid certificate was served");
}

#[tokio::test]
async fn certificate_never_issued_by_the_service_is_403() {
    let app = TestApp::spawn().await;
    let stray = app.unrecorded_cert(ALICE, 0, 10);
    let (status, body) = app.action(&stray, "action=account").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("not issued"),
        "{body}"
    );
}

#[tokio::test]
async fn revocation_through_the_cli_takes_effect_on_the_running_server_at_once() {
    let app = TestApp::spawn().await;
    // One keep-alive client: the revocation must hold on an open connection too.
    let client = app.client(Some(&app.alice));
    let url = format!("{}/settings.phtml?action=account", app.base);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    // Revoke with the serial in the form openssl prints, lower case with colons.
    let serial = app.alice.record.serial.as_str().to_ascii_lowercase();
    let with_colons: Vec<String> = serial
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let out = app.cli(&["cert", "revoke", &with_colons.join(":")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, body) = json_of(client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error_message"].as_str().unwrap().contains("revoked"));
    // A new connection is refused as well, and bob is unaffected.
    assert_eq!(app.action(&app.alice, "action=account").await.0, 403);
    assert_eq!(app.action(&app.bob, "action=account").await.0, 200);
}

#[tokio::test]
async fn deleting_an_account_revokes_its_certificates() {
    let app = TestApp::spawn().await;
    let out = app.cli(&["account", "delete", BOB]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1"));
    let (status, _) = app.action(&app.bob, "action=account").await;
    assert_eq!(status, 403);
    let listed = app.cli(&["cert", "list", BOB]);
    let text = String::from_utf8_lossy(&listed.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(app.bob.record.serial.as_str()))
        .unwrap();
    // SERIAL SUBJECT ROLE NOT-AFTER REVOKED-AT LAST-USED NAME
    let revoked_at = line.split_whitespace().nth(4).unwrap();
    assert_ne!(revoked_at, "-", "revoked-at must be set: {line}");
    assert!(revoked_at.starts_with("20"), "{line}");
}

#[tokio::test]
async fn admin_and_service_certificates_cannot_use_subscriber_actions() {
    let app = TestApp::spawn().await;
    for subject in [
        sip_settings_core::cert::CertSubject::Admin("ops".into()),
        sip_settings_core::cert::CertSubject::Service("proxy1".into()),
    ] {
        let cert = app
            .services
            .issue_certificate(subject, None, None)
            .await
            .unwrap();
        let (status, body) = app
            .action(&cert, &format!("action=account&account={ALICE}"))
            .await;
        assert_eq!(status, 403, "{body}");
    }
}
