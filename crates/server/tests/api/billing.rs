//! Calls, prepaid sessions, balances and usage (docs/billing.md, SPEC §5 and objects C, P, H,
//! U of §3) over the real server with real mutual TLS: the service API with service
//! certificates, the subscriber actions, and the operator CLI run as the real binary. Prices
//! are computed here, independently, from the formula of docs/billing.md in integer
//! ten-thousandths.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, SecondsFormat, Utc};
use serde_json::{Value, json};
use sip_settings_core::Clock as _;
use sip_settings_core::cert::{CertSubject, IssuedCertificate};

use crate::helpers::*;

const SESSIONS: &str = "/v1/service/prepaid/sessions";
const CALLS: &str = "/v1/service/calls";

/// The rate table the tests import (the second description holds a comma).
const RATES_CSV: &str = "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n\
31,Netherlands,0.05,0.10,60,60\n\
316,\"Netherlands mobile, KPN\",0.035,0.25,1,30\n";

/// `31,Netherlands,0.05,0.10,60,60`.
const NL: Tariff = Tariff {
    connect: 500,
    per_minute: 1_000,
    increment: 60,
    minimum: 60,
};

/// `316,"Netherlands mobile, KPN",0.035,0.25,1,30`.
const NL_MOBILE: Tariff = Tariff {
    connect: 350,
    per_minute: 2_500,
    increment: 1,
    minimum: 30,
};

/// Seconds east of UTC of the fixed-offset zones used here.
const KOLKATA: i32 = 5 * 3600 + 1800;
const KIRITIMATI: i32 = 14 * 3600;
const PAGO_PAGO: i32 = -11 * 3600;

/// A rate in ten-thousandths, as docs/billing.md defines its price.
#[derive(Debug, Clone, Copy)]
struct Tariff {
    connect: i64,
    per_minute: i64,
    increment: u64,
    minimum: u64,
}

impl Tariff {
    /// 0 for 0 s; else `b = ceil(max(d, minimum) / increment) × increment` and
    /// `connect_fee + ceil(rate_per_minute × b / 60)`.
    fn price(self, d: u64) -> i64 {
        if d == 0 {
            return 0;
        }
        let billed =
            i64::try_from(d.max(self.minimum).div_ceil(self.increment) * self.increment).unwrap();
        self.connect + (self.per_minute * billed + 59) / 60
    }

    /// The longest call, a multiple of the increment and at most `cap`, whose price `available`
    /// pays (by search, not by the implementation's closed form).
    fn max_session_time(self, available: i64, cap: u64) -> u64 {
        let mut s = cap / self.increment * self.increment;
        while s > 0 && self.price(s) > available {
            s -= self.increment;
        }
        s
    }
}

/// Ten-thousandths printed as docs/billing.md prints money (`12.3400`).
fn money(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let a = units.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
}

/// Parses a printed amount (exactly four decimals) into ten-thousandths.
fn units(printed: &str) -> i64 {
    let (negative, s) = match printed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, printed.strip_prefix('+').unwrap_or(printed)),
    };
    let (whole, frac) = s
        .split_once('.')
        .unwrap_or_else(|| panic!("no decimals: {printed}"));
    assert_eq!(frac.len(), 4, "four decimals: {printed}");
    let u = whole.parse::<i64>().unwrap() * 10_000 + frac.parse::<i64>().unwrap();
    if negative { -u } else { u }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `YYYY-MM-DD HH:MM:SS` at a fixed offset.
fn local(t: DateTime<Utc>, offset: i32) -> String {
    t.with_timezone(&FixedOffset::east_opt(offset).unwrap())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `YYYY-MM` at a fixed offset.
fn local_month(t: DateTime<Utc>, offset: i32) -> String {
    t.with_timezone(&FixedOffset::east_opt(offset).unwrap())
        .format("%Y-%m")
        .to_string()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Now, without the fraction of a second (so that stored and shown times compare exactly).
fn whole_second_now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

/// A reply of the service API, kept raw.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = header_of(&response, "content-type").unwrap_or_default();
        let text = response.text().await.expect("body");
        Self {
            status,
            content_type,
            text,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// Asserts a JSON success reply with this status; its body.
    fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {} for {}",
            self.content_type,
            self.text
        );
        self.json()
    }

    /// Asserts an RFC 9457 problem document with this status; its body.
    fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "content type {} for {}",
            self.content_type,
            self.text
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        assert!(
            body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{body}"
        );
        body
    }

    /// Asserts a problem document with this status and `code`; its body.
    fn refused(&self, status: u16, code: &str) -> Value {
        let body = self.problem(status);
        assert_eq!(body["code"], code, "{body}");
        body
    }
}

async fn post_text(
    app: &TestApp,
    cert: Option<&IssuedCertificate>,
    path: &str,
    body: &str,
) -> Reply {
    let response = app
        .client(cert)
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    Reply::of(response).await
}

async fn post_json(
    app: &TestApp,
    cert: Option<&IssuedCertificate>,
    path: &str,
    body: &Value,
) -> Reply {
    post_text(app, cert, path, &body.to_string()).await
}

async fn admin_cert(app: &TestApp) -> IssuedCertificate {
    app.services
        .issue_certificate(CertSubject::Admin("ops".into()), None, None)
        .await
        .unwrap()
}

async fn open(
    app: &TestApp,
    svc: &IssuedCertificate,
    account: &str,
    destination: &str,
    call_id: &str,
) -> Reply {
    post_json(
        app,
        Some(svc),
        SESSIONS,
        &json!({"account": account, "destination": destination, "call_id": call_id}),
    )
    .await
}

async fn close(app: &TestApp, svc: &IssuedCertificate, call_id: &str, body: &Value) -> Reply {
    post_json(
        app,
        Some(svc),
        &format!("{SESSIONS}/{}/close", enc(call_id)),
        body,
    )
    .await
}

/// A call record as the proxy's accounting sends it.
fn cdr(
    call_id: &str,
    caller: &str,
    callee: &str,
    start: DateTime<Utc>,
    duration: i64,
    price: Option<&str>,
) -> Value {
    let mut v = json!({
        "call_id": call_id,
        "from_tag": "from-1",
        "to_tag": "to-1",
        "caller": caller,
        "callee": callee,
        "start": rfc3339(start),
        "stop": rfc3339(start + Duration::seconds(duration)),
        "duration": duration,
        "status": 200,
        "media": ["audio"],
        "proxy_ip": "192.0.2.1",
    });
    if let Some(p) = price {
        v["price"] = json!(p);
    }
    v
}

async fn record(app: &TestApp, svc: &IssuedCertificate, call: &Value) -> Reply {
    post_json(app, Some(svc), CALLS, call).await
}

/// The `calls` object of a certificate's account with extra query parameters.
async fn calls_of(app: &TestApp, cert: &IssuedCertificate, query: &str) -> Value {
    let (status, body) = app.action(cert, &format!("action=calls{query}")).await;
    assert_eq!(status, 200, "calls{query}: {body}");
    body
}

/// (placed, received) counts.
async fn call_counts(app: &TestApp, cert: &IssuedCertificate) -> (usize, usize) {
    let c = calls_of(app, cert, "&days=90&limit=500").await;
    (
        c["placed"].as_array().unwrap().len(),
        c["received"].as_array().unwrap().len(),
    )
}

