//! Password throttling by account: every door that takes the SIP password (the web login, the
//! web `.p12` download, the action endpoint's `p12`) counts failures under the account the text
//! resolves to, whatever its spelling; over the limit even the right password is answered 429
//! with `Retry-After`. Web POSTs have the API's rate budgets. Password checks run off the
//! request workers, so a flood of them leaves other users' reads answered.

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use serde_json::Value;
use sip_settings_core::AccountId;
use sip_settings_http::ratelimit::{Budget, RateLimits};

use crate::helpers::*;

const LOGIN_COOKIE: &str = "__Host-sip-login";
const SESSION_COOKIE: &str = "__Host-sip-session";

/// The value of cookie `name` set by a response.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// The CSRF token of a page's first form.
fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no csrf field in {html}"));
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The login form of a fresh visitor: its nonce cookie and CSRF token.
struct LoginForm {
    client: reqwest::Client,
    base: String,
    nonce: String,
    csrf: String,
}

impl LoginForm {
    async fn open(app: &TestApp) -> Self {
        let client = no_redirects(app);
        let page = client.get(format!("{}/", app.base)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let nonce = set_cookie(&page, LOGIN_COOKIE).expect("login nonce cookie");
        let csrf = csrf_of(&page.text().await.unwrap());
        Self {
            client,
            base: app.base.clone(),
            nonce,
            csrf,
        }
    }

    /// Posts the login form; the status, `Retry-After` and the session cookie if one was set.
    async fn login(&self, address: &str, password: &str) -> (u16, Option<String>, Option<String>) {
        let response = self
            .client
            .post(format!("{}/web/login", self.base))
            .header(COOKIE, format!("{LOGIN_COOKIE}={}", self.nonce))
            .form(&[
                ("address", address),
                ("password", password),
                ("csrf", &self.csrf),
            ])
            .send()
            .await
            .unwrap();
        let retry = response
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let session = set_cookie(&response, SESSION_COOKIE);
        (response.status().as_u16(), retry, session)
    }
}

/// A logged-in web session: its cookie and the CSRF token of its forms.
struct WebSession {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl WebSession {
    async fn start(app: &TestApp, address: &str, password: &str) -> Self {
        let form = LoginForm::open(app).await;
        let (status, _, session) = form.login(address, password).await;
        assert_eq!(status, 303, "login of {address}");
        let cookie = session.expect("session cookie");
        let page = form
            .client
            .get(format!("{}/web/info", app.base))
            .header(COOKIE, format!("{SESSION_COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csrf = csrf_of(&page.text().await.unwrap());
        Self {
            client: form.client,
            base: app.base.clone(),
            cookie,
            csrf,
        }
    }

    /// Posts a form of the page; the status, `Retry-After` and the body.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, Vec<u8>) {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &self.csrf));
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("{SESSION_COOKIE}={}", self.cookie))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, response.bytes().await.unwrap().to_vec())
    }
}

/// Asks the action endpoint for a `.p12` with `password`; status, `Retry-After`, body.
async fn action_p12(
    app: &TestApp,
    cert: &sip_settings_core::cert::IssuedCertificate,
    password: &str,
) -> (u16, Option<String>, Vec<u8>) {
    let response = app
        .post_raw(cert, &[("action", "p12"), ("password", password)])
        .await;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, response.bytes().await.unwrap().to_vec())
}

/// `alice.smith@example.com`, an alias of alice.
async fn add_alias(app: &TestApp) {
    app.services
        .add_alias(
            &AccountId::parse("alice.smith@example.com").unwrap(),
            &AccountId::parse(ALICE).unwrap(),
        )
        .await
        .unwrap();
}

/// The spellings of alice's address that the login parses to her account.
const SPELLINGS: [&str; 7] = [
    "alice@example.com",
    "sip:alice@example.com",
    "SIP:alice@example.com",
    "alice@ example.com",
    "alice@\u{a0}example.com",
    "ALICE@Example.COM",
    "alice.smith@example.com",
];

