//! The web settings page in a real browser: headless Chromium driven over WebDriver
//! (chromedriver started by the test on a free port), against the real server over TLS. Changes
//! made in the page are checked through the action API, downloads with openssl.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! chromedriver these tests fail — they do not skip.
//!
//! `SIP_SETTINGS_WEB_SCREENSHOTS=DIR` saves the screenshots the tests take (login, Info,
//! Forwarding on a phone-sized window) into DIR; `docs/` holds the committed ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sip_settings_core::AccountId;
use sip_settings_core::Clock;
use sip_settings_core::calls::CallInput;
use sip_settings_core::cert::CertSubject;

use crate::helpers::serve::KillOnDrop;
use crate::helpers::{ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, TestApp, free_port, no_redirects};

const SESSION_COOKIE: &str = "__Host-sip-session";

/// chromedriver, ended (and waited for) when dropped.
struct Driver {
    child: KillOnDrop,
    port: u16,
}

/// A browser session with its driver and a fresh profile directory.
struct Browser {
    c: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

fn chromedriver_path() -> PathBuf {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "chromedriver not found at {}: the web page tests need a real browser. Install it with \
         `apt-get install -y chromium chromium-driver` (or set CHROMEDRIVER)",
        path.display()
    );
    path
}

fn start_driver() -> Driver {
    let path = chromedriver_path();
    let port = free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver {}: {e}", path.display()));
    Driver {
        child: KillOnDrop(child),
        port,
    }
}