/// The raw text of the `prepaid` action.
async fn prepaid_text(app: &TestApp, cert: &IssuedCertificate) -> String {
    let response = app.get_raw(cert, "action=prepaid").await;
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// Asserts the `prepaid` object shows this balance, printed as a JSON number with exactly
/// four decimals; the parsed object.
async fn assert_balance(app: &TestApp, cert: &IssuedCertificate, units_expected: i64) -> Value {
    let text = prepaid_text(app, cert).await;
    let wanted = format!("\"balance\":{}", money(units_expected));
    assert!(text.contains(&wanted), "{wanted} not in {text}");
    serde_json::from_str(&text).unwrap()
}

/// alice prepaid (in Asia/Kolkata, +05:30), the rate table imported, and a service certificate.
async fn prepaid_alice(app: &TestApp) -> IssuedCertificate {
    app.cli_ok(&[
        "account",
        "set",
        ALICE,
        "--prepaid",
        "true",
        "--timezone",
        "Asia/Kolkata",
    ]);
    let rates = app.write_file("rates.csv", RATES_CSV);
    app.cli_ok(&["rates", "import", rates.to_str().unwrap()]);
    service_cert(app).await
}

// ---------------------------------------------------------------------------------------------
// 1. The whole prepaid flow.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepaid_call_from_top_up_to_history_calls_and_usage() {
    let app = TestApp::spawn().await;
    let t0 = whole_second_now() + Duration::seconds(2);
    app.clock.set(t0);
    let svc = prepaid_alice(&app).await;
    let out = app.cli_ok(&[
        "balance",
        "topup",
        ALICE,
        "10",
        "--description",
        "Voucher 1234",
    ]);
    assert!(out.contains("10.0000"), "{out}");
    assert_balance(&app, &app.alice, 100_000).await;

    let call_id = "flow-1@proxy.example.net";
    flow_open(&app, &svc, t0, call_id).await;
    flow_close(&app, &svc, call_id).await;
    let closed_at = t0 + Duration::seconds(95);
    flow_balance_history(&app, closed_at, call_id).await;
    flow_balance_history_csv(&app, closed_at).await;
    flow_calls_and_usage(&app, t0, closed_at, call_id).await;
}

/// Step 1 of the flow: the session opens for the longest call the balance pays, opening again
/// answers the same session, and alice sees it as an active call.
async fn flow_open(app: &TestApp, svc: &IssuedCertificate, t0: DateTime<Utc>, call_id: &str) {
    // Open: the longest call 10.0000 pays at 316 (1 s increments, 30 s minimum):
    // 0.0350 + ceil(0.25 × 2391 / 60) = 0.0350 + 9.9625 = 9.9975 ≤ 10;
    // 0.0350 + ceil(0.25 × 2392 / 60) = 0.0350 + 9.9667 = 10.0017 > 10.
    let opened = open(app, svc, ALICE, "+31612345678", call_id).await.ok(201);
    assert_eq!(NL_MOBILE.max_session_time(100_000, 7200), 2391);
    assert_eq!(NL_MOBILE.price(2391), 99_975);
    assert_eq!(
        keys_of(&opened),
        [
            "call_id",
            "account",
            "destination",
            "max_session_time",
            "reserved",
            "rate",
            "opened_at"
        ],
        "{opened}"
    );
    assert_eq!(opened["call_id"], call_id);
    assert_eq!(opened["account"], ALICE);
    assert_eq!(opened["destination"], "+31612345678");
    assert_eq!(opened["max_session_time"], 2391, "{opened}");
    assert_eq!(opened["reserved"], "9.9975", "{opened}");
    assert_eq!(opened["rate"]["prefix"], "316", "longest prefix: {opened}");
    assert_eq!(opened["rate"]["description"], "Netherlands mobile, KPN");
    assert_eq!(opened["opened_at"], rfc3339(t0));

    // Opening the open Call-ID again answers 200 with the same session.
    let again = open(app, svc, ALICE, "+31612345678", call_id).await.ok(200);
    assert_eq!(again, opened);

    // alice sees the active call; the balance is a JSON number with four decimals.
    let p = assert_balance(app, &app.alice, 100_000).await;
    assert_eq!(
        keys_of(&p),
        ["balance", "currency", "active_calls", "prepaid"]
    );
    assert_eq!(p["prepaid"], true);
    assert!(p["currency"].as_str().is_some_and(|c| !c.is_empty()), "{p}");
    assert_eq!(
        p["active_calls"],
        json!([{
            "sessionId": call_id,
            "destination": "+31612345678",
            "startTime": local(t0, KOLKATA),
            "maxSessionTime": 2391,
            "elapsed": 0,
        }])
    );
    assert_eq!(app.read(&app.alice, "get_prepaid").await, p, "alias");
}

/// Step 2: 95 s later the call ends and is billed; closing again changes nothing.
async fn flow_close(app: &TestApp, svc: &IssuedCertificate, call_id: &str) {
    // 95 s later the call ends.
    app.clock.advance(Duration::seconds(95));
    let p = assert_balance(app, &app.alice, 100_000).await;
    assert_eq!(p["active_calls"][0]["elapsed"], 95, "{p}");
    let close_body = json!({
        "duration": 95,
        "from_tag": "ft-1",
        "to_tag": "tt-1",
        "media": ["audio"],
        "proxy_ip": "192.0.2.10",
    });
    // 95 s at 316: billed 95 s; 0.0350 + ceil(0.25 × 95 / 60 = 0.395833…) = 0.0350 + 0.3959.
    assert_eq!(NL_MOBILE.price(95), 4_309);
    let closed = close(app, svc, call_id, &close_body).await.ok(200);
    assert_eq!(
        closed,
        json!({"call_id": call_id, "duration": 95, "price": "0.4309", "balance": "9.5691"})
    );
    assert_eq!(
        keys_of(&closed),
        ["call_id", "duration", "price", "balance"]
    );

    // Closing again answers the first result and changes nothing.
    app.clock.advance(Duration::seconds(10));
    let twice = close(app, svc, call_id, &close_body).await.ok(200);
    assert_eq!(twice, closed);
    let p = assert_balance(app, &app.alice, 95_691).await;
    assert_eq!(p["active_calls"], json!([]));
}

/// Step 3: the balance history, newest first.
async fn flow_balance_history(app: &TestApp, closed_at: DateTime<Utc>, call_id: &str) {
    // Balance history, newest first.
    let h = app.read(&app.alice, "balance_history").await;
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(
        keys_of(&h[0]),
        [
            "date",
            "dateUtc",
            "action",
            "description",
            "value",
            "balance",
            "session"
        ]
    );
    assert_eq!(
        h[0],
        json!({
            "date": local(closed_at, KOLKATA),
            "dateUtc": rfc3339(closed_at),
            "action": "debit",
            "description": "Call to +31612345678 (Netherlands mobile, KPN), 95 s",
            "value": "-0.4309",
            "balance": "9.5691",
            "session": call_id,
        })
    );
    assert_eq!(h[1]["action"], "topup");
    assert_eq!(h[1]["description"], "Voucher 1234");
    assert_eq!(h[1]["value"], "+10.0000");
    assert_eq!(h[1]["balance"], "10.0000");
    assert_eq!(h[1]["session"], Value::Null);
    let limited = app.read(&app.alice, "balance_history&limit=1").await;
    assert_eq!(limited, json!([h[0].clone()]));
}