#[tokio::test]
async fn every_spelling_of_an_account_shares_one_counter() {
    let app = TestApp::spawn().await;
    add_alias(&app).await;
    let form = LoginForm::open(&app).await;
    // Each spelling logs in (the alias logs in to its account).
    for spelling in SPELLINGS {
        let (status, _, session) = form.login(spelling, ALICE_PASSWORD).await;
        assert_eq!(status, 303, "{spelling:?} logs in");
        assert!(session.is_some());
    }
    // Wrong guesses, one per spelling, round-robin: the sixth is already refused.
    let mut guesses = 0;
    let mut refused = None;
    for (i, spelling) in SPELLINGS.iter().cycle().take(30).enumerate() {
        let (status, retry, _) = form.login(spelling, "wrong-password").await;
        if status == 429 {
            refused = Some((i, retry));
            break;
        }
        assert_eq!(status, 401, "guess {i} with {spelling:?}");
        guesses += 1;
    }
    eprintln!("figure: wrong guesses across spellings before 429: {guesses}");
    let (_, retry) = refused.expect("429 within 30 guesses");
    assert_eq!(
        guesses, 5,
        "five failures per account, whatever the spelling"
    );
    assert_eq!(retry.as_deref(), Some("900"), "15 minutes");
    // Now every spelling is refused, the right password too, and nothing logs in.
    for spelling in SPELLINGS {
        let (status, retry, session) = form.login(spelling, ALICE_PASSWORD).await;
        assert_eq!(status, 429, "{spelling:?} with the right password");
        assert!(retry.is_some());
        assert!(session.is_none());
    }
    // The .p12 doors are closed for alice too: her counter is one for all doors.
    let (status, retry, body) = action_p12(&app, &app.alice, ALICE_PASSWORD).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert_eq!(retry.as_deref(), Some("900"));
    // Bob is not affected.
    assert_eq!(form.login(BOB, BOB_PASSWORD).await.0, 303);
    // The window passes: alice logs in again.
    app.clock.advance(chrono::Duration::minutes(15));
    assert_eq!(
        form.login("SIP:alice@example.com", ALICE_PASSWORD).await.0,
        303
    );
}

#[tokio::test]
async fn text_that_names_no_account_is_counted_per_address() {
    let app = TestApp::spawn().await;
    let form = LoginForm::open(&app).await;
    for i in 0..20 {
        let (status, _, _) = form
            .login(&format!("no account {i}"), "wrong-password")
            .await;
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, retry, _) = form.login(BOB, BOB_PASSWORD).await;
    assert_eq!(
        status, 429,
        "twenty failures from one address stop its logins"
    );
    assert_eq!(retry.as_deref(), Some("900"));
}

