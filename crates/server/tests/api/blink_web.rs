//! Blink's web view on `settings.phtml` (issue 18, point 2): `settings.phtml?…&tab=NAME`
//! without `action`, authenticated by HTTP Digest, answers the web page's tab with a session
//! whose forms carry the same CSRF protection as after a login; and the web login takes the
//! bare user part when `realm` (or a single domain) says which domain. The Digest client is
//! curl (`--digest`, a cookie jar), an independent implementation, as the web views of Blink Qt
//! (QtWebEngine) and Blink Cocoa (WebKit) answer the challenge with the user part.

use std::path::Path;
use std::process::Command;

use crate::helpers::{ALICE, ALICE_PASSWORD, TestApp, have_tool, no_redirects};

/// One curl request with Digest credentials and a cookie jar: (status, headers, body).
fn curl(
    ca: &Path,
    jar: &Path,
    user_password: Option<&str>,
    url: &str,
    form: &[&str],
) -> (u16, String, String) {
    let mut command = Command::new("curl");
    command.args(["-sS", "-D", "-"]).arg("--cacert").arg(ca);
    command.arg("-c").arg(jar).arg("-b").arg(jar);
    if let Some(up) = user_password {
        command.args(["--digest", "-u", up]);
    }
    for field in form {
        command.args(["--data-urlencode", field]);
    }
    command.args(["-w", "\n%{http_code}", url]);
    let out = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (rest, code) = text.rsplit_once('\n').expect("a status line from -w");
    // With --digest curl prints the 401's head too: the last head is the answer's.
    let last = rest.rfind("HTTP/").unwrap_or(0);
    let (head, body) = rest[last..].split_once("\r\n\r\n").unwrap_or((rest, ""));
    (
        code.parse().expect("a status"),
        head.to_ascii_lowercase(),
        body.to_owned(),
    )
}

/// The CSRF token of a page's forms.
fn csrf_of(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let i = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[i..].split('"').next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blink_web_view_tabs_through_digest_with_the_web_pages_csrf() {
    if !have_tool("curl") {
        eprintln!("SKIP: curl is not installed");
        return;
    }
    let app = TestApp::spawn().await;
    let ca = app.write_file("blink-ca.crt", &app.ca_pem);
    let alice = format!("alice:{ALICE_PASSWORD}");
    // The URLs as the two clients build them from settings_url = https://host/settings.phtml:
    // Blink Qt (blink/accounts.py, ServerToolsWebView.load_account_page: user_agent, tab, task,
    // realm in that order) and Blink Cocoa (AccountSettings.py: realm, tab, user_agent; the
    // payments tab with the whole account as realm).
    let cases = [
        (
            "user_agent=blink&tab=settings&realm=example.com",
            "Forwarding",
        ),
        ("user_agent=blink&tab=calls&realm=example.com", "Calls"),
        (
            "user_agent=blink&tab=contacts&task=directory&realm=example.com",
            "Phonebook",
        ),
        (
            "realm=example.com&tab=settings&user_agent=blink",
            "Forwarding",
        ),
        (
            "realm=alice@example.com&tab=payments&user_agent=blink",
            "Balance",
        ),
    ];
    for (i, (query, title)) in cases.iter().enumerate() {
        let jar = app.dir.path().join(format!("jar-{i}"));
        let url = format!("{}/settings.phtml?{query}", app.base);
        // Without credentials: the challenge (the web view asks for them and answers).
        let (status, head, _) = curl(&ca, &jar, None, &url, &[]);
        assert_eq!(status, 401, "{query}");
        assert!(
            head.contains("www-authenticate: digest realm=\"example.com\""),
            "{head}"
        );
        let (status, head, body) = curl(&ca, &jar, Some(&alice), &url, &[]);
        assert_eq!(status, 200, "{query}: {body}");
        assert!(head.contains("content-type: text/html"), "{head}");
        assert!(
            body.contains(&format!("<h1>{title}</h1>")),
            "{query}: {body}"
        );
        assert!(body.contains(ALICE), "the page is alice's: {body}");
        assert!(head.contains("set-cookie: __host-sip-session="), "{head}");
        assert!(head.contains("content-security-policy:"), "{head}");
    }

    // The session the web view got works the page's forms, with its CSRF token only.
    let jar = app.dir.path().join("jar-forms");
    let tab = format!(
        "{}/settings.phtml?realm=example.com&tab=settings&user_agent=blink",
        app.base
    );
    let (status, _, page) = curl(&ca, &jar, Some(&alice), &tab, &[]);
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let privacy = format!("{}/web/privacy", app.base);
    let (status, _, body) = curl(&ca, &jar, None, &privacy, &["privacy=on"]);
    assert_eq!(status, 403, "no token: {body}");
    assert_eq!(app.read(&app.alice, "account").await["privacy"], false);
    let (status, _, body) = curl(&ca, &jar, None, &privacy, &["privacy=on", "csrf=AAAA"]);
    assert_eq!(status, 403, "a wrong token: {body}");
    let (status, head, _) = curl(
        &ca,
        &jar,
        None,
        &privacy,
        &["privacy=on", &format!("csrf={csrf}")],
    );
    assert_eq!(status, 303, "{head}");
    assert_eq!(app.read(&app.alice, "account").await["privacy"], true);
    // The Info tab tells what Blink takes as its account web page.
    let (status, _, info) = curl(&ca, &jar, None, &format!("{}/", app.base), &[]);
    assert_eq!(status, 200);
    assert!(
        info.contains(&format!("<code>{}/settings.phtml</code>", app.base)),
        "{info}"
    );
    // Another tab of the same session, by the page's own link.
    let (status, _, body) = curl(&ca, &jar, None, &format!("{}/web/calls", app.base), &[]);
    assert_eq!(status, 200);
    assert!(body.contains("<h1>Calls</h1>"));

    // Refusals: a wrong password, an unknown tab, a POST, Digest off for the domain.
    let jar = app.dir.path().join("jar-refusals");
    let (status, _, _) = curl(&ca, &jar, Some("alice:not-the-password"), &tab, &[]);
    assert_eq!(status, 401);
    let unknown = format!(
        "{}/settings.phtml?realm=example.com&tab=bogus&user_agent=blink",
        app.base
    );
    let (status, head, body) = curl(&ca, &jar, Some(&alice), &unknown, &[]);
    assert_eq!(status, 400, "{body}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        body.contains("tab must be one of settings, calls, payments, contacts"),
        "{body}"
    );
    let (status, _, body) = curl(&ca, &jar, Some(&alice), &tab, &["x=1"]);
    assert_eq!(status, 405, "{body}");
    app.services
        .set_domain_digest("example.com", false)
        .await
        .unwrap();
    let (status, head, _) = curl(&ca, &jar, Some(&alice), &tab, &[]);
    assert_eq!(status, 401);
    assert!(!head.contains("www-authenticate"), "{head}");
}

/// The login form's CSRF cookie and token from `GET path`.
async fn login_form(app: &TestApp, path: &str) -> (String, String, String) {
    let response = no_redirects(app)
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("login"))
        .and_then(|v| v.split(';').next())
        .expect("the login form's cookie")
        .to_owned();
    let page = response.text().await.unwrap();
    let csrf = csrf_of(&page);
    (cookie, csrf, page)
}