/// Step 4: the balance history as RFC 4180 CSV.
async fn flow_balance_history_csv(app: &TestApp, closed_at: DateTime<Utc>) {
    // The same as RFC 4180 CSV with CRLF line ends.
    let response = app
        .get_raw(&app.alice, "action=balance_history&csv=1")
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = response.text().await.unwrap();
    assert!(csv.ends_with("\r\n"), "{csv:?}");
    assert_eq!(
        csv.matches('\n').count(),
        csv.matches("\r\n").count(),
        "only CRLF line ends: {csv:?}"
    );
    let lines: Vec<&str> = csv.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{csv:?}");
    assert_eq!(
        lines[0],
        "Id,Account,Date,Action,Description,Value,Final Balance"
    );
    let (debit_id, debit_rest) = lines[1].split_once(',').unwrap();
    assert_eq!(
        debit_rest,
        format!(
            "{ALICE},{},debit,\"Call to +31612345678 (Netherlands mobile, KPN), 95 s\",-0.4309,9.5691",
            local(closed_at, KOLKATA)
        )
    );
    let (topup_id, topup_rest) = lines[2].split_once(',').unwrap();
    assert!(topup_rest.starts_with(&format!("{ALICE},")), "{topup_rest}");
    assert!(
        topup_rest.ends_with(",topup,Voucher 1234,+10.0000,10.0000"),
        "{topup_rest}"
    );
    assert!(
        debit_id.parse::<i64>().unwrap() > topup_id.parse::<i64>().unwrap(),
        "{csv:?}"
    );
}