#[tokio::test]
async fn the_web_p12_download_is_throttled_with_the_login() {
    let app = TestApp::spawn().await;
    let web = WebSession::start(&app, ALICE, ALICE_PASSWORD).await;
    let certificates = app.cert_list_lines(ALICE);
    let mut guesses = 0;
    let mut refused = None;
    for i in 0..30 {
        let (status, retry, body) = web
            .post("/web/certificates/p12", &[("password", "wrong-password")])
            .await;
        if status == 429 {
            refused = Some((retry, body));
            break;
        }
        assert_eq!(status, 400, "guess {i}: {}", String::from_utf8_lossy(&body));
        guesses += 1;
    }
    eprintln!("figure: web .p12 wrong passwords before 429: {guesses}");
    let (retry, body) = refused.expect("429 within 30 guesses");
    assert_eq!(guesses, 5);
    assert_eq!(retry.as_deref(), Some("900"));
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("Too many failed password attempts"), "{page}");
    // The right password is refused now too, and no certificate was issued.
    let (status, _, _) = web
        .post("/web/certificates/p12", &[("password", ALICE_PASSWORD)])
        .await;
    assert_eq!(status, 429);
    assert_eq!(
        app.cert_list_lines(ALICE),
        certificates,
        "no certificate issued"
    );
    // The login shares the counter.
    let form = LoginForm::open(&app).await;
    assert_eq!(form.login(ALICE, ALICE_PASSWORD).await.0, 429);
    app.clock.advance(chrono::Duration::minutes(15));
    let (status, _, body) = web
        .post("/web/certificates/p12", &[("password", ALICE_PASSWORD)])
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn the_action_p12_is_throttled() {
    let app = TestApp::spawn().await;
    let mut guesses = 0;
    let mut refused = None;
    for i in 0..30 {
        let (status, retry, body) = action_p12(&app, &app.alice, "wrong-password").await;
        if status == 429 {
            refused = Some((retry, body));
            break;
        }
        assert_eq!(status, 400, "guess {i}: {}", String::from_utf8_lossy(&body));
        guesses += 1;
    }
    eprintln!("figure: action p12 wrong passwords before 429: {guesses}");
    let (retry, body) = refused.expect("429 within 30 guesses");
    assert_eq!(guesses, 5);
    assert_eq!(retry.as_deref(), Some("900"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(
        body["error_message"],
        "Error: too many failed password attempts for this account, try again in 900 s"
    );
    let (status, _, _) = action_p12(&app, &app.alice, ALICE_PASSWORD).await;
    assert_eq!(status, 429, "the right password too");
    // Bob's certificate and password are not affected.
    let (status, _, _) = action_p12(&app, &app.bob, BOB_PASSWORD).await;
    assert_eq!(status, 200);
    // Time passes: the right password works again and clears the count.
    app.clock.advance(chrono::Duration::minutes(15));
    let (status, _, _) = action_p12(&app, &app.alice, ALICE_PASSWORD).await;
    assert_eq!(status, 200);
}

fn small_writes() -> RateLimits {
    let plenty = Budget {
        per_second: 1000.0,
        burst: 1000.0,
    };
    RateLimits {
        certificate_reads: plenty,
        certificate_writes: Budget {
            per_second: 0.5,
            burst: 3.0,
        },
        address_reads: plenty,
        address_writes: Budget {
            per_second: 0.5,
            burst: 5.0,
        },
    }
}

#[tokio::test]
async fn web_posts_have_the_write_budgets() {
    let app = TestApp::spawn_with(|c| c.rate_limits = Some(small_writes())).await;
    // Logged in: three changes, then 429 (the account's write budget), with the wait.
    let web = WebSession::start(&app, ALICE, ALICE_PASSWORD).await; // write 1 of the address
    for i in 0..3 {
        let path = if i % 2 == 0 {
            "/web/dnd/on"
        } else {
            "/web/dnd/off"
        };
        assert_eq!(web.post(path, &[]).await.0, 303, "change {i}");
    }
    let (status, retry, body) = web.post("/web/dnd/off", &[]).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert_eq!(retry.as_deref(), Some("2"));
    assert_eq!(
        app.read(&app.alice, "account").await["dnd"],
        true,
        "the refused change changed nothing"
    );
    // The address has spent 4 of its 5 writes (the refused POST cost nothing): one more login.
    let form = LoginForm::open(&app).await;
    assert_eq!(form.login(BOB, "wrong-password").await.0, 401); // 5th write of the address
    let (status, retry, _) = form.login(BOB, BOB_PASSWORD).await;
    assert_eq!(status, 429, "the address's write budget");
    assert_eq!(retry.as_deref(), Some("2"));
    // Time refills the buckets.
    app.clock.advance(chrono::Duration::seconds(10));
    assert_eq!(form.login(BOB, BOB_PASSWORD).await.0, 303);
    assert_eq!(web.post("/web/dnd/off", &[]).await.0, 303);
}

/// The median and the largest of some durations.
fn median_max(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (d[d.len() / 2], d[d.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_answered_while_password_checks_are_saturated() {
    // No failure limits here: this is about the hashing, which a flood of guesses must not let
    // take the request workers (2, as on the 2-core production machine).
    let app = TestApp::spawn_with(|c| {
        c.services.password_checks.per_account = 1_000_000;
        c.services.password_checks.per_address = 1_000_000;
    })
    .await;
    let alice = app.client(Some(&app.alice));
    let read = |client: reqwest::Client| {
        let url = format!("{}/settings.phtml?action=account", app.base);
        async move {
            let started = Instant::now();
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            started.elapsed()
        }
    };
    let mut quiet = Vec::new();
    for _ in 0..10 {
        quiet.push(read(alice.clone()).await);
    }
    // 24 connections of bob's guess .p12 passwords as fast as they are answered, until alice's
    // reads are done, for at most 10 s and 20 000 guesses in all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..24 {
        let (client, url, sent, stop) = (
            app.client(Some(&app.bob)),
            format!("{}/settings.phtml", app.base),
            sent.clone(),
            stop.clone(),
        );
        attackers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while Instant::now() < deadline
                && !stop.load(std::sync::atomic::Ordering::SeqCst)
                && sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 20_000
            {
                let response = client
                    .post(&url)
                    .form(&[("action", "p12"), ("password", "wrong-password")])
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
                response.bytes().await.unwrap();
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut loaded = Vec::new();
    for _ in 0..20 {
        loaded.push(read(alice.clone()).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flooding =
        Instant::now() < deadline && sent.load(std::sync::atomic::Ordering::SeqCst) < 20_000;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut statuses = Vec::new();
    for a in attackers {
        statuses.extend(a.await.unwrap());
    }
    let (quiet_median, _) = median_max(quiet);
    let (median, max) = median_max(loaded);
    let wrong = statuses.iter().filter(|s| **s == 400).count();
    let busy = statuses.iter().filter(|s| **s == 429).count();
    eprintln!(
        "figure: {} guesses ({wrong} checked, {busy} refused as busy); alice's read median \
         {quiet_median:?} quiet, {median:?} under load (max {max:?})",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 429),
        "a wrong password or busy, nothing else: {statuses:?}"
    );
    assert!(wrong > 0, "some guesses were checked");
    assert!(flooding, "the guesses went on during all of alice's reads");
    assert!(
        median < Duration::from_millis(200),
        "alice's reads under load: median {median:?}"
    );
    assert!(
        max < Duration::from_secs(1),
        "alice's slowest read: {max:?}"
    );
}
