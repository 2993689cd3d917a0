//! The ops listener (`serve --ops-listen`): health, readiness and metrics over plain HTTP,
//! without a client certificate, and what the HTTPS door counts.

use crate::helpers::TestApp;

/// `/metrics` checked by Prometheus's own linter, when it is installed (`.ci/run` installs it).
fn promtool_check(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing in CI"
        );
        eprintln!("promtool is not installed (Debian package prometheus): not run");
        return;
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {said}\n{text}"
    );
    // Lint findings (names, help texts) are printed without failing the exit status.
    assert!(said.trim().is_empty(), "promtool check metrics: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_without_a_certificate() {
    let app = TestApp::spawn_with(|c| c.ops_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let ops = app.server.as_ref().unwrap().ops_addr().unwrap();
    let base = format!("http://{ops}");
    let plain = reqwest::Client::new();
    let r = plain.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = plain.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready\n");

    // Requests of every kind through the HTTPS door, then the counts.
    let (status, _) = app.action(&app.alice, "action=account").await;
    assert_eq!(status, 200);
    let (status, _) = app.action(&app.alice, "action=get%5Faccount").await;
    assert_eq!(status, 200);
    let (status, _) = app.action(&app.alice, "action=no_such_action").await;
    assert_eq!(status, 404);
    let r = app
        .client(Some(&app.alice))
        .get(format!("{}/v1/me/diversions", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = plain.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for line in [
        "sip_settings_http_requests_total{door=\"settings\",route=\"account\",status=\"200\"}",
        "sip_settings_http_requests_total{door=\"settings\",route=\"unknown\",status=\"404\"}",
        "sip_settings_http_requests_total{door=\"settings\",route=\"get_account\",status=\"200\"}",
        "sip_settings_http_requests_total{door=\"v1\",route=\"/v1/me/diversions\",status=\"200\"}",
        "sip_settings_http_request_duration_seconds_bucket{door=\"settings\",route=\"account\",le=\"+Inf\"}",
        "sip_settings_build_info{version=\"",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(
        !text.contains("no_such_action"),
        "a request's own words never become a label"
    );
    promtool_check(&text);

    // Not on the HTTPS port, and nothing else on the ops port.
    let r = plain
        .get(format!("{base}/settings.phtml?action=account"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn off_unless_asked_for() {
    let app = TestApp::spawn().await;
    assert_eq!(app.server.as_ref().unwrap().ops_addr(), None);
}

/// The real binary with `ops_listen` in its configuration file: it says where the ops listener
/// is, and it answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_the_ops_listener_from_its_configuration() {
    use crate::helpers::serve::{Server, TempSqlite, get, provision};
    let sqlite = TempSqlite::new("s.db");
    let install = provision(&sqlite.url);
    let port = crate::helpers::free_port();
    let server = Server::start_with(
        install.dir.path(),
        &sqlite.url,
        &format!("ops_listen = \"127.0.0.1:{port}\"\n"),
    );
    let (status, _) = get(
        &install.client(&install.alice),
        &server.base,
        "action=account",
    )
    .await;
    assert_eq!(status, 200);
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = plain
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "sip_settings_http_requests_total{door=\"settings\",route=\"account\",status=\"200\"} 1\n"
        ),
        "{text}"
    );
    promtool_check(&text);
}

/// The value of the series `series` (name and labels, exactly as rendered) in `text`, 0 when
/// absent.
fn value_of(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn scrape(ops: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A TLS handshake with this client configuration; whether it completed.
async fn handshake(app: &TestApp, config: rustls::ClientConfig) -> bool {
    let port = app.server.as_ref().unwrap().addr().port();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    match connector.connect(name, tcp).await {
        // TLS 1.3: the server refuses a client certificate after the client's side is done;
        // the refusal arrives with the first read.
        Ok(mut tls) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tls
                .write_all(b"GET /v1/me HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            matches!(tls.read(&mut buf).await, Ok(n) if n > 0)
        }
        Err(_) => false,
    }
}

/// What a provider alerts on: handshakes refused by reason, certificates refused by reason,
/// requests refused by the rate limits, the store's figures and the prepaid sessions open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_store_figures_and_prepaid_sessions_are_counted() {
    use sip_settings_core::cert::{CertSubject, IssueRequest};
    let app = TestApp::spawn_with(|c| {
        c.ops_listen = Some("127.0.0.1:0".parse().unwrap());
        c.rate_limits = Some(crate::helpers::certificate_limits((1.0, 2.0), (1.0, 2.0)));
    })
    .await;
    let ops = app.server.as_ref().unwrap().ops_addr().unwrap();
    let before = scrape(ops).await;
    let series = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    let handshakes = |reason: &str| {
        series(
            "sip_settings_tls_handshake_failures_total",
            &format!("door=\"https\",reason=\"{reason}\""),
        )
    };
    let refused = |reason: &str| {
        series(
            "sip_settings_certificates_refused_total",
            &format!("reason=\"{reason}\""),
        )
    };

    // A certificate of another CA, and an expired one of this CA: refused in the handshake.
    let other = sip_settings_pki::Pki::load(&sip_settings_pki::Pki::create_ca("other", 1).unwrap())
        .unwrap();
    let now = chrono::Utc::now();
    let foreign = other
        .issue_unrecorded(&IssueRequest {
            subject: CertSubject::Account(
                sip_settings_core::AccountId::parse("alice@example.com").unwrap(),
            ),
            not_before: now - chrono::Duration::days(1),
            not_after: now + chrono::Duration::days(1),
        })
        .unwrap();
    let expired = app.unrecorded_cert("alice@example.com", -10, -1);
    for cert in [&foreign, &expired] {
        let bundle = format!("{}{}", cert.cert_pem, cert.key_pem);
        let config = sip_settings_pki::tls::client_config(&app.ca_pem, &bundle).unwrap();
        assert!(
            !handshake(&app, config).await,
            "a bad certificate was let through"
        );
    }
    // Plain HTTP on the TLS port.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let port = app.server.as_ref().unwrap().addr().port();
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
    }
    // A certificate this CA signed but the service never recorded, and a revoked one.
    let unknown = app.unrecorded_cert("alice@example.com", -1, 1);
    assert_eq!(app.action(&unknown, "action=account").await.0, 403);
    let revoked = app
        .services
        .issue_certificate(
            CertSubject::Account(sip_settings_core::AccountId::parse("alice@example.com").unwrap()),
            None,
            None,
        )
        .await
        .unwrap();
    app.services
        .revoke_certificate(&revoked.record.serial)
        .await
        .unwrap();
    assert_eq!(app.action(&revoked, "action=account").await.0, 403);
    // Bob's reads past the burst of 2.
    let mut limited = 0;
    for _ in 0..4 {
        if app.action(&app.bob, "action=account").await.0 == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 1, "the rate limits refused nothing");

    let after = scrape(ops).await;
    let grew = |series: &str, by: u64| {
        let (b, a) = (value_of(&before, series), value_of(&after, series));
        assert!(a >= b + by, "{series}: {b} → {a}, expected +{by}\n{after}");
    };
    grew(&handshakes("client_certificate_unknown_ca"), 1);
    grew(&handshakes("client_certificate_expired"), 1);
    grew(&handshakes("protocol"), 1);
    grew(&refused("unknown"), 1);
    grew(&refused("revoked"), 1);
    grew(
        &series("sip_settings_rate_limited_total", "kind=\"read\""),
        limited,
    );
    for line in [
        "sip_settings_store_pool_connections{store=\"sqlite\",state=\"idle\"}",
        "sip_settings_store_group_commits_total{store=\"sqlite\"}",
        "sip_settings_prepaid_sessions_open 0",
    ] {
        assert!(after.contains(line), "{line} missing from\n{after}");
    }
    promtool_check(&after);
}

/// `/readyz` is 503 while a migration of this build is not applied to the database, and says
/// which; 200 again once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_the_schema_is_behind_the_build() {
    let app = TestApp::spawn_with(|c| c.ops_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let ops = app.server.as_ref().unwrap().ops_addr().unwrap();
    let ready = || async {
        let r = reqwest::get(format!("http://{ops}/readyz")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    let db = app.data_dir().join("sip-settings.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (version, description): (i64, String) = conn
        .query_row(
            "SELECT version, description FROM _sqlx_migrations ORDER BY version DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let row: Vec<u8> = conn
        .query_row(
            "SELECT checksum FROM _sqlx_migrations WHERE version = ?1",
            [version],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute("DELETE FROM _sqlx_migrations WHERE version = ?1", [version])
        .unwrap();
    let (status, text) = ready().await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains(&format!("{version} {description}")), "{text}");
    conn.execute(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (?1, ?2, CURRENT_TIMESTAMP, 1, ?3, 0)",
        rusqlite::params![version, description, row],
    )
    .unwrap();
    assert_eq!(ready().await.0, 200);
}

/// A real Prometheus (Debian package `prometheus`, installed by `.ci/run`) scrapes the ops
/// listener every second: the target is up and the series are stored and queryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_ops_listener() {
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is missing in CI"
        );
        eprintln!("prometheus is not installed (Debian package prometheus): not run");
        return;
    }
    let app = TestApp::spawn_with(|c| c.ops_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let ops = app.server.as_ref().unwrap().ops_addr().unwrap();
    assert_eq!(app.action(&app.alice, "action=account").await.0, 200);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
             - job_name: sip-settings\n    static_configs:\n      - targets: ['{ops}']\n"
        ),
    )
    .unwrap();
    let port = crate::helpers::free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _prometheus = crate::helpers::serve::KillOnDrop(child);
    let query = |q: &'static str| async move {
        let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let r = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/query?query={q}"))
            .await
            .ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["data"]["result"].as_array().cloned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let up = loop {
        if let Some(result) = query("up{job=\"sip-settings\"}").await
            && let Some(sample) = result.first()
        {
            break sample["value"][1].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus stored no scrape within 60 s:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(up, "1", "the scrape failed");
    let requests = query(
        "sip_settings_http_requests_total{door=\"settings\",route=\"account\",status=\"200\"}",
    )
    .await
    .unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    // At least this test's request (the count is the process's: other tests' requests too).
    let stored: f64 = requests[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(stored >= 1.0, "{requests:?}");
    let build = query("sip_settings_build_info").await.unwrap();
    assert_eq!(
        build[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build:?}"
    );
}