async fn log_in(app: &TestApp, path: &str, address: &str, realm: Option<&str>) -> u16 {
    let (cookie, csrf, page) = login_form(app, path).await;
    let mut form = vec![
        ("address", address),
        ("password", ALICE_PASSWORD),
        ("csrf", csrf.as_str()),
    ];
    // The page carries the realm it was asked for; a browser posts it back.
    let carried = page.contains(r#"<input type="hidden" name="realm""#);
    assert_eq!(carried, realm.is_some(), "{page}");
    if let Some(r) = realm {
        assert!(
            page.contains(&format!(r#"name="realm" value="{r}""#)),
            "{page}"
        );
        form.push(("realm", r));
    }
    no_redirects(app)
        .post(format!("{}/web/login", app.base))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_web_login_takes_the_user_part_with_the_realm_or_the_only_domain() {
    let app = TestApp::spawn().await;
    // One domain served: the user part is enough.
    assert_eq!(log_in(&app, "/", "alice", None).await, 303);
    assert_eq!(log_in(&app, "/", ALICE, None).await, 303);
    // Two domains: the user part alone names nothing; with the realm it does.
    app.services.add_domain("example.org").await.unwrap();
    assert_eq!(log_in(&app, "/", "alice", None).await, 401);
    assert_eq!(
        log_in(&app, "/?realm=example.com", "alice", Some("example.com")).await,
        303
    );
    assert_eq!(
        log_in(
            &app,
            "/?realm=alice%40example.com",
            "alice",
            Some("example.com")
        )
        .await,
        303
    );
    // The realm does not override a whole address, nor lets another domain's user in.
    assert_eq!(
        log_in(&app, "/?realm=example.org", ALICE, Some("example.org")).await,
        303
    );
    assert_eq!(
        log_in(&app, "/?realm=example.org", "alice", Some("example.org")).await,
        401
    );
}