impl Browser {
    async fn start() -> Self {
        let mut driver = start_driver();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--ignore-certificate-errors".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.push("--lang=en-US".to_owned());
        let mut chrome = json!({ "args": args });
        if Path::new("/usr/lib/chromium/chromium").exists() {
            chrome["binary"] = json!("/usr/lib/chromium/chromium");
        }
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": chrome,
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{}", driver.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) => {
                    if let Ok(Some(status)) = driver.child.0.try_wait() {
                        panic!("chromedriver exited with {status} before accepting a session");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "cannot start a Chromium session through chromedriver at {url}: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self {
            c: client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn close(self) {
        let Browser {
            c,
            _driver,
            _profile,
        } = self;
        let _ = c.close().await;
    }

    /// Marks the current document, so that [`Browser::wait_new_page`] can tell when it is gone.
    async fn mark(&self) {
        self.c
            .execute("window.__old_page = true;", vec![])
            .await
            .expect("mark page");
    }

    /// Waits until a new document has loaded after [`Browser::mark`].
    async fn wait_new_page(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = self
                .c
                .execute(
                    "return window.__old_page !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .map(|v| v == json!(true))
                .unwrap_or(false);
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "no new page loaded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn goto(&self, url: &str) {
        self.c.goto(url).await.expect("goto");
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .c
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .is_empty()
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    async fn checked(&self, css: &str) -> bool {
        self.find(css).await.is_selected().await.expect("selected")
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Clicks a submit button and waits for the answer page.
    async fn submit(&self, css: &str) {
        self.mark().await;
        self.click(css).await;
        self.wait_new_page().await;
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    /// Opens `url` in a phone-sized window (390 × 844) and asserts that the page does not
    /// scroll sideways there.
    async fn on_a_phone(&self, url: &str) {
        self.c.set_window_size(390, 844).await.expect("resize");
        self.goto(url).await;
        let width: Value = self
            .c
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            width[0].as_i64() <= width[1].as_i64(),
            "no sideways scrolling on a phone at {url}: {width}"
        );
    }

    /// Scrolls the element `id` into view (for a screenshot).
    async fn scroll_to(&self, id: &str) {
        self.c
            .execute(
                "document.getElementById(arguments[0]).scrollIntoView();",
                vec![json!(id)],
            )
            .await
            .unwrap();
    }

    /// The success message shown, or a panic with the page.
    async fn flash(&self) -> String {
        if !self.exists(".flash").await {
            panic!("no success message on: {}", self.body().await);
        }
        self.text(".flash").await
    }

    async fn login(&self, base: &str, who: &str, password: &str) {
        self.goto(&format!("{base}/")).await;
        self.type_into("#login-address", who).await;
        self.type_into("#login-password", password).await;
        self.submit("#login").await;
    }

    async fn session_cookie(&self) -> String {
        self.c
            .get_named_cookie(SESSION_COOKIE)
            .await
            .expect("session cookie")
            .value()
            .to_owned()
    }

    async fn csrf(&self) -> String {
        self.value("input[name=csrf]").await
    }

    async fn screenshot(&self, name: &str) {
        let png = self.c.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        if let Some(dir) = std::env::var_os("SIP_SETTINGS_WEB_SCREENSHOTS") {
            let path = Path::new(&dir).join(name);
            std::fs::write(&path, &png).expect("write screenshot");
        }
    }
}

/// A plain HTTPS client (no certificate) for posting with a browser's session cookie.
fn http(app: &TestApp) -> reqwest::Client {
    app.client(None)
}

async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http(app).post(format!("{}{path}", app.base)).form(form);
    if let Some(c) = cookie {
        request = request.header("cookie", format!("{SESSION_COOKIE}={c}"));
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    // reqwest does not follow redirects of POSTs to pages here: the status is the server's.
    request.send().await.expect("post")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_and_dnd_changed_in_the_browser_show_in_the_api() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;

    b.goto(&format!("{}/", app.base)).await;
    assert!(b.exists("#login-address").await, "{}", b.body().await);
    assert_eq!(b.c.title().await.unwrap(), "Log in · sip-settings");
    b.screenshot("web-login.png").await;

    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    let body = b.body().await;
    assert!(body.contains("Your account"), "{body}");
    assert!(body.contains(ALICE), "{body}");
    assert!(
        b.text("#curl-line").await.contains(&format!(
            "curl --cacert ca.crt -E {ALICE}.crt 'https://localhost:"
        )),
        "curl line"
    );
    b.screenshot("web-info.png").await;

    // Forwarding: the voice mailbox and the mobile number cannot be picked while there is
    // none, and the page says why.
    b.goto(&format!("{}/web/forwarding", app.base)).await;
    for (choice, why) in [
        (
            "voicemail",
            "while voicemail is off: turn it on in the Voicemail tab first",
        ),
        ("mobile", "your account has none"),
    ] {
        let radio = b
            .find(&format!("input[name=FNOA_mode][value={choice}]"))
            .await;
        assert_eq!(
            radio.attr("disabled").await.unwrap().as_deref(),
            Some("true")
        );
        let described = radio.attr("aria-describedby").await.unwrap().unwrap();
        assert!(b.text(&format!("#{described}")).await.contains(why));
    }
    // A refused change keeps the input and shows the message next to the field.
    b.click("input[name=FUNC_mode][value=other]").await;
    b.type_into("#FUNC-other", "bob").await;
    b.click("input[name=FNOA_mode][value=other]").await;
    b.type_into("#FNOA-other", "bob@").await;
    b.type_into("#forwarding-no_answer_timeout", "20").await;
    b.submit("#save-forwarding").await;
    let error = b.text("#FNOA-error").await;
    assert!(error.starts_with("FNOA "), "{error}");
    assert!(b.text("#alert").await.starts_with("Not saved:"));
    assert_eq!(b.value("#FUNC-other").await, "bob", "input kept");
    assert!(b.checked("input[name=FUNC_mode][value=other]").await);
    assert!(b.checked("input[name=FNOA_mode][value=other]").await);
    assert_eq!(b.value("#FNOA-other").await, "bob@", "input kept");
    assert_eq!(b.value("#forwarding-no_answer_timeout").await, "20");
    b.scroll_to("cond-FNOA").await;
    b.screenshot("web-forwarding-refused.png").await;
    let d = app.read(&app.alice, "diversions").await;
    assert_eq!(d["FUNC"], Value::Null, "nothing written: {d}");
    assert_eq!(d["no_answer_timeout"], 35, "nothing written: {d}");

    b.click("input[name=FNOA_mode][value=off]").await;
    b.submit("#save-forwarding").await;
    let flash = b.text(".flash").await;
    assert_eq!(
        flash,
        "Diversions updated: FUNC set to bob@example.com; no-answer timeout set to 20 s"
    );
    assert_eq!(b.value("#FUNC-other").await, "bob@example.com");
    let (status, d) = app.action(&app.alice, "action=diversions").await;
    assert_eq!(status, 200);
    assert_eq!(d["FUNC"], "bob@example.com", "{d}");
    assert_eq!(d["FNOA"], Value::Null, "{d}");
    assert_eq!(d["no_answer_timeout"], 20, "{d}");

    // The same page on a phone-sized window.
    b.on_a_phone(&format!("{}/web/forwarding", app.base)).await;
    b.screenshot("web-forwarding-phone.png").await;
    b.c.set_window_size(1280, 1000).await.expect("resize");

    // DND for 30 minutes, with the remaining time shown; then off.
    b.goto(&format!("{}/web/accept", app.base)).await;
    assert_eq!(b.text("#dnd-state").await, "Do Not Disturb is off.");
    b.type_into("#dnd-duration", "0").await;
    b.submit("#dnd-on").await;
    assert!(
        b.text("#dnd-duration-error")
            .await
            .contains("duration must be a whole number of minutes between 1 and 10080"),
    );
    assert_eq!(b.value("#dnd-duration").await, "0", "input kept");
    b.type_into("#dnd-duration", "30").await;
    b.submit("#dnd-on").await;
    assert_eq!(
        b.text(".flash").await,
        "Do Not Disturb is on for 30 minutes"
    );
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(accept["temporary"]["groups"], json!(["nobody"]), "{accept}");
    assert_eq!(accept["temporary"]["duration"], 30, "{accept}");
    assert_eq!(app.read(&app.alice, "account").await["dnd"], true);
    app.clock.advance(chrono::Duration::minutes(10));
    b.goto(&format!("{}/web/accept", app.base)).await;
    let state = b.text("#dnd-state").await;
    assert!(
        state.starts_with("Do Not Disturb is on for 20 more minutes (until "),
        "{state}"
    );
    b.submit("#dnd-off").await;
    assert_eq!(b.text("#dnd-state").await, "Do Not Disturb is off.");
    assert_eq!(app.read(&app.alice, "account").await["dnd"], false);

    // Every change is journaled as the web page's, with the login and the address.
    let id = AccountId::parse(ALICE).unwrap();
    let journal = app.services.journal_entries(&id, None, 50).await.unwrap();
    let web: Vec<_> = journal
        .iter()
        .filter(|e| e.entry.door == "web")
        .map(|e| e.entry.resource.clone())
        .collect();
    for resource in ["diversions.FUNC", "account.no_answer_timeout", "dnd"] {
        assert!(web.contains(&resource.to_owned()), "{resource} in {web:?}");
    }
    assert!(journal.iter().filter(|e| e.entry.door == "web").all(|e| {
        e.entry.actor == format!("login {ALICE}") && e.entry.source.as_deref() == Some("127.0.0.1")
    }));
    b.goto(&format!("{}/web/journal", app.base)).await;
    let text = b.text("#journal").await;
    assert!(text.contains("diversions.FUNC") && text.contains("login alice@example.com"));
    b.close().await;
}

fn openssl_opens(file: &Path, password: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "pkcs12",
            "-noout",
            "-passin",
            &format!("pass:{password}"),
            "-in",
        ])
        .arg(file)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_and_revoking_a_certificate() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    let cookie = b.session_cookie().await;
    let csrf = b.csrf().await;
    let origin = app.base.clone();
    let headers = [("origin", origin.as_str())];

    // The .p12 form in the browser: a wrong password is refused next to the field, never shown.
    b.type_into("#p12-password", "not-the-password").await;
    b.submit("#download-p12").await;
    let error = b.text("#p12-password-error").await;
    assert_eq!(error, "password is not the SIP password of the account");
    assert_eq!(
        b.value("#p12-password").await,
        "",
        "a password is never rendered back"
    );
    assert!(!b.c.source().await.unwrap().contains("not-the-password"));

    // The .p12 with the browser's session (modern and legacy), opened with openssl.
    for format in ["modern", "legacy"] {
        let response = post_form(
            &app,
            "/web/certificates/p12",
            Some(&cookie),
            &headers,
            &[
                ("csrf", &csrf),
                ("password", ALICE_PASSWORD),
                ("format", format),
            ],
        )
        .await;
        assert_eq!(response.status().as_u16(), 200, "{format}");
        let h = response.headers().clone();
        assert_eq!(h["content-type"], "application/x-pkcs12");
        assert_eq!(
            h["content-disposition"],
            format!("attachment; filename=\"{ALICE}.p12\"").as_str()
        );
        let file = app.data_dir().join(format!("web-{format}.p12"));
        std::fs::write(&file, response.bytes().await.unwrap()).unwrap();
        let (ok, text) = openssl_opens(&file, ALICE_PASSWORD);
        assert!(ok, "openssl could not open the {format} .p12: {text}");
        assert!(!openssl_opens(&file, "wrong").0);
    }

    // user@domain.crt and ca.crt.
    let response = post_form(
        &app,
        "/web/certificates/crt",
        Some(&cookie),
        &headers,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"{ALICE}.crt\"").as_str()
    );
    let crt = response.text().await.unwrap();
    assert!(crt.contains("BEGIN CERTIFICATE") && crt.contains("PRIVATE KEY"));
    let ca = http(&app)
        .get(format!("{}/web/ca.crt", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ca.status().as_u16(), 200);
    assert_eq!(ca.text().await.unwrap(), app.ca_pem);

    // Revoke a second certificate in the browser: the API refuses it at once.
    let second = app
        .services
        .issue_certificate(
            CertSubject::Account(AccountId::parse(ALICE).unwrap()),
            None,
            None,
        )
        .await
        .unwrap();
    let serial = second.record.serial.to_string();
    assert_eq!(app.action(&second, "action=account").await.0, 200);
    b.goto(&format!("{}/", app.base)).await;
    let row = format!("#cert-{serial}");
    assert!(b.text(&row).await.contains("valid"));
    b.mark().await;
    b.click(&format!("{row} button.danger")).await;
    // The page asks first (a small enhancement; without JavaScript the form posts at once).
    let question = b.c.get_alert_text().await.expect("confirmation");
    assert!(question.starts_with(&format!("Revoke certificate {serial}?")));
    b.c.accept_alert().await.expect("accept");
    b.wait_new_page().await;
    assert_eq!(
        b.text(".flash").await,
        format!("Certificate {serial} revoked: it no longer works for the API")
    );
    assert!(b.text(&row).await.contains("revoked"));
    assert!(!b.exists(&format!("{row} button.danger")).await);
    let (status, body) = app.action(&second, "action=account").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_message"], "Error: certificate revoked");
    assert_eq!(app.action(&app.alice, "action=account").await.0, 200);

    // Another account's certificate is not alice's to revoke.
    let bob_serial = app.bob.record.serial.to_string();
    let response = post_form(
        &app,
        "/web/certificates/revoke",
        Some(&cookie),
        &headers,
        &[("csrf", &csrf), ("serial", &bob_serial)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(app.action(&app.bob, "action=account").await.0, 200);

    name_certificates_in_the_browser(&app, &b).await;
    revoke_older_in_the_browser(&app, &b).await;
    b.close().await;
}

/// Each certificate is listed with its name and when it was last used: a download names it as
/// asked, or after the browser that asked for it; its owner renames it in place (a refusal is
/// shown next to the field with the input kept).
async fn name_certificates_in_the_browser(app: &TestApp, b: &Browser) {
    let cookie = b.session_cookie().await;
    let csrf = b.csrf().await;
    let headers = [("origin", app.base.as_str())];
    let response = post_form(
        app,
        "/web/certificates/crt",
        Some(&cookie),
        &headers,
        &[("csrf", &csrf), ("name", "Kitchen phone")],
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let firefox =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
    let response = post_form(
        app,
        "/web/certificates/p12",
        Some(&cookie),
        &[("origin", app.base.as_str()), ("user-agent", firefox)],
        &[
            ("csrf", &csrf),
            ("password", ALICE_PASSWORD),
            ("format", "modern"),
        ],
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let id = AccountId::parse(ALICE).unwrap();
    let records = app.services.list_certificates(Some(&id)).await.unwrap();
    let named = |name: &str| {
        records
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no certificate named {name}: {records:?}"))
            .serial
            .to_string()
    };
    let kitchen = named("Kitchen phone");
    let browser_named = named(".p12 for Firefox on Windows");

    b.goto(&format!("{}/", app.base)).await;
    let header = b.text("#certs-h ~ div table thead").await;
    for column in [
        "Name and serial",
        "Fingerprint",
        "Issued",
        "Last used",
        "Valid until",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let cells = |serial: String| async move {
        let row = b.find(&format!("#cert-{serial}")).await;
        let mut texts = Vec::new();
        for td in row.find_all(Locator::Css("td")).await.unwrap() {
            texts.push(td.text().await.unwrap());
        }
        texts
    };
    let kitchen_row = cells(kitchen.clone()).await;
    assert!(
        kitchen_row[0].starts_with("Kitchen phone"),
        "{kitchen_row:?}"
    );
    assert_eq!(kitchen_row[3], "not yet", "never used: {kitchen_row:?}");
    assert!(cells(browser_named.clone()).await[0].starts_with(".p12 for Firefox on Windows"));
    // Alice's first certificate was used by the API (the test's own requests): a minute shown.
    let alice_row = cells(app.alice.record.serial.to_string()).await;
    let used = &alice_row[3];
    assert!(
        used.len() == 16 && used.as_bytes()[10] == b' ' && used.as_bytes()[13] == b':',
        "last used to the minute: {alice_row:?}"
    );

    // Renamed in place; then a name that is only spaces is refused next to its field.
    let field = format!("#name-{kitchen}");
    b.click(&format!("#cert-{kitchen} summary")).await;
    b.type_into(&field, "Kitchen phone (old)").await;
    b.submit(&format!("#cert-{kitchen} form.rename button"))
        .await;
    assert_eq!(
        b.flash().await,
        format!("Certificate {kitchen} is now named \u{201c}Kitchen phone (old)\u{201d}")
    );
    assert!(cells(kitchen.clone()).await[0].starts_with("Kitchen phone (old)"));
    b.click(&format!("#cert-{kitchen} summary")).await;
    b.type_into(&field, "   ").await;
    b.submit(&format!("#cert-{kitchen} form.rename button"))
        .await;
    assert_eq!(
        b.text(&format!("{field}-error")).await,
        "name must not be empty"
    );
    assert_eq!(b.value(&field).await, "   ", "the input is kept");
    assert!(
        !b.exists(&format!("#name-{browser_named}-error")).await,
        "the refusal is shown on its own certificate only"
    );
    let stored = app.services.list_certificates(Some(&id)).await.unwrap();
    assert!(
        stored
            .iter()
            .any(|c| c.name.as_deref() == Some("Kitchen phone (old)")),
        "a refusal changes nothing"
    );
    b.scroll_to("certs-h").await;
    b.screenshot("web-certificates.png").await;
}

/// The certificate list labels each certificate with its fingerprint; all but the newest are
/// revoked in one go.
async fn revoke_older_in_the_browser(app: &TestApp, b: &Browser) {
    let id = AccountId::parse(ALICE).unwrap();
    app.clock.advance(chrono::Duration::seconds(1));
    let newest = app
        .services
        .issue_certificate(CertSubject::Account(id.clone()), None, None)
        .await
        .unwrap();
    b.goto(&format!("{}/", app.base)).await;
    let row = b.text(&format!("#cert-{}", newest.record.serial)).await;
    let grouped = newest.record.fingerprint.get(..4).unwrap();
    assert!(row.contains(grouped), "{row}");
    let valid_before = app
        .services
        .list_certificates(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.revoked_at.is_none())
        .count();
    assert!(valid_before >= 3, "{valid_before}");
    let text = b.text("#revoke-older-form").await;
    assert!(
        text.contains(&format!(
            "{} valid certificates are older",
            valid_before - 1
        )),
        "{text}"
    );
    b.mark().await;
    b.click("#revoke-older").await;
    b.c.accept_alert().await.expect("confirmation");
    b.wait_new_page().await;
    assert_eq!(
        b.flash().await,
        format!(
            "{} older certificates revoked: only your newest is valid",
            valid_before - 1
        )
    );
    let valid: Vec<_> = app
        .services
        .list_certificates(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.revoked_at.is_none())
        .collect();
    assert_eq!(valid.len(), 1);
    assert_eq!(valid[0].serial, newest.record.serial);
    assert_eq!(app.action(&app.alice, "action=account").await.0, 403);
    assert_eq!(app.action(&newest, "action=account").await.0, 200);
    assert!(!b.exists("#revoke-older-form").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_tokenless_posts_are_refused() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    let cookie = b.session_cookie().await;
    let csrf = b.csrf().await;
    let own = app.base.clone();

    // A page of another site that posts a form to the settings page.
    let attack = format!(
        "<!doctype html><form id=f method=post action='{}/web/privacy'>\
         <input name=privacy value=on></form>\
         <script>document.getElementById('f').submit()</script>",
        app.base
    );
    b.goto(&format!(
        "data:text/html;charset=utf-8,{}",
        crate::helpers::enc(&attack)
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.body().await.contains("came from another site") {
        assert!(Instant::now() < deadline, "{}", b.body().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.read(&app.alice, "account").await["privacy"], false);

    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Pairs, Pairs)> = vec![
        ("no token", vec![("origin", &own)], vec![("privacy", "on")]),
        (
            "a wrong token",
            vec![("origin", &own)],
            vec![("privacy", "on"), ("csrf", "AAAA")],
        ),
        (
            "a foreign Origin",
            vec![("origin", "https://evil.example")],
            vec![("privacy", "on"), ("csrf", &csrf)],
        ),
        (
            "Origin null",
            vec![("origin", "null")],
            vec![("privacy", "on"), ("csrf", &csrf)],
        ),
        (
            "Sec-Fetch-Site cross-site",
            vec![("sec-fetch-site", "cross-site")],
            vec![("privacy", "on"), ("csrf", &csrf)],
        ),
    ];
    for (what, headers, form) in cases {
        let response = post_form(&app, "/web/privacy", Some(&cookie), &headers, &form).await;
        assert_eq!(response.status().as_u16(), 403, "{what}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(
            app.read(&app.alice, "account").await["privacy"],
            false,
            "{what} changed nothing"
        );
    }
    // Another session's token does not fit this session.
    let other = Browser::start().await;
    other.login(&app.base, BOB, BOB_PASSWORD).await;
    let bob_csrf = other.csrf().await;
    other.close().await;
    let response = post_form(
        &app,
        "/web/privacy",
        Some(&cookie),
        &[("origin", &own)],
        &[("privacy", "on"), ("csrf", &bob_csrf)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);

    // The same form from the page itself is accepted (and redirects back with a message).
    let response = no_redirects(&app)
        .post(format!("{}/web/privacy", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .header("origin", &own)
        .header("sec-fetch-site", "same-origin")
        .form(&[("privacy", "on"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/web/privacy");
    assert_eq!(app.read(&app.alice, "account").await["privacy"], true);

    // Without a session nothing is changed either.
    let response = post_form(
        &app,
        "/web/privacy",
        None,
        &[("origin", &own)],
        &[("privacy", "off"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(app.read(&app.alice, "account").await["privacy"], true);

    // Pages are not cached, framed or scripted inline; the API paths still need a certificate.
    let page = http(&app)
        .get(format!("{}/web/privacy", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let h = page.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let set_cookie = h["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }
    let api = http(&app)
        .get(format!("{}/settings.phtml?action=account", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 401, "a cookie is no certificate");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_refused_and_throttled() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;

    b.login(&app.base, ALICE, "wrong-password").await;
    assert_eq!(
        b.text("#login-password-error").await,
        "Wrong SIP address or password"
    );
    assert_eq!(b.value("#login-address").await, ALICE, "address kept");
    assert_eq!(b.value("#login-password").await, "");
    b.login(&app.base, "nobody@example.com", ALICE_PASSWORD)
        .await;
    assert_eq!(
        b.text("#login-password-error").await,
        "Wrong SIP address or password",
        "an unknown account gets the same answer"
    );
    for _ in 0..4 {
        b.login(&app.base, ALICE, "wrong-password").await;
        assert!(b.exists("#login-password-error").await);
    }
    // Five failures for alice: now even her right password is refused, for 15 minutes.
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    assert_eq!(
        b.text("#login-password-error").await,
        "Too many failed logins, try again in 15 minutes"
    );
    assert!(b.exists("#login-address").await, "still logged out");
    // Bob is not affected by alice's failures.
    b.login(&app.base, BOB, BOB_PASSWORD).await;
    assert!(b.body().await.contains(BOB), "{}", b.body().await);
    b.submit("header button").await;
    assert!(b.body().await.contains("You are logged out."));

    app.clock.advance(chrono::Duration::minutes(10));
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    assert_eq!(
        b.text("#login-password-error").await,
        "Too many failed logins, try again in 5 minutes"
    );
    app.clock.advance(chrono::Duration::minutes(5));
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    assert!(
        b.body().await.contains("Your account"),
        "{}",
        b.body().await
    );
    b.submit("header button").await;

    // 20 failures from one address, whatever the accounts, stop logins from it.
    app.clock.advance(chrono::Duration::minutes(15));
    for i in 0..20 {
        b.login(&app.base, &format!("user{i}@example.com"), "wrong-password")
            .await;
        assert_eq!(
            b.text("#login-password-error").await,
            "Wrong SIP address or password",
            "attempt {i}"
        );
    }
    b.login(&app.base, BOB, BOB_PASSWORD).await;
    assert_eq!(
        b.text("#login-password-error").await,
        "Too many failed logins, try again in 15 minutes"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_slide_expire_and_end_at_logout() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    let first_cookie = b.session_cookie().await;
    // Active use keeps the session: 25 minutes, twice.
    for _ in 0..2 {
        app.clock.advance(chrono::Duration::minutes(25));
        b.goto(&format!("{}/web/privacy", app.base)).await;
        assert!(b.exists("#privacy-form").await, "{}", b.body().await);
    }
    // 31 idle minutes end it.
    app.clock.advance(chrono::Duration::minutes(31));
    b.goto(&format!("{}/web/privacy", app.base)).await;
    assert!(b.exists("#login-address").await, "redirected to the login");
    b.goto(&format!("{}/", app.base)).await;
    assert!(b.exists("#login-address").await);

    // Logout clears the cookie in the browser.
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    let cookie = b.session_cookie().await;
    assert_ne!(cookie, first_cookie);

    // The signing key is the data directory's web.key (32 bytes, owner-only): another server
    // on the same data directory accepts the session.
    let key = std::fs::metadata(app.data_dir().join("web.key")).unwrap();
    assert_eq!(key.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    let second = sip_settings::app::RunningServer::start(&app.config, app.services.clone())
        .await
        .unwrap();
    let page = http(&app)
        .get(format!(
            "https://localhost:{}/web/forwarding",
            second.addr().port()
        ))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Save forwarding"));
    second.stop().await;
    b.submit("header button").await;
    assert!(b.body().await.contains("You are logged out."));
    assert!(b.c.get_named_cookie(SESSION_COOKIE).await.is_err());
    b.goto(&format!("{}/web/forwarding", app.base)).await;
    assert!(b.exists("#login-address").await);
    // As documented, a copy of the cookie stays valid until it expires (sessions are stateless).
    let page = http(&app)
        .get(format!("{}/web/forwarding", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    app.clock.advance(chrono::Duration::minutes(31));
    let page = no_redirects(&app)
        .get(format!("{}/web/forwarding", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 303, "expired");
    b.close().await;
}

/// JavaScript that lists inputs without a label and POST forms without a CSRF token.
const AUDIT: &str = r#"
const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id);
const tokenless = [...document.querySelectorAll('form')]
  .filter(f => f.method === 'post' && !(f.querySelector('input[name=csrf]') || {}).value)
  .map(f => f.action);
return {unlabelled, tokenless, lang: document.documentElement.lang,
        h1: (document.querySelector('h1') || {}).textContent || '',
        current: (document.querySelector('nav [aria-current=page]') || {}).textContent || ''};
"#;

/// Every tab: labelled fields, CSRF tokens, the language, the current tab marked, a heading;
/// the first Tab reaches the skip link.
async fn audit_every_tab(app: &TestApp, b: &Browser) {
    let tabs = [
        ("/", "Info"),
        ("/web/forwarding", "Forwarding"),
        ("/web/rules", "Rules"),
        ("/web/what-happens", "What happens"),
        ("/web/accept", "Accept & DND"),
        ("/web/reject", "Reject"),
        ("/web/privacy", "Privacy"),
        ("/web/aliases", "Aliases"),
        ("/web/voicemail", "Voicemail"),
        ("/web/phonebook", "Phonebook"),
        ("/web/calls", "Calls"),
        ("/web/balance", "Balance"),
        ("/web/journal", "Journal"),
    ];
    for (path, label) in tabs {
        b.goto(&format!("{}{path}", app.base)).await;
        let audit = b.c.execute(AUDIT, vec![]).await.unwrap();
        assert_eq!(
            audit["unlabelled"],
            json!([]),
            "{path}: every field has a label"
        );
        assert_eq!(
            audit["tokenless"],
            json!([]),
            "{path}: every form has a CSRF token"
        );
        assert_eq!(audit["lang"], "en");
        assert_eq!(audit["current"], label, "{path}: the tab is marked current");
        assert!(!audit["h1"].as_str().unwrap().is_empty());
    }

    // Keyboard: the first Tab reaches the skip link, which moves to the content.
    b.goto(&format!("{}/web/reject", app.base)).await;
    let focused =
        b.c.execute(
            "document.body.focus(); return document.querySelector('.skip').getAttribute('href');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focused, "#main");
}

/// Reject rules and aliases through the browser: refusals next to the field, then added and
/// removed.
async fn reject_and_aliases_in_the_browser(app: &TestApp, b: &Browser) {
    // Reject: refused input is kept with the service's message; then added and removed.
    b.type_into("#reject-pattern", "spam@example.net").await;
    b.submit("#reject-add").await;
    assert!(
        b.text("#reject-pattern-error")
            .await
            .starts_with("pattern 'spam@example.net' must start with sip:")
    );
    assert_eq!(b.value("#reject-pattern").await, "spam@example.net");
    b.type_into("#reject-pattern", "sip:spam@example.net").await;
    b.submit("#reject-add").await;
    assert_eq!(
        app.read(&app.alice, "reject").await,
        json!(["sip:spam@example.net"])
    );
    b.submit("ul.list button").await;
    assert_eq!(app.read(&app.alice, "reject").await, json!([]));

    // Aliases: a taken name is refused (409) next to the field.
    b.goto(&format!("{}/web/aliases", app.base)).await;
    b.type_into("#alias-username", "bob").await;
    b.submit("#alias-add").await;
    assert!(
        b.text("#alias-username-error")
            .await
            .contains("already taken")
    );
    b.type_into("#alias-username", "Alice.Smith").await;
    b.submit("#alias-add").await;
    assert_eq!(
        b.text(".flash").await,
        "Alias alice.smith@example.com added"
    );
    assert_eq!(
        app.read(&app.alice, "aliases").await,
        json!(["alice.smith@example.com"])
    );
    b.submit("#alias-list button").await;
    assert_eq!(app.read(&app.alice, "aliases").await, json!([]));
}

/// A phonebook contact, an accept rule naming its group, voicemail and privacy through the
/// browser.
async fn phonebook_accept_voicemail_privacy_in_the_browser(app: &TestApp, b: &Browser) {
    // Phonebook, then an accept rule naming its group.
    b.goto(&format!("{}/web/phonebook", app.base)).await;
    b.type_into("#phonebook-uri", "mom@example.org").await;
    b.type_into("#phonebook-name", "Mom").await;
    b.type_into("#phonebook-group", "family").await;
    b.submit("#phonebook-save").await;
    assert_eq!(b.text(".flash").await, "Contact sip:mom@example.org saved");
    b.goto(&format!("{}/web/accept", app.base)).await;
    b.click("#rule-form input[name=d_sat]").await;
    b.click("#rule-form input[name=d_sun]").await;
    // Everybody, nobody and groups are one choice (radio buttons): they cannot be combined.
    b.click("#rule-form input[name=who][value=everybody]").await;
    b.click("#rule-form input[name=who][value=nobody]").await;
    assert!(
        !b.checked("#rule-form input[name=who][value=everybody]")
            .await
    );
    b.click("#rule-form input[name=who][value=groups]").await;
    b.submit("#rule-save").await;
    assert!(
        b.text("#rule-groups-error")
            .await
            .contains("groups needs at least one group ticked, or Everybody or Nobody chosen")
    );
    assert!(
        b.checked("#rule-form input[name=d_sat]").await,
        "input kept"
    );
    assert!(b.checked("#rule-form input[name=who][value=groups]").await);
    b.click("#rule-form input[name=g_family]").await;
    b.submit("#rule-save").await;
    assert_eq!(b.text(".flash").await, "Rule for Saturday and Sunday added");
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(
        accept["persistent"]["96"],
        json!({"start": "09:00", "stop": "17:00", "groups": ["family"]}),
        "{accept}"
    );

    // Voicemail and privacy.
    b.goto(&format!("{}/web/voicemail", app.base)).await;
    b.type_into("#voicemail-pin", "12").await;
    b.submit("#voicemail-enable").await;
    assert_eq!(
        b.text("#voicemail-pin-error").await,
        "pin must be 4 to 10 digits"
    );
    b.type_into("#voicemail-email", "alice@example.org").await;
    b.type_into("#voicemail-pin", "4321").await;
    b.submit("#voicemail-enable").await;
    let v = app.read(&app.alice, "voicemail").await;
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(v["email"], "alice@example.org", "{v}");
    b.goto(&format!("{}/web/privacy", app.base)).await;
    b.click("input[name=privacy][value=on]").await;
    b.submit("#privacy-save").await;
    assert_eq!(app.read(&app.alice, "account").await["privacy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tab_works_and_is_accessible() {
    let app = TestApp::spawn().await;
    let start = app.clock.now() - chrono::Duration::days(2);
    let start = start - chrono::Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
    let stop = start + chrono::Duration::seconds(125);
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    app.services
        .record_call(&CallInput {
            call_id: "web-call-1".into(),
            from_tag: "f".into(),
            to_tag: "t".into(),
            caller: format!("sip:{ALICE}"),
            callee: "sip:+31201234567@example.com".into(),
            start: rfc(start),
            stop: rfc(stop),
            duration: Some(125),
            status: Some(200),
            media: vec!["audio".into()],
            proxy_ip: "192.0.2.1".into(),
            price: Some("0.2500".into()),
        })
        .await
        .unwrap();
    let local_start = start.format("%Y-%m-%d %H:%M:%S").to_string();
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;

    audit_every_tab(&app, &b).await;
    reject_and_aliases_in_the_browser(&app, &b).await;
    phonebook_accept_voicemail_privacy_in_the_browser(&app, &b).await;

    // Calls in local time, balance history as CSV.
    b.goto(&format!("{}/web/calls", app.base)).await;
    let placed = b.text("#placed").await;
    assert!(placed.contains(&local_start), "{placed}");
    assert!(placed.contains("sip:+31201234567@example.com"), "{placed}");
    assert!(
        placed.contains("2:05") && placed.contains("0.25") && !placed.contains("0.2500"),
        "{placed}"
    );
    let cookie = b.session_cookie().await;
    let csv = http(&app)
        .get(format!("{}/web/balance.csv", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    assert!(
        csv.text()
            .await
            .unwrap()
            .starts_with("Id,Account,Date,Action,Description,Value,Final Balance\r\n")
    );
    b.goto(&format!("{}/web/balance", app.base)).await;
    assert!(b.text("#balance").await.contains("postpaid"));
    balance_in_the_browser(&app, &b).await;
    axe_every_tab(&app, &b).await;
    b.close().await;
}

/// axe-core's script: `SIP_SETTINGS_AXE_JS`, or where `.ci/run` installs it
/// (`~/.cache/sip-settings/axe-core`); `None` (the check says it is skipped) without it.
fn axe_source() -> Option<String> {
    let path = std::env::var_os("SIP_SETTINGS_AXE_JS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                Path::new(&h).join(".cache/sip-settings/axe-core/node_modules/axe-core/axe.min.js")
            })
        })?;
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            eprintln!(
                "axe-core not found at {} ({e}): the accessibility check with axe-core is \
                 skipped (.ci/run installs it with npm; or set SIP_SETTINGS_AXE_JS)",
                path.display()
            );
            None
        }
    }
}

/// axe-core on every tab, filled with the data of the tests before: no violation at all, of
/// any impact (axe's default rules: WCAG 2.x A and AA, and its best practices).
async fn axe_every_tab(app: &TestApp, b: &Browser) {
    let Some(axe) = axe_source() else {
        return;
    };
    for tab in [
        "/",
        "/web/forwarding",
        "/web/rules",
        "/web/what-happens",
        "/web/accept",
        "/web/reject",
        "/web/privacy",
        "/web/aliases",
        "/web/voicemail",
        "/web/phonebook",
        "/web/calls",
        "/web/balance",
        "/web/journal",
    ] {
        b.goto(&format!("{}{tab}", app.base)).await;
        b.c.execute(&format!("{axe}\nreturn true;"), vec![])
            .await
            .expect("axe-core loads");
        let violations = b
            .c
            .execute_async(
                "var done = arguments[arguments.length - 1]; \
                 axe.run(document, {resultTypes: ['violations']}).then(function (r) { \
                   done(r.violations.map(function (v) { return v.id + ' (' + v.impact + '): ' + v.help + ' at ' + \
                       v.nodes.map(function (n) { return n.target.join(' '); }).join(', '); })); \
                 }, function (e) { done(['axe failed: ' + e]); });",
                vec![],
            )
            .await
            .expect("axe-core runs");
        assert_eq!(
            violations,
            json!([]),
            "{tab}: serious accessibility violations"
        );
    }
}

/// The Balance tab's pictures: the last 12 months' usage as bars beside their table, the
/// balance over time as a line above its history; amounts as a person reads them.
async fn balance_in_the_browser(app: &TestApp, b: &Browser) {
    let id = AccountId::parse(ALICE).unwrap();
    let money = |m: &str| sip_settings_core::money::Money::parse_for("amount", m).unwrap();
    app.services
        .topup(&id, money("12.34"), "Voucher")
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::minutes(1));
    app.services
        .topup(&id, money("5"), "Voucher")
        .await
        .unwrap();
    b.goto(&format!("{}/web/balance", app.base)).await;
    let charts: Value = b
        .c
        .execute(
            "return ['usage-chart', 'balance-chart'].map(function (id) { \
                 var svg = document.getElementById(id); \
                 return svg ? [svg.getAttribute('role'), svg.querySelector('title').textContent, \
                               svg.querySelectorAll('rect').length, svg.querySelectorAll('path').length, \
                               svg.getBoundingClientRect().width] : null; });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(charts[0][0], "img", "{charts}");
    assert_eq!(charts[0][1], "Price of the calls placed, by month");
    assert_eq!(charts[0][2], 12, "a bar per month: {charts}");
    assert_eq!(charts[1][1], "Balance after each change");
    assert_eq!(charts[1][3], 1, "one line: {charts}");
    assert!(charts[0][4].as_f64().unwrap() > 200.0, "drawn: {charts}");
    let months = b.text("#months").await;
    assert!(months.contains("0.25"), "the placed call's price: {months}");
    let history = b.text("main").await;
    assert!(
        history.contains("+12.34") && history.contains("17.34") && !history.contains("12.3400"),
        "{history}"
    );
    b.screenshot("web-balance.png").await;
    b.on_a_phone(&format!("{}/web/balance", app.base)).await;
    b.scroll_to("year-h").await;
    b.screenshot("web-balance-phone.png").await;
    b.c.set_window_size(1280, 1000).await.expect("resize");
}

/// The forwarding rules as the API shows them: (trigger, enabled, targets of each step).
async fn rules_now(app: &TestApp) -> Vec<(String, bool, Vec<Vec<String>>)> {
    let id = AccountId::parse(ALICE).unwrap();
    let doc = app.services.forwarding(&id).await.unwrap().document();
    doc.rules
        .into_iter()
        .map(|r| {
            (
                r.trigger,
                r.enabled,
                r.steps.into_iter().map(|s| s.targets).collect(),
            )
        })
        .collect()
}

/// Sets a time input (typed keys depend on the browser's locale).
async fn set_time(b: &Browser, id: &str, value: &str) {
    b.c.execute(
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![json!(id), json!(value)],
    )
    .await
    .unwrap();
}

/// The sets the rules of [`forwarding_rules_edited_in_the_browser`] use, made in the page:
/// family (callers) and weeknights (times).
async fn make_sets_in_the_browser(b: &Browser) {
    b.type_into("#caller-set-name", "family").await;
    b.type_into("#caller-set-members", "sip:carol@example.org, group:family")
        .await;
    b.submit("#caller-set-save").await;
    assert_eq!(b.flash().await, "Callers “family” saved");
    b.type_into("#time-set-name", "nights").await;
    for day in ["d_mon", "d_tue", "d_wed", "d_thu", "d_fri"] {
        b.click(&format!("#time-set-form input[name=w0_{day}]"))
            .await;
    }
    set_time(b, "time-set-w0_start", "22:00").await;
    set_time(b, "time-set-w0_stop", "07:00").await;
    b.type_into("#time-set-yearly", "12-25").await;
    b.submit("#time-set-save").await;
    assert_eq!(b.flash().await, "Times “nights” saved");
    let sets = b.text("#sets").await;
    assert!(
        sets.contains("Monday to Friday 22:00–07:00; every 12-25"),
        "{sets}"
    );
}

/// The Rules tab: sets made, a rule refused with the message on its step and the input kept,
/// rules added, changed, reordered, turned off and removed, all seen through the API; a set in
/// use cannot be removed; the page fits a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_rules_edited_in_the_browser() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    b.goto(&format!("{}/web/rules", app.base)).await;
    assert!(b.exists("#no-rules").await, "{}", b.body().await);

    make_sets_in_the_browser(&b).await;

    // A rule whose second step is the voice mailbox, which is off: refused on that step, with
    // everything typed kept.
    b.click("#rule-trigger option[value=unconditional]").await;
    b.click("#rule-time option[value=nights]").await;
    b.type_into("#s0-targets", "bob").await;
    b.type_into("#s0-ring", "20").await;
    b.type_into("#s1-targets", "<voice-mailbox>").await;
    b.submit("#rule-save").await;
    let error = b.text("#s1-error").await;
    assert!(
        error.contains("Step 2, destination 1 is <voice-mailbox> but voicemail is not enabled"),
        "{error}"
    );
    assert_eq!(b.value("#s0-targets").await, "bob", "input kept");
    assert_eq!(b.value("#s0-ring").await, "20", "input kept");
    assert_eq!(b.value("#rule-time").await, "nights", "input kept");
    b.scroll_to("step-1").await;
    b.screenshot("web-rules-refused.png").await;
    assert!(rules_now(&app).await.is_empty(), "nothing written");

    b.type_into("#s1-targets", "+31201234567, dave@example.net")
        .await;
    b.submit("#rule-save").await;
    assert_eq!(b.flash().await, "Rule 1 added");
    assert_eq!(
        rules_now(&app).await,
        [(
            "unconditional".to_owned(),
            true,
            vec![
                vec!["sip:bob@example.com".to_owned()],
                vec![
                    "sip:+31201234567@example.com".to_owned(),
                    "sip:dave@example.net".to_owned()
                ]
            ]
        )]
    );
    let card = b.text("ol#rules li:nth-child(1)").await;
    assert!(
        card.contains("only at the times of “nights”")
            && card.contains("bob@example.com for 20 s; then +31201234567@example.com, dave@example.net (together), ringing 35 s"),
        "{card}"
    );

    // A second rule, for the family when busy; then moved up, turned off, changed.
    b.click("#rule-trigger option[value=busy]").await;
    b.click("#rule-callers option[value=family]").await;
    b.type_into("#s0-targets", "bob").await;
    b.submit("#rule-save").await;
    assert_eq!(b.flash().await, "Rule 2 added");
    b.screenshot("web-rules.png").await;
    let second = app
        .services
        .forwarding(&AccountId::parse(ALICE).unwrap())
        .await
        .unwrap()
        .rules[1]
        .id;
    b.submit(&format!(
        "#rule-{second} form[action='/web/rules/move'] button"
    ))
    .await;
    assert_eq!(b.flash().await, "Rule moved to place 1");
    b.submit(&format!(
        "#rule-{second} form[action='/web/rules/toggle'] button"
    ))
    .await;
    assert_eq!(b.flash().await, "Rule 1 turned off");
    let now = rules_now(&app).await;
    assert_eq!(
        now.iter()
            .map(|(t, e, _)| (t.as_str(), *e))
            .collect::<Vec<_>>(),
        [("busy", false), ("unconditional", true)]
    );
    b.click(&format!("#rule-{second} a.button")).await;
    b.wait_new_page().await;
    assert_eq!(
        b.value("#rule-trigger").await,
        "busy",
        "the rule's own values"
    );
    assert_eq!(b.value("#rule-callers").await, "family");
    assert!(!b.checked("#rule-form input[name=enabled]").await);
    b.click("#rule-trigger option[value=no_answer]").await;
    b.click("#rule-form input[name=enabled]").await;
    b.submit("#rule-save").await;
    assert_eq!(b.flash().await, "Rule 1 saved");
    assert_eq!(rules_now(&app).await[0].0, "no_answer");
    assert!(rules_now(&app).await[0].1);

    // A set in use stays; the page fits a phone.
    b.submit("#sets form button[aria-label='Remove set family']")
        .await;
    let alert = b.text("#alert").await;
    assert!(alert.contains("family"), "{alert}");
    b.on_a_phone(&format!("{}/web/rules", app.base)).await;
    b.screenshot("web-rules-phone.png").await;
    b.scroll_to("rule-form").await;
    b.screenshot("web-rules-phone-form.png").await;
    b.c.set_window_size(1280, 1000).await.expect("resize");

    // Removed; every change is journaled as the web page's.
    b.goto(&format!("{}/web/rules", app.base)).await;
    b.submit(&format!(
        "#rule-{second} form[action='/web/rules/remove'] button"
    ))
    .await;
    assert_eq!(b.flash().await, "Rule 1 removed");
    assert_eq!(rules_now(&app).await.len(), 1);
    let id = AccountId::parse(ALICE).unwrap();
    let journal = app.services.journal_entries(&id, None, 50).await.unwrap();
    let web: Vec<_> = journal
        .iter()
        .filter(|e| e.entry.door == "web")
        .map(|e| e.entry.resource.clone())
        .collect();
    for resource in [
        "forwarding.caller_sets.family",
        "forwarding.time_sets.nights",
        "forwarding.order",
        &format!("forwarding.rules.{second}"),
    ] {
        assert!(web.iter().any(|r| r == resource), "{resource} in {web:?}");
    }
    journal_fits(&app, &b).await;
    b.close().await;
}

/// The Journal, holding long JSON values (forwarding rules), fits its box at 1280 px and the
/// phone's width at 390 px, and breaks its values only between tokens.
async fn journal_fits(app: &TestApp, b: &Browser) {
    for width in [1280, 390] {
        b.c.set_window_size(width, 900).await.expect("resize");
        b.goto(&format!("{}/web/journal", app.base)).await;
        let sizes: Value = b
            .c
            .execute(
                "const box = document.querySelector('#journal').parentElement; \
                 return [box.scrollWidth, box.clientWidth, \
                         document.documentElement.scrollWidth, window.innerWidth, \
                         getComputedStyle(document.querySelector('#journal td.value')).overflowWrap];",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            sizes[0].as_i64() <= sizes[1].as_i64(),
            "the journal overflows its box at {width} px: {sizes}"
        );
        assert!(
            sizes[2].as_i64() <= sizes[3].as_i64(),
            "sideways scrolling at {width} px: {sizes}"
        );
        assert_eq!(sizes[4], "normal", "no breaks inside a token");
        if width == 390 {
            b.screenshot("web-journal-phone.png").await;
        } else {
            b.screenshot("web-journal.png").await;
        }
    }
    b.c.set_window_size(1280, 1000).await.expect("resize");
}

/// The "What happens" tab answers as `GET /v1/me/routing/explain` does, on a table of cases:
/// the same path, line for line, and the same outcome; the flow has a box per step and fits a
/// phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_happens_is_what_explain_says() {
    let app = TestApp::spawn().await;
    app.action(
        &app.alice,
        "action=set_diversions&FBUS=bob&FNOA=%2B31201234567",
    )
    .await;
    let id = AccountId::parse(ALICE).unwrap();
    let mom = sip_settings_core::settings::PhonebookEntry {
        uri: sip_settings_core::settings::parse_contact_uri("mom@example.org").unwrap(),
        name: "Mom".to_owned(),
        groups: sip_settings_core::settings::parse_phonebook_groups(&["family".to_owned()])
            .unwrap(),
    };
    app.services.put_phonebook_entry(&id, &mom).await.unwrap();
    use sip_settings_core::settings::{AcceptRule, ClockTime, DaysMask, Group, RejectPattern};
    app.services
        .add_reject(&id, &RejectPattern::parse("sip:spam%@example.net").unwrap())
        .await
        .unwrap();
    let weekend = AcceptRule {
        days: DaysMask::new(96).unwrap(),
        start: ClockTime::parse_for("start", "09:00").unwrap(),
        stop: ClockTime::parse_for("stop", "17:00").unwrap(),
        groups: vec![Group::parse("family").unwrap()],
    };
    app.services.put_accept_rule(&id, &weekend).await.unwrap();
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    // (page query, explain query)
    let saturday = "2027-01-02";
    let cases = [
        ("caller=anonymous", "caller=anonymous".to_owned()),
        (
            "caller=sip%3Amom%40example.org&day=2027-01-02&time=10%3A00",
            format!("caller=sip%3Amom%40example.org&at={saturday}T10%3A00%3A00Z"),
        ),
        (
            "caller=other&other=carol%40example.net&day=2027-01-02&time=10%3A00",
            format!("caller=carol%40example.net&at={saturday}T10%3A00%3A00Z"),
        ),
        (
            "caller=other&other=spam1%40example.net",
            "caller=spam1%40example.net".to_owned(),
        ),
        (
            "caller=anonymous&offline=1",
            "caller=anonymous&registered=false".to_owned(),
        ),
        (
            "caller=anonymous&busy=1&day=2027-01-04&time=23%3A15",
            "caller=anonymous&busy=true&at=2027-01-04T23%3A15%3A00Z".to_owned(),
        ),
    ];
    let mut outcomes = Vec::new();
    for (page, api) in cases {
        b.goto(&format!("{}/web/what-happens?{page}", app.base))
            .await;
        let shown: Value = b
            .c
            .execute(
                "return [Array.from(document.querySelectorAll('#path li')).map(function (li) { return li.textContent; }), \
                         document.getElementById('ending').getAttribute('data-outcome'), \
                         document.querySelectorAll('#flow rect').length, \
                         document.querySelectorAll('#path li').length + document.querySelectorAll('#ending li').length];",
                vec![],
            )
            .await
            .unwrap();
        let response = app
            .client(Some(&app.alice))
            .get(format!("{}/v1/me/routing/explain?{api}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{api}");
        let explained: Value = response.json().await.unwrap();
        assert_eq!(shown[0], explained["path"], "{page}");
        let outcome: Value = serde_json::from_str(shown[1].as_str().unwrap()).unwrap();
        assert_eq!(outcome, explained["outcome"], "{page}");
        assert_eq!(shown[2], shown[3], "a box per step and per ending: {page}");
        outcomes.push(outcome["action"].as_str().unwrap().to_owned());
    }
    // The table reaches every kind of ending.
    for action in ["ring", "reject", "forward"] {
        assert!(
            outcomes.iter().any(|a| a == action),
            "{action} in {outcomes:?}"
        );
    }
    // A moment that does not exist is refused with its reason; the page stays usable.
    b.goto(&format!(
        "{}/web/what-happens?caller=anonymous&day=2027-13-01",
        app.base
    ))
    .await;
    assert!(b.text("#what-error").await.contains("day must be a date"));
    b.goto(&format!(
        "{}/web/what-happens?caller=sip%3Amom%40example.org&day={saturday}&time=10%3A00",
        app.base
    ))
    .await;
    b.screenshot("web-what-happens.png").await;
    b.on_a_phone(&format!(
        "{}/web/what-happens?caller=anonymous&busy=1&day=2027-01-04&time=23%3A15",
        app.base
    ))
    .await;
    b.scroll_to("answer-h").await;
    b.screenshot("web-what-happens-phone.png").await;
    b.close().await;
}

/// The coming 7 days on the Accept & DND tab, in Amsterdam across the spring clock change: Do
/// Not Disturb now, the weekend rule for the family, the 23-hour Sunday said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_week_ahead_follows_the_rules_and_the_clock_change() {
    use chrono::TimeZone;
    use sip_settings_core::settings::{AcceptRule, ClockTime, DaysMask, Group};
    let app = TestApp::spawn().await;
    app.clock
        .set(chrono::Utc.with_ymd_and_hms(2027, 3, 26, 8, 0, 0).unwrap());
    let response = app
        .client(Some(&app.alice))
        .patch(format!("{}/v1/me", app.base))
        .json(&json!({"timezone": "Europe/Amsterdam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let id = AccountId::parse(ALICE).unwrap();
    let weekend = AcceptRule {
        days: DaysMask::new(96).unwrap(),
        start: ClockTime::parse_for("start", "09:00").unwrap(),
        stop: ClockTime::parse_for("stop", "17:00").unwrap(),
        groups: vec![Group::parse("family").unwrap()],
    };
    app.services.put_accept_rule(&id, &weekend).await.unwrap();
    app.services.dnd_on(&id, Some("30")).await.unwrap();
    let b = Browser::start().await;
    b.login(&app.base, ALICE, ALICE_PASSWORD).await;
    b.goto(&format!("{}/web/accept", app.base)).await;
    let rows: Value = b
        .c
        .execute(
            "return Array.from(document.querySelectorAll('#week tbody tr')).map(function (tr) { return tr.textContent; });",
            vec![],
        )
        .await
        .unwrap();
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(
        rows[0],
        "Fri 2027-03-2609:00–09:30 nobody (Do Not Disturb); 09:30–24:00 everybody"
    );
    assert_eq!(
        rows[1],
        "Sat 2027-03-2700:00–09:00 everybody; 09:00–17:00 only family; 17:00–24:00 everybody"
    );
    assert!(
        rows[2].starts_with("Sun 2027-03-2800:00–09:00 everybody; 09:00–17:00 only family")
            && rows[2].contains("the clocks go forward an hour"),
        "{rows:?}"
    );
    let segments: Value =
        b.c.execute(
            "return document.querySelectorAll('#week-chart rect.segment').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(segments, 2 + 3 + 3 + 4, "a bar per segment");
    b.scroll_to("week-h").await;
    b.screenshot("web-week.png").await;
    b.on_a_phone(&format!("{}/web/accept", app.base)).await;
    b.scroll_to("week-h").await;
    b.screenshot("web-week-phone.png").await;
    b.close().await;
}