/// Step 5: the call in alice's call list and monthly usage.
async fn flow_calls_and_usage(
    app: &TestApp,
    t0: DateTime<Utc>,
    closed_at: DateTime<Utc>,
    call_id: &str,
) {
    // The call is recorded as placed, with its price, in alice's zone and in UTC.
    let c = calls_of(app, &app.alice, "").await;
    assert_eq!(keys_of(&c), ["placed", "received"]);
    assert_eq!(c["received"], json!([]));
    let placed = c["placed"].as_array().unwrap();
    assert_eq!(placed.len(), 1, "{c}");
    let call = &placed[0];
    assert_eq!(
        keys_of(call),
        [
            "remoteParty",
            "displayName",
            "startTime",
            "stopTime",
            "timezone",
            "duration",
            "status",
            "price",
            "sessionId",
            "fromTag",
            "toTag",
            "proxyIP",
            "media",
            "startTimeUtc",
            "stopTimeUtc"
        ]
    );
    assert!(
        call["remoteParty"]
            .as_str()
            .is_some_and(|r| r.starts_with("sip:") && r.contains("+31612345678")),
        "{call}"
    );
    assert_eq!(call["startTime"], local(t0, KOLKATA));
    assert_eq!(call["stopTime"], local(closed_at, KOLKATA));
    assert_eq!(call["timezone"], "Asia/Kolkata");
    assert_eq!(call["duration"], 95);
    assert_eq!(call["status"], 200);
    assert_eq!(call["price"], "0.4309");
    assert_eq!(call["sessionId"], call_id);
    assert_eq!(call["fromTag"], "ft-1");
    assert_eq!(call["toTag"], "tt-1");
    assert_eq!(call["proxyIP"], "192.0.2.10");
    assert_eq!(call["media"], json!(["audio"]));
    assert_eq!(call["startTimeUtc"], rfc3339(t0));
    assert_eq!(call["stopTimeUtc"], rfc3339(closed_at));

    // Monthly usage of the local month the call started in.
    let month = local_month(t0, KOLKATA);
    let u = app
        .read(&app.alice, &format!("monthly_usage&month={month}"))
        .await;
    assert_eq!(
        u,
        json!({"month": month, "calls": 1, "duration": 95, "price": "0.4309"})
    );
    let now_month = local_month(app.clock.now(), KOLKATA);
    let default = app.read(&app.alice, "monthly_usage").await;
    assert_eq!(default["month"], now_month, "{default}");
    if now_month == month {
        assert_eq!(default, u);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Refusals.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepaid_refusals_carry_their_status_and_code_and_open_nothing() {
    let app = TestApp::spawn().await;
    let svc = prepaid_alice(&app).await;

    // Balance 0: nothing is affordable.
    open(&app, &svc, ALICE, "+31201234567", "r-1")
        .await
        .refused(402, "insufficient_balance");
    // 0.10 does not pay for the 60 s minimum at 31 (0.05 + 0.10 = 0.15).
    app.cli_ok(&["balance", "topup", ALICE, "0.10"]);
    assert_eq!(NL.price(1), 1_500);
    open(&app, &svc, ALICE, "+31201234567", "r-2")
        .await
        .refused(402, "insufficient_balance");
    // 0.15 pays exactly one minute.
    app.cli_ok(&["balance", "topup", ALICE, "0.05"]);
    let s = open(&app, &svc, ALICE, "+31201234567", "r-3").await.ok(201);
    assert_eq!(s["max_session_time"], 60, "{s}");
    assert_eq!(s["reserved"], "0.1500", "{s}");
    assert_eq!(s["rate"]["prefix"], "31", "{s}");
    // The balance less the open reservation pays nothing more.
    open(&app, &svc, ALICE, "+31201234567", "r-4")
        .await
        .refused(402, "insufficient_balance");

    // No rate for +44.
    app.cli_ok(&["balance", "topup", ALICE, "100"]);
    open(&app, &svc, ALICE, "+442071234567", "r-5")
        .await
        .refused(422, "no_rate");

    // bob is postpaid.
    open(&app, &svc, BOB, "+31201234567", "r-6")
        .await
        .refused(409, "not_prepaid");
    let bob_prepaid = prepaid_text(&app, &app.bob).await;
    assert!(
        bob_prepaid.contains("\"balance\":0.0000"),
        "postpaid balance 0 with four decimals: {bob_prepaid}"
    );
    let bob_prepaid: Value = serde_json::from_str(&bob_prepaid).unwrap();
    assert_eq!(bob_prepaid["prepaid"], false);
    assert_eq!(bob_prepaid["active_calls"], json!([]));

    // Unknown account and unknown Call-ID.
    open(&app, &svc, "nobody@example.com", "+31201234567", "r-7")
        .await
        .problem(404);
    close(&app, &svc, "never-opened@x", &json!({"duration": 10}))
        .await
        .problem(404);

    // Malformed fields name themselves.
    let body = open(&app, &svc, ALICE, "0031201234567x", "r-8")
        .await
        .problem(400);
    assert_eq!(body["field"], "destination", "{body}");
    let body = open(&app, &svc, ALICE, "+31201234567", "")
        .await
        .problem(400);
    assert_eq!(body["field"], "call_id", "{body}");
    let body = close(&app, &svc, "r-3", &json!({"duration": -1}))
        .await
        .problem(400);
    assert_eq!(body["field"], "duration", "{body}");

    // Malformed JSON on every route: 400 problem+json.
    for path in [SESSIONS, "/v1/service/prepaid/sessions/r-3/close", CALLS] {
        for bad in ["{\"account\": ", "not json", "[1,2]", ""] {
            post_text(&app, Some(&svc), path, bad).await.problem(400);
        }
    }

    // Only r-3 is open, and nothing was debited.
    let p = assert_balance(&app, &app.alice, 1_001_500).await;
    let active = p["active_calls"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{p}");
    assert_eq!(active[0]["sessionId"], "r-3");
    assert_eq!(call_counts(&app, &app.alice).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_open_sessions_than_configured_are_refused_and_the_time_is_capped() {
    let app = TestApp::spawn_with(|c| {
        c.services.prepaid_max_sessions = 2;
        c.services.prepaid_max_session_seconds = 300;
    })
    .await;
    let svc = prepaid_alice(&app).await;
    app.cli_ok(&["balance", "topup", ALICE, "100"]);
    for id in ["m-1", "m-2"] {
        let s = open(&app, &svc, ALICE, "+31201234567", id).await.ok(201);
        assert_eq!(NL.max_session_time(1_000_000, 300), 300);
        assert_eq!(s["max_session_time"], 300, "capped: {s}");
        assert_eq!(s["reserved"], money(NL.price(300)), "{s}");
    }
    open(&app, &svc, ALICE, "+31201234567", "m-3")
        .await
        .refused(409, "too_many_sessions");
    // An open Call-ID is still answered while at the limit.
    open(&app, &svc, ALICE, "+31201234567", "m-2").await.ok(200);
    close(&app, &svc, "m-1", &json!({"duration": 30}))
        .await
        .ok(200);
    open(&app, &svc, ALICE, "+31201234567", "m-3").await.ok(201);
    open(&app, &svc, ALICE, "+31201234567", "m-4")
        .await
        .refused(409, "too_many_sessions");
}

/// A close reporting far more than the grant is billed the grant: the balance never goes below
/// zero, the history says the duration was capped, the call keeps the reported duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_longer_than_the_grant_is_billed_the_grant_and_never_overdraws() {
    let app = TestApp::spawn().await;
    let svc = prepaid_alice(&app).await;
    app.cli_ok(&["balance", "topup", ALICE, "0.50"]);
    // 0.50 pays 0.05 + 4 minutes at 0.10 (60/60): 240 s, reserving 0.45.
    let granted = NL.max_session_time(5_000, 7200);
    assert_eq!((granted, NL.price(granted)), (240, 4_500));
    let s = open(&app, &svc, ALICE, "+31201234567", "long-1")
        .await
        .ok(201);
    assert_eq!(
        (&s["max_session_time"], &s["reserved"]),
        (&json!(240), &json!("0.4500")),
        "{s}"
    );
    // 900 s would cost 0.05 + 15 × 0.10 = 1.55 (0.50 → −1.05): 240 s are billed.
    assert_eq!(NL.price(900), 15_500);
    let closed = close(&app, &svc, "long-1", &json!({"duration": 900}))
        .await
        .ok(200);
    assert_eq!(
        closed,
        json!({"call_id": "long-1", "duration": 900, "price": "0.4500", "balance": "0.0500"})
    );
    assert_balance(&app, &app.alice, 500).await;
    let h = app.read(&app.alice, "balance_history&limit=1").await;
    assert_eq!(
        (&h[0]["action"], &h[0]["value"], &h[0]["balance"]),
        (&json!("debit"), &json!("-0.4500"), &json!("0.0500")),
        "{h}"
    );
    assert_eq!(
        h[0]["description"],
        "Call to +31201234567 (Netherlands), 240 s billed of 900 s reported \
         (capped at the granted 240 s)"
    );
    let c = calls_of(&app, &app.alice, "&days=1").await;
    let call = &c["placed"][0];
    assert_eq!(
        (&call["duration"], &call["price"]),
        (&json!(900), &json!("0.4500")),
        "{c}"
    );
    // The 0.05 left does not pay the minimum: the next open is refused, nothing is owed.
    open(&app, &svc, ALICE, "+31201234567", "long-2")
        .await
        .refused(402, "insufficient_balance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_routes_take_service_certificates_only() {
    let app = TestApp::spawn().await;
    let svc = prepaid_alice(&app).await;
    app.cli_ok(&["balance", "topup", ALICE, "10"]);
    open(&app, &svc, ALICE, "+31201234567", "open-1")
        .await
        .ok(201);
    let admin = admin_cert(&app).await;
    let now = whole_second_now() - Duration::hours(1);
    let routes: Vec<(&str, Value)> = vec![
        (
            SESSIONS,
            json!({"account": ALICE, "destination": "+31201234567", "call_id": "sneak-1"}),
        ),
        (
            "/v1/service/prepaid/sessions/open-1/close",
            json!({"duration": 60}),
        ),
        (
            CALLS,
            cdr(
                "sneak-2",
                "sip:alice@example.com",
                "sip:bob@example.com",
                now,
                60,
                None,
            ),
        ),
    ];
    for (path, body) in &routes {
        for (who, cert) in [("alice", &app.alice), ("bob", &app.bob), ("admin", &admin)] {
            let r = post_json(&app, Some(cert), path, body).await;
            assert_eq!(r.status, 403, "{who} on {path}: {}", r.text);
            r.problem(403);
        }
        let r = post_json(&app, None, path, body).await;
        assert_eq!(r.status, 401, "anonymous on {path}: {}", r.text);
        r.problem(401);
    }
    // Nothing happened: open-1 is still the only open session, no call recorded, no debit.
    let p = assert_balance(&app, &app.alice, 100_000).await;
    let active = p["active_calls"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{p}");
    assert_eq!(active[0]["sessionId"], "open-1");
    assert_eq!(call_counts(&app, &app.alice).await, (0, 0));
    assert_eq!(call_counts(&app, &app.bob).await, (0, 0));
    let h = app.read(&app.alice, "balance_history").await;
    assert_eq!(h.as_array().unwrap().len(), 1, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_calls_cost_nothing_and_short_ones_the_minimum() {
    let app = TestApp::spawn().await;
    let svc = prepaid_alice(&app).await;
    app.cli_ok(&["balance", "topup", ALICE, "2"]);
    // Each open reserves all of the balance it can, so the calls run one after the other.
    // 0 s: price 0, the balance unchanged.
    open(&app, &svc, ALICE, "+31612345678", "zero@proxy")
        .await
        .ok(201);
    let c = close(&app, &svc, "zero@proxy", &json!({"duration": 0}))
        .await
        .ok(200);
    assert_eq!(
        c,
        json!({"call_id": "zero@proxy", "duration": 0, "price": "0.0000", "balance": "2.0000"})
    );
    // 10 s at 316 bill the 30 s minimum: 0.0350 + ceil(0.25 × 30 / 60) = 0.0350 + 0.1250.
    assert_eq!(NL_MOBILE.price(10), 1_600);
    open(&app, &svc, ALICE, "+31612345678", "short@proxy")
        .await
        .ok(201);
    let c = close(&app, &svc, "short@proxy", &json!({"duration": 10}))
        .await
        .ok(200);
    assert_eq!(
        c,
        json!({"call_id": "short@proxy", "duration": 10, "price": "0.1600", "balance": "1.8400"})
    );
    assert_balance(&app, &app.alice, 18_400).await;
    // 61 s at 31 (60 s increments): two minutes, 0.05 + 0.20.
    assert_eq!(NL.price(61), 2_500);
    let s = open(&app, &svc, ALICE, "+31201234567", "nl@proxy")
        .await
        .ok(201);
    // 1.84 at 31: (1.84 − 0.05) / 0.10 = 17.9 minutes, 17 whole increments.
    assert_eq!(NL.max_session_time(18_400, 7200), 1020);
    assert_eq!(s["max_session_time"], 1020, "{s}");
    assert_eq!(s["reserved"], "1.7500", "{s}");
    let c = close(&app, &svc, "nl@proxy", &json!({"duration": 61}))
        .await
        .ok(200);
    assert_eq!(c["price"], "0.2500", "{c}");
    assert_eq!(c["balance"], "1.5900", "{c}");
    let u = app
        .read(
            &app.alice,
            &format!(
                "monthly_usage&month={}",
                local_month(app.clock.now(), KOLKATA)
            ),
        )
        .await;
    assert_eq!(u["calls"], 3, "{u}");
    assert_eq!(u["duration"], 71, "{u}");
    assert_eq!(u["price"], "0.4100", "{u}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_history_limit_and_csv_values_are_checked() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    for amount in ["1", "2", "3"] {
        app.cli_ok(&["balance", "topup", ALICE, amount]);
    }
    let h = app.read(&app.alice, "get_balance_history&limit=2").await;
    let values: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["+3.0000", "+2.0000"]);
    let h = app.read(&app.alice, "balance_history&limit=1000").await;
    assert_eq!(h.as_array().unwrap().len(), 3);
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("csv=2", "csv"),
    ] {
        let (status, body) = app
            .action(&app.alice, &format!("action=balance_history&{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["success"], false, "{query}: {body}");
        assert!(
            body["error_message"]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{query}: {body}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrent opens never overdraw.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_opens_never_reserve_more_than_the_balance() {
    const N: usize = 50;
    const CAP: u64 = 600;
    let app = TestApp::spawn_with(|c| {
        c.services.prepaid_max_sessions = 100;
        c.services.prepaid_max_session_seconds = u32::try_from(CAP).unwrap();
    })
    .await;
    let svc = prepaid_alice(&app).await;
    app.cli_ok(&["balance", "topup", ALICE, "10.00"]);
    let balance: i64 = 100_000;

    // Each client is connected (a harmless malformed request) before all send at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = app.client(Some(&svc));
        let url = format!("{}{SESSIONS}", app.base);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let warm = client
                .post(&url)
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .unwrap();
            assert_eq!(warm.status().as_u16(), 400);
            let body = json!({
                "account": ALICE,
                "destination": "+31201234567",
                "call_id": format!("race-{i}@proxy"),
            });
            barrier.wait().await;
            let response = client.post(&url).json(&body).send().await.unwrap();
            (format!("race-{i}@proxy"), Reply::of(response).await)
        }));
    }
    let mut granted: Vec<(String, u64, i64)> = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (call_id, reply) = task.await.unwrap();
        match reply.status {
            201 => {
                let s = reply.ok(201);
                let mst = s["max_session_time"].as_u64().unwrap();
                let reserved = units(s["reserved"].as_str().unwrap());
                assert!(mst > 0 && mst <= CAP && mst % NL.increment == 0, "{s}");
                assert_eq!(reserved, NL.price(mst), "reserved = price(max): {s}");
                granted.push((call_id, mst, reserved));
            }
            _ => {
                reply.refused(402, "insufficient_balance");
                refused += 1;
            }
        }
    }
    let total: i64 = granted.iter().map(|g| g.2).sum();
    assert!(
        total <= balance,
        "granted {} sessions reserving {} > balance {}",
        granted.len(),
        money(total),
        money(balance)
    );
    // One at a time, each open takes the longest affordable call of what is left: nine of
    // 600 s (1.0500 each) and one of 300 s (0.5500), then nothing pays the 60 s minimum.
    let mut expected = Vec::new();
    let mut left = balance;
    loop {
        let s = NL.max_session_time(left, CAP);
        if s == 0 {
            break;
        }
        expected.push(NL.price(s));
        left -= NL.price(s);
    }
    let mut got: Vec<i64> = granted.iter().map(|g| g.2).collect();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected, "granted reservations");
    assert_eq!(refused, N - expected.len());
    let p = assert_balance(&app, &app.alice, balance).await;
    assert_eq!(
        p["active_calls"].as_array().unwrap().len(),
        granted.len(),
        "{p}"
    );

    // Every granted session talks its full time; all close at once.
    let mut closes = Vec::new();
    for (call_id, mst, reserved) in granted.clone() {
        let client = app.client(Some(&svc));
        let url = format!("{}{SESSIONS}/{}/close", app.base, enc(&call_id));
        closes.push(tokio::spawn(async move {
            let response = client
                .post(&url)
                .json(&json!({"duration": mst}))
                .send()
                .await
                .unwrap();
            (reserved, Reply::of(response).await)
        }));
    }
    for task in closes {
        let (reserved, reply) = task.await.unwrap();
        let c = reply.ok(200);
        assert_eq!(c["price"], money(reserved), "{c}");
    }
    let final_balance = balance - total;
    assert!(final_balance >= 0, "{}", money(final_balance));
    let p = assert_balance(&app, &app.alice, final_balance).await;
    assert_eq!(p["active_calls"], json!([]));
    let h = app.read(&app.alice, "balance_history").await;
    assert_eq!(h.as_array().unwrap().len(), 1 + granted.len());
    assert_eq!(
        call_counts(&app, &app.alice).await,
        (granted.len(), 0),
        "one placed call per closed session"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. The calls API.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_calls_go_to_their_local_parties_once() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;
    let start = whole_second_now() - Duration::hours(2);

    let call = cdr(
        "c-1@proxy",
        "sip:bob@example.com",
        "sip:alice@example.com",
        start,
        42,
        Some("0.0700"),
    );
    let r = record(&app, &svc, &call).await.ok(201);
    assert_eq!(r["recorded"], true, "{r}");

    let bob = calls_of(&app, &app.bob, "").await;
    assert_eq!(bob["received"], json!([]));
    let placed = bob["placed"].as_array().unwrap();
    assert_eq!(placed.len(), 1, "{bob}");
    assert_eq!(placed[0]["remoteParty"], "sip:alice@example.com");
    assert_eq!(placed[0]["sessionId"], "c-1@proxy");
    assert_eq!(placed[0]["duration"], 42);
    assert_eq!(placed[0]["price"], "0.0700");
    assert_eq!(placed[0]["startTimeUtc"], rfc3339(start));
    assert_eq!(
        placed[0]["stopTimeUtc"],
        rfc3339(start + Duration::seconds(42))
    );
    assert_eq!(placed[0]["timezone"], "UTC");
    assert_eq!(placed[0]["startTime"], local(start, 0));

    let alice = calls_of(&app, &app.alice, "").await;
    assert_eq!(alice["placed"], json!([]));
    let received = alice["received"].as_array().unwrap();
    assert_eq!(received.len(), 1, "{alice}");
    assert_eq!(received[0]["remoteParty"], "sip:bob@example.com");
    assert_eq!(received[0]["sessionId"], "c-1@proxy");
    assert_eq!(received[0]["fromTag"], "from-1");
    assert_eq!(received[0]["toTag"], "to-1");
    assert_eq!(received[0]["proxyIP"], "192.0.2.1");
    assert_eq!(received[0]["media"], json!(["audio"]));
    assert_eq!(received[0]["status"], 200);
    assert!(
        received[0].get("price").is_none(),
        "price on placed calls only: {}",
        received[0]
    );

    // A replay of the same (Call-ID, from tag, to tag) records nothing.
    let r = record(&app, &svc, &call).await.ok(200);
    assert_eq!(r["recorded"], false, "{r}");
    assert_eq!(r["replay"], true, "{r}");
    assert_eq!(call_counts(&app, &app.bob).await, (1, 0));
    assert_eq!(call_counts(&app, &app.alice).await, (0, 1));

    // alice calls outside: placed for her only.
    let out = cdr(
        "c-2@proxy",
        "sip:alice@example.com",
        "sip:carol@elsewhere.example.org",
        start + Duration::minutes(10),
        5,
        Some("0.0100"),
    );
    record(&app, &svc, &out).await.ok(201);
    assert_eq!(call_counts(&app, &app.alice).await, (1, 1));
    assert_eq!(call_counts(&app, &app.bob).await, (1, 0));
    let alice = calls_of(&app, &app.alice, "").await;
    assert_eq!(
        alice["placed"][0]["remoteParty"],
        "sip:carol@elsewhere.example.org"
    );

    // A call to an alias or an ENUM number of alice reaches her.
    app.cli_ok(&["alias", "add", "ally@example.com", ALICE]);
    app.cli_ok(&["enum", "add", "+31201112222", ALICE]);
    for (id, callee) in [
        ("c-3@proxy", "sip:ally@example.com"),
        ("c-4@proxy", "sip:+31201112222@example.com"),
    ] {
        let c = cdr(
            id,
            "sip:dave@elsewhere.example.org",
            callee,
            start + Duration::minutes(20),
            7,
            None,
        );
        record(&app, &svc, &c).await.ok(201);
    }
    assert_eq!(call_counts(&app, &app.alice).await, (1, 3));

    // The same Call-ID with other tags is another record (a forked leg).
    let mut leg = call.clone();
    leg["to_tag"] = json!("to-2");
    record(&app, &svc, &leg).await.ok(201);
    assert_eq!(call_counts(&app, &app.alice).await, (1, 4));
    assert_eq!(call_counts(&app, &app.bob).await, (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_call_records_name_the_field_and_record_nothing() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;
    let start = whole_second_now() - Duration::hours(1);
    let good = cdr(
        "bad-1@proxy",
        "sip:bob@example.com",
        "sip:alice@example.com",
        start,
        60,
        Some("0.1000"),
    );
    let cases: Vec<(&str, &str, Value)> = vec![
        ("call_id", "empty call_id", json!("")),
        ("caller", "caller without scheme", json!("bob")),
        ("callee", "callee without user or host", json!("sip:")),
        ("start", "start not a time", json!("yesterday")),
        (
            "stop",
            "stop before start",
            json!(rfc3339(start - Duration::minutes(1))),
        ),
        ("duration", "negative duration", json!(-1)),
        ("duration", "duration longer than the call", json!(3600)),
        ("status", "status 99", json!(99)),
        ("status", "status 700", json!(700)),
        ("media", "media with a space", json!(["au dio"])),
        ("proxy_ip", "proxy_ip not an address", json!("proxy")),
        ("price", "negative price", json!("-1")),
        ("price", "price with five decimals", json!("0.12345")),
    ];
    for (field, what, value) in cases {
        let mut call = good.clone();
        call[field] = value;
        let body = record(&app, &svc, &call).await.problem(400);
        assert_eq!(body["field"], field, "{what}: {body}");
    }
    // No local party: refused naming the caller.
    let outside = cdr(
        "bad-2@proxy",
        "sip:x@elsewhere.example.org",
        "sip:y@other.example.net",
        start,
        10,
        None,
    );
    let body = record(&app, &svc, &outside).await.problem(400);
    assert_eq!(body["field"], "caller", "{body}");

    assert_eq!(call_counts(&app, &app.alice).await, (0, 0));
    assert_eq!(call_counts(&app, &app.bob).await, (0, 0));
    // The good record itself is accepted: the refusals were about the field alone.
    record(&app, &svc, &good).await.ok(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_record_without_a_call_id_names_call_id() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;
    let mut call = cdr(
        "x@proxy",
        "sip:bob@example.com",
        "sip:alice@example.com",
        whole_second_now() - Duration::hours(1),
        60,
        None,
    );
    call.as_object_mut().unwrap().remove("call_id");
    let body = record(&app, &svc, &call).await.problem(400);
    assert_eq!(
        body["field"], "call_id",
        "the offending field (SPEC §6): {body}"
    );
    assert_eq!(call_counts(&app, &app.alice).await, (0, 0));
}

// ---------------------------------------------------------------------------------------------
// 5. `calls` parameters.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_days_and_limit_select_and_bad_values_name_the_parameter() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;
    let now = whole_second_now();
    app.clock.set(now);
    // alice placed five calls: 1, 2 and 3 hours ago, 3 days ago and 20 days ago; bob called
    // her three times, 1 to 3 hours ago.
    let ages = [
        ("p-1h", Duration::hours(1)),
        ("p-2h", Duration::hours(2)),
        ("p-3h", Duration::hours(3)),
        ("p-3d", Duration::days(3)),
        ("p-20d", Duration::days(20)),
    ];
    for (id, age) in ages {
        let c = cdr(
            id,
            "sip:alice@example.com",
            "sip:+31201234567@elsewhere.example.org",
            now - age,
            30,
            Some("0.0100"),
        );
        record(&app, &svc, &c).await.ok(201);
    }
    for h in 1..=3 {
        let c = cdr(
            &format!("r-{h}h"),
            "sip:bob@example.com",
            "sip:alice@example.com",
            now - Duration::hours(h) + Duration::minutes(1),
            30,
            None,
        );
        record(&app, &svc, &c).await.ok(201);
    }
    let ids = |v: &Value, list: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sessionId"].as_str().unwrap().to_owned())
            .collect()
    };

    // Default: 14 days, newest first.
    let c = calls_of(&app, &app.alice, "").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h", "p-3d"]);
    assert_eq!(ids(&c, "received"), ["r-1h", "r-2h", "r-3h"]);
    // get_history has Blink's own shape (blink_history.rs); get_calls is object C.
    let (status, body) = app.action(&app.alice, "action=get_calls").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, c, "get_calls");
    let c = calls_of(&app, &app.alice, "&days=1").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h"]);
    let c = calls_of(&app, &app.alice, "&days=2").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h"]);
    let c = calls_of(&app, &app.alice, "&days=4").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h", "p-3d"]);
    let c = calls_of(&app, &app.alice, "&days=21").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h", "p-3d", "p-20d"]);
    // limit applies to each list.
    let c = calls_of(&app, &app.alice, "&limit=2&days=90").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h"]);
    assert_eq!(ids(&c, "received"), ["r-1h", "r-2h"]);
    let c = calls_of(&app, &app.alice, "&limit=1").await;
    assert_eq!(ids(&c, "placed"), ["p-1h"]);
    assert_eq!(ids(&c, "received"), ["r-1h"]);

    // 30 days later the hour-old calls are 30 days old.
    app.clock.advance(Duration::days(30));
    let c = calls_of(&app, &app.alice, "").await;
    assert_eq!(c, json!({"placed": [], "received": []}));
    let c = calls_of(&app, &app.alice, "&days=31").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h"]);
    let c = calls_of(&app, &app.alice, "&days=34").await;
    assert_eq!(ids(&c, "placed"), ["p-1h", "p-2h", "p-3h", "p-3d"]);
    let c = calls_of(&app, &app.alice, "&days=90").await;
    assert_eq!(ids(&c, "placed").len(), 5);

    for (query, name) in [
        ("days=0", "days"),
        ("days=91", "days"),
        ("days=abc", "days"),
        ("days=-1", "days"),
        ("days=1.5", "days"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
    ] {
        let (status, body) = app
            .action(&app.alice, &format!("action=calls&{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["success"], false, "{query}: {body}");
        assert!(
            body["error_message"]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{query}: {body}"
        );
    }
    // The limits themselves are accepted.
    calls_of(&app, &app.alice, "&days=90&limit=500").await;
    calls_of(&app, &app.alice, "&days=1&limit=1").await;
}

// ---------------------------------------------------------------------------------------------
// 6. Months in zones far from UTC.

/// Records placed calls of `who` to an outside number: (Call-ID, UTC start, seconds, price).
async fn record_placed(
    app: &TestApp,
    svc: &IssuedCertificate,
    who: &str,
    calls: &[(&str, &str, i64, &str)],
) {
    for (id, start, duration, price) in calls {
        let c = cdr(
            id,
            &format!("sip:{who}"),
            "sip:+31201234567@elsewhere.example.org",
            utc(start),
            *duration,
            Some(price),
        );
        record(app, svc, &c).await.ok(201);
    }
}

async fn usage(app: &TestApp, cert: &IssuedCertificate, month: &str) -> Value {
    app.read(cert, &format!("monthly_usage&month={month}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_usage_counts_calls_in_the_local_month_of_the_account() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;

    // Kiritimati is UTC+14: local January 2026 is 2025-12-31T10:00Z .. 2026-01-31T10:00Z.
    let kiri = app
        .add_account_with_cert("kiri@example.com", &["--timezone", "Pacific/Kiritimati"])
        .await;
    record_placed(
        &app,
        &svc,
        "kiri@example.com",
        &[
            ("k-dec", "2025-12-31T09:59:59Z", 10, "0.0100"),
            ("k-jan-first", "2025-12-31T10:00:00Z", 20, "0.0200"),
            ("k-jan-last", "2026-01-31T09:59:59Z", 40, "0.0400"),
            ("k-feb", "2026-01-31T10:00:00Z", 80, "0.0800"),
        ],
    )
    .await;
    assert_eq!(
        usage(&app, &kiri, "2025-12").await,
        json!({"month": "2025-12", "calls": 1, "duration": 10, "price": "0.0100"})
    );
    assert_eq!(
        usage(&app, &kiri, "2026-01").await,
        json!({"month": "2026-01", "calls": 2, "duration": 60, "price": "0.0600"})
    );
    assert_eq!(
        usage(&app, &kiri, "2026-02").await,
        json!({"month": "2026-02", "calls": 1, "duration": 80, "price": "0.0800"})
    );
    assert_eq!(
        usage(&app, &kiri, "2025-11").await,
        json!({"month": "2025-11", "calls": 0, "duration": 0, "price": "0.0000"})
    );
    assert_eq!(
        keys_of(&usage(&app, &kiri, "2026-01").await),
        ["month", "calls", "duration", "price"]
    );

    // Pago Pago is UTC−11: local March 2026 is 2026-03-01T11:00Z .. 2026-04-01T11:00Z.
    let pago = app
        .add_account_with_cert("pago@example.com", &["--timezone", "Pacific/Pago_Pago"])
        .await;
    record_placed(
        &app,
        &svc,
        "pago@example.com",
        &[
            ("p-feb", "2026-03-01T10:59:59Z", 15, "0.1500"),
            ("p-mar-first", "2026-03-01T11:00:00Z", 25, "0.2500"),
            ("p-mar-last", "2026-04-01T10:59:59Z", 35, "0.3500"),
            ("p-apr", "2026-04-01T11:00:00Z", 45, "0.4500"),
        ],
    )
    .await;
    assert_eq!(
        usage(&app, &pago, "2026-02").await,
        json!({"month": "2026-02", "calls": 1, "duration": 15, "price": "0.1500"})
    );
    assert_eq!(
        usage(&app, &pago, "2026-03").await,
        json!({"month": "2026-03", "calls": 2, "duration": 60, "price": "0.6000"})
    );
    assert_eq!(
        usage(&app, &pago, "2026-04").await,
        json!({"month": "2026-04", "calls": 1, "duration": 45, "price": "0.4500"})
    );
    // Received calls do not count: kiri calling pago is placed for kiri only.
    let both = cdr(
        "k-to-p",
        "sip:kiri@example.com",
        "sip:pago@example.com",
        utc("2026-03-15T12:00:00Z"),
        100,
        Some("1.0000"),
    );
    record(&app, &svc, &both).await.ok(201);
    assert_eq!(usage(&app, &pago, "2026-03").await["calls"], 2);
    assert_eq!(usage(&app, &kiri, "2026-03").await["calls"], 1);

    for bad in ["2026-13", "2026-1", "x", "2026-00", "26-01", "2026/01"] {
        let (status, body) = app
            .action(&kiri, &format!("action=monthly_usage&month={}", enc(bad)))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["success"], false, "{bad}: {body}");
        assert!(
            body["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("month")),
            "{bad}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_month_and_call_times_follow_the_account_zone() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;
    let kiri = app
        .add_account_with_cert("kiri@example.com", &["--timezone", "Pacific/Kiritimati"])
        .await;
    // Certificates are issued before the clock moves ahead (TLS checks them at the real time).
    let pago = app
        .add_account_with_cert("pago@example.com", &["--timezone", "Pacific/Pago_Pago"])
        .await;

    // The next local midnight that starts a month, at UTC+14.
    let now = app.clock.now();
    let local_now = now
        .with_timezone(&FixedOffset::east_opt(KIRITIMATI).unwrap())
        .date_naive();
    let next_first = if local_now.month() == 12 {
        NaiveDate::from_ymd_opt(local_now.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(local_now.year(), local_now.month() + 1, 1)
    }
    .unwrap();
    let boundary = next_first.and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::hours(14);
    assert!(boundary > now);
    let this_month = local_month(boundary - Duration::seconds(1), KIRITIMATI);
    let next_month = next_first.format("%Y-%m").to_string();

    record_placed(
        &app,
        &svc,
        "kiri@example.com",
        &[
            (
                "before",
                &rfc3339(boundary - Duration::minutes(10)),
                30,
                "0.3000",
            ),
            (
                "after",
                &rfc3339(boundary + Duration::minutes(10)),
                50,
                "0.5000",
            ),
        ],
    )
    .await;

    app.clock.set(boundary - Duration::minutes(5));
    let u = app.read(&kiri, "monthly_usage").await;
    assert_eq!(
        u,
        json!({"month": this_month, "calls": 1, "duration": 30, "price": "0.3000"})
    );
    // 5 minutes after local midnight it is still the previous day in UTC, and the default
    // month is the new local one.
    let t = boundary + Duration::minutes(15);
    app.clock.set(t);
    assert_ne!(
        t.format("%Y-%m").to_string(),
        next_month,
        "UTC is a month behind"
    );
    let u = app.read(&kiri, "monthly_usage").await;
    assert_eq!(
        u,
        json!({"month": next_month, "calls": 1, "duration": 50, "price": "0.5000"})
    );

    // Call times are shown in the account's zone, the local date a day ahead of UTC.
    let c = calls_of(&app, &kiri, "").await;
    let placed = c["placed"].as_array().unwrap();
    assert_eq!(placed.len(), 2, "{c}");
    let after = &placed[0];
    assert_eq!(after["sessionId"], "after");
    assert_eq!(after["timezone"], "Pacific/Kiritimati");
    let start = boundary + Duration::minutes(10);
    assert_eq!(after["startTime"], local(start, KIRITIMATI));
    assert_eq!(
        after["startTime"],
        format!("{} 00:10:00", next_first.format("%Y-%m-%d"))
    );
    assert_eq!(
        after["stopTime"],
        local(start + Duration::seconds(50), KIRITIMATI)
    );
    assert_eq!(after["startTimeUtc"], rfc3339(start));

    // And at UTC−11 the local date is a day behind.
    let start = t - Duration::hours(1);
    record_placed(
        &app,
        &svc,
        "pago@example.com",
        &[("pago-1", &rfc3339(start), 20, "0.0200")],
    )
    .await;
    let c = calls_of(&app, &pago, "").await;
    assert_eq!(c["placed"][0]["startTime"], local(start, PAGO_PAGO), "{c}");
    assert_eq!(c["placed"][0]["timezone"], "Pacific/Pago_Pago");
}

// ---------------------------------------------------------------------------------------------
// 7. The operator CLI.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_import_checks_every_line_first_and_lookup_takes_the_longest_prefix() {
    let app = TestApp::spawn().await;
    let good = app.write_file("rates.csv", RATES_CSV);
    app.cli_ok(&["rates", "import", good.to_str().unwrap()]);
    let before = app.cli_ok(&["rates", "list"]);
    assert_eq!(before.lines().count(), 2, "{before}");

    let header =
        "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n";
    let bad_files = [
        // (content, the line named)
        (
            format!("{header}44,UK,0,0.02,1,0\n49,Germany,0,0.03,0,0\n"),
            3,
        ),
        (format!("{header}4a,UK,0,0.02,1,0\n"), 2),
        (
            format!("{header}44,UK,0,0.02,1,0\n45,DK,-0.01,0.02,1,0\n"),
            3,
        ),
        (
            format!("{header}44,UK,0,0.02,1,0\n45,DK,0,0.12345,1,0\n"),
            3,
        ),
        (
            format!("{header}44,UK,0,0.02,1,0\n45,DK,0,0.02,3601,0\n"),
            3,
        ),
        (
            format!("{header}44,UK,0,0.02,1,0\n45,DK,0,0.02,1,3601\n"),
            3,
        ),
        (
            format!("{header}44,UK,0,0.02,1,0\n44,UK again,0,0.02,1,0\n"),
            3,
        ),
        (
            format!("{header}44,UK,0,0.02,1,0\n1234567890123456,Long,0,0.02,1,0\n"),
            3,
        ),
        (format!("{header}44,UK,0,0.02,1,0\n45,DK,0,0.02\n"), 3),
    ];
    for (i, (content, line)) in bad_files.iter().enumerate() {
        let file = app.write_file(&format!("bad-rates-{i}.csv"), content);
        let err = app.cli_refused(&["rates", "import", file.to_str().unwrap()]);
        assert!(err.contains(&format!("line {line}")), "{content}: {err}");
        assert_eq!(
            app.cli_ok(&["rates", "list"]),
            before,
            "nothing imported from {content}"
        );
    }
    // Every malformed line is reported.
    let two_bad = app.write_file(
        "two-bad.csv",
        &format!("{header}4x,UK,0,0.02,1,0\n45,DK,0,0.02,1,0\n46,SE,0,abc,1,0\n"),
    );
    let err = app.cli_refused(&["rates", "import", two_bad.to_str().unwrap()]);
    assert!(err.contains("line 2") && err.contains("line 4"), "{err}");
    assert!(!err.contains("line 3"), "{err}");
    assert_eq!(app.cli_ok(&["rates", "list"]), before);

    // Longest prefix of the E.164 digits.
    let mobile = app.cli_ok(&["rates", "lookup", "+31612345678"]);
    assert!(mobile.starts_with("316 "), "{mobile}");
    assert!(mobile.contains("Netherlands mobile, KPN"), "{mobile}");
    let fixed = app.cli_ok(&["rates", "lookup", "+31201234567"]);
    assert!(fixed.starts_with("31 "), "{fixed}");
    app.cli_refused(&["rates", "lookup", "+442071234567"]);
    app.cli_refused(&["rates", "lookup", "0612345678"]);

    // Without --replace rates are added or updated by prefix; with it the table is replaced.
    let update = app.write_file(
        "update.csv",
        &format!("{header}31,Netherlands fixed,0.01,0.05,1,0\n44,UK,0,0.02,1,0\n"),
    );
    app.cli_ok(&["rates", "import", update.to_str().unwrap()]);
    let list = app.cli_ok(&["rates", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("Netherlands fixed"), "{list}");
    assert!(list.contains("Netherlands mobile, KPN"), "{list}");
    let replace = app.write_file("replace.csv", &format!("{header}49,Germany,0,0.03,1,0\n"));
    app.cli_ok(&["rates", "import", replace.to_str().unwrap(), "--replace"]);
    let list = app.cli_ok(&["rates", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("49 "), "{list}");
    app.cli_refused(&["rates", "lookup", "+31612345678"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_topup_takes_positive_amounts_and_set_records_the_difference() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    app.cli_ok(&["balance", "topup", ALICE, "10"]);
    for bad in ["0", "-5", "abc", "1.23456", "", "0.0000", "1e3"] {
        app.cli_refused(&["balance", "topup", ALICE, bad]);
    }
    app.cli_refused(&["balance", "topup", "nobody@example.com", "5"]);
    assert_balance(&app, &app.alice, 100_000).await;
    let h = app.read(&app.alice, "balance_history").await;
    assert_eq!(h.as_array().unwrap().len(), 1, "{h}");

    // set: the history value is the difference.
    app.cli_ok(&["balance", "set", ALICE, "3.5"]);
    assert_balance(&app, &app.alice, 35_000).await;
    app.cli_ok(&["balance", "set", ALICE, "5.0001"]);
    assert_balance(&app, &app.alice, 50_001).await;
    let h = app.read(&app.alice, "balance_history").await;
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[0]["value"], "+1.5001");
    assert_eq!(h[0]["balance"], "5.0001");
    assert_eq!(h[1]["value"], "-6.5000");
    assert_eq!(h[1]["balance"], "3.5000");
    assert_eq!(h[2]["value"], "+10.0000");
    assert_eq!(h[2]["action"], "topup");
    for bad in ["abc", "1.23456", ""] {
        app.cli_refused(&["balance", "set", ALICE, bad]);
    }
    assert_balance(&app, &app.alice, 50_001).await;
    let show = app.cli_ok(&["balance", "show", ALICE]);
    assert!(show.contains("5.0001"), "{show}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_import_is_all_or_nothing_and_replays_add_nothing() {
    let app = TestApp::spawn().await;
    let header =
        "call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\n";
    let s1 = whole_second_now() - Duration::hours(3);
    let s2 = s1 + Duration::hours(1);
    let line1 = format!(
        "imp-1@proxy,f1,t1,sip:alice@example.com,sip:+31201234567@elsewhere.example.org,{},{},60,200,audio video,192.0.2.1,0.1500\n",
        rfc3339(s1),
        rfc3339(s1 + Duration::seconds(60))
    );
    let line2 = format!(
        "imp-2@proxy,f2,t2,sip:bob@example.com,sip:alice@example.com,{},{},30,200,audio,192.0.2.2,\n",
        rfc3339(s2),
        rfc3339(s2 + Duration::seconds(30))
    );
    let good = format!("{header}{line1}{line2}");
    let bads = [
        // (the malformed line, its line number when it comes third)
        line2.replace(",200,audio,", ",99,audio,"),
        line2.replace("sip:bob@example.com", "bob"),
        line2.replace(",30,200,", ",-30,200,"),
        line2.replace("192.0.2.2", "proxy"),
        line2.replace("imp-2@proxy", ""),
        line2
            .replace("sip:alice@example.com", "sip:carol@elsewhere.example.org")
            .replace("sip:bob@example.com", "sip:dave@elsewhere.example.org"),
        "imp-3@proxy,f3,t3,sip:alice@example.com\n".to_owned(),
    ];
    for (i, bad) in bads.iter().enumerate() {
        let file = app.write_file(
            &format!("bad-calls-{i}.csv"),
            &format!("{header}{line1}{bad}"),
        );
        let err = app.cli_refused(&["calls", "import", file.to_str().unwrap()]);
        assert!(err.contains("line 3"), "{bad}: {err}");
        assert_eq!(call_counts(&app, &app.alice).await, (0, 0), "{bad}");
        assert_eq!(call_counts(&app, &app.bob).await, (0, 0), "{bad}");
    }
    let bad_header = app.write_file("bad-header.csv", &format!("call_id,caller\n{line1}"));
    app.cli_refused(&["calls", "import", bad_header.to_str().unwrap()]);

    let file = app.write_file("calls.csv", &good);
    let out = app.cli_ok(&["calls", "import", file.to_str().unwrap()]);
    assert!(out.contains("imported 2 "), "{out}");
    assert_eq!(call_counts(&app, &app.alice).await, (1, 1));
    assert_eq!(call_counts(&app, &app.bob).await, (1, 0));
    let c = calls_of(&app, &app.alice, "").await;
    let placed = &c["placed"][0];
    assert_eq!(placed["sessionId"], "imp-1@proxy");
    assert_eq!(placed["media"], json!(["audio", "video"]));
    assert_eq!(placed["price"], "0.1500");
    assert_eq!(placed["duration"], 60);
    assert_eq!(placed["startTimeUtc"], rfc3339(s1));
    assert_eq!(c["received"][0]["sessionId"], "imp-2@proxy");
    assert_eq!(c["received"][0]["remoteParty"], "sip:bob@example.com");

    // A second import of the same file: nothing new.
    let out = app.cli_ok(&["calls", "import", file.to_str().unwrap()]);
    assert!(out.contains("imported 0 "), "{out}");
    assert_eq!(call_counts(&app, &app.alice).await, (1, 1));
    assert_eq!(call_counts(&app, &app.bob).await, (1, 0));
}
