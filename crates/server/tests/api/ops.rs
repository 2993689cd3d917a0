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
