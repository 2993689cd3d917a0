//! The change journal: each door (action endpoint, /v1, CLI, service API) appends who changed
//! what, from where, old → new; the subscriber reads their own with a cursor; secrets show only
//! as "changed".

use serde_json::{Value, json};

use crate::helpers::*;

async fn journal(app: &TestApp, query: &str) -> Value {
    let r = app
        .client(Some(&app.alice))
        .get(format!("{}/v1/me/journal{query}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn find<'a>(entries: &'a Value, resource: &str) -> &'a Value {
    entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == resource)
        .unwrap_or_else(|| panic!("no {resource} in {entries}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_is_journaled_with_actor_source_and_old_new() {
    let app = TestApp::spawn().await;
    let serial = app.alice.record.serial.to_string();

    // The action endpoint.
    let (status, _) = app
        .action(&app.alice, "action=set_diversions&FUNC=bob")
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .action(&app.alice, "action=set_diversions&FUNC=carol")
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.action(&app.alice, "action=privacy_on").await;
    assert_eq!(status, 200);
    // The operator's command line.
    let out = app.cli(&["alias", "add", "al@example.com", ALICE]);
    assert!(out.status.success());
    let out = app.cli(&[
        "account",
        "passwd",
        ALICE,
        "--password",
        "a-brand-new-secret",
    ]);
    assert!(out.status.success());
    // The resource API: revoke a second certificate of alice's.
    let extra = app
        .services
        .issue_certificate(
            sip_settings_core::cert::CertSubject::Account(
                sip_settings_core::AccountId::parse(ALICE).unwrap(),
            ),
            None,
            None,
        )
        .await
        .unwrap();
    let r = app
        .client(Some(&app.alice))
        .delete(format!(
            "{}/v1/me/certificates/{}",
            app.base, extra.record.serial
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The service API: a prepaid call debits the balance.
    app.cli(&["account", "set", ALICE, "--prepaid", "true"]);
    let rates = app.write_file("rates.csv", "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n31,NL,0,0.60,60,60\n");
    app.cli(&["rates", "import", rates.to_str().unwrap()]);
    app.cli(&["balance", "topup", ALICE, "5"]);
    let proxy = service_cert(&app).await;
    let svc = app.client(Some(&proxy));
    let r = open_prepaid(&svc, &app.base, ALICE, "j1").await;
    assert_eq!(r.status(), 201);
    app.clock.advance(chrono::Duration::seconds(70));
    let r = close_prepaid(&svc, &app.base, "j1", &json!({"duration": 70})).await;
    assert_eq!(r.status(), 200);

    let all = journal(&app, "?limit=200").await;
    let text = all.to_string();
    assert!(
        !text.contains("a-brand-new-secret") && !text.contains(ALICE_PASSWORD),
        "{text}"
    );

    let func = find(&all, "diversions.FUNC");
    assert_eq!(func["door"], "settings.phtml");
    assert_eq!(func["actor"], format!("certificate {serial}"));
    assert_eq!(func["source"], "127.0.0.1");
    assert_eq!(func["old"], "bob@example.com");
    assert_eq!(func["new"], "carol@example.com");
    let privacy = find(&all, "privacy");
    assert_eq!(
        (privacy["old"].as_str(), privacy["new"].as_str()),
        (Some("false"), Some("true"))
    );
    let alias = find(&all, "alias");
    assert_eq!(alias["door"], "cli");
    assert!(alias["actor"].as_str().unwrap().starts_with("operator"));
    assert_eq!(alias["new"], "al@example.com");
    let password = find(&all, "password");
    assert_eq!(password["new"], "changed");
    let revoke = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == "certificate" && e["door"] == "v1")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(revoke["new"], format!("revoked {}", extra.record.serial));
    let debit = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == "balance" && e["door"] == "service")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(debit["actor"], "service proxy");
    assert_eq!(
        (debit["old"].as_str(), debit["new"].as_str()),
        (Some("5.0000"), Some("3.8000"))
    );

    // Newest first, with a cursor.
    let ids: Vec<i64> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let page1 = journal(&app, "?limit=2").await;
    assert_eq!(page1["entries"].as_array().unwrap().len(), 2);
    let next = page1["next"].as_i64().unwrap();
    let page2 = journal(&app, &format!("?limit=2&before={next}")).await;
    assert_eq!(page2["entries"][0]["id"].as_i64().unwrap(), ids[2]);
    // Bad cursors are clear 400s.
    let r = app
        .client(Some(&app.alice))
        .get(format!("{}/v1/me/journal?limit=0", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    // Bob sees none of alice's entries.
    let bob: Value = app
        .client(Some(&app.bob))
        .get(format!("{}/v1/me/journal", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!bob.to_string().contains("carol"), "{bob}");
    // The operator sees the same journal.
    let out = app.cli(&["journal", ALICE]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("diversions.FUNC") && text.contains("bob@example.com -> carol@example.com"),
        "{text}"
    );
}
