//! Kill -9 under load. The real `sip-settings serve` process takes concurrent writes of every
//! kind — recorded calls (`/v1/service/calls`), phonebook entries (`/v1/me/phonebook`),
//! forwarding through both doors (`settings.phtml?action=set_diversions` and
//! `PATCH /v1/me/diversions`), prepaid sessions opened and closed (`/v1/service/prepaid/…`) —
//! and is killed with SIGKILL after a random short delay, then restarted on the same store.
//! After each kill, read from the store itself: every acknowledged write (a 2xx received) is
//! there with its journal entry, nothing refused is there, and nothing unacknowledged is
//! half-applied (a change without its journal entry or a journal entry without its change, a
//! prepaid close without its history entry, call record or journal entry, a call recorded for
//! one party only). On SQLite, and on PostgreSQL (a fresh database) when
//! `SIP_SETTINGS_TEST_PG_URL` is set (in CI, `CI=true`, it must be). Each store: three kill cycles of at most
//! [`MAX_WRITES`] writes per writer in at most [`LOAD_LIMIT`]; the kill comes a random
//! [`KILL_AFTER_MS`] after every writer has had a write acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use sip_settings::app::open_services;
use sip_settings::config::Config;
use sip_settings_core::account::AccountUpdate;
use sip_settings_core::calls::Direction;
use sip_settings_core::cert::{CertSubject, IssuedCertificate};
use sip_settings_core::journal::JournalEntry;
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::sip::Condition;
use sip_settings_core::{AccountId, Password, Services, SystemClock};

use crate::helpers::serve::Server;
use crate::helpers::{client_with, enc};
use sip_settings_store_tests::pg::TempDatabase;

/// Kill cycles per store.
const CYCLES: u32 = 3;
/// Writers of each kind (each on its own accounts).
const WRITERS_PER_KIND: usize = 2;
/// Most writes one writer makes in one cycle.
const MAX_WRITES: usize = 400;
/// Longest a cycle's load runs (the kill comes well before).
const LOAD_LIMIT: Duration = Duration::from_secs(30);
/// Longest one request may take before it counts as unanswered.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// The kill comes this many milliseconds after every writer is under way.
const KILL_AFTER_MS: std::ops::Range<u64> = 50..800;

/// The kinds of write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST /v1/service/calls`, caller `ca{w}`, callee `cb{w}` (both local).
    Call,
    /// `POST /v1/me/phonebook` as `pb{w}`.
    Phonebook,
    /// FUNC of `fw{w}`, alternately through `settings.phtml` and `/v1/me/diversions`.
    Forwarding,
    /// Open and close a prepaid session of `pp{w}`.
    Prepaid,
}

const KINDS: [Kind; 4] = [Kind::Call, Kind::Phonebook, Kind::Forwarding, Kind::Prepaid];

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Call => "sc",
            Kind::Phonebook => "pb",
            Kind::Forwarding => "fw",
            Kind::Prepaid => "pp",
        }
    }
}

/// What the client learnt of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 2xx (and, on `settings.phtml`, `"success": true`): the write must be there.
    Acked,
    /// An answer that refused it: nothing of it may be there.
    Refused(u16),
    /// No answer (the server died): all of it or nothing of it may be there.
    Unknown,
}

/// One write (for prepaid: `first` the open, `second` the close when it was sent).
#[derive(Debug, Clone)]
struct Attempt {
    token: String,
    n: usize,
    first: Outcome,
    second: Option<Outcome>,
}

fn account(kind_tag: &str, w: usize) -> AccountId {
    AccountId::parse(&format!("{kind_tag}{w}@example.com")).unwrap()
}

/// An installation on one store: data directory, database URL, certificates.
struct Install {
    dir: tempfile::TempDir,
    database: String,
    config_file: std::path::PathBuf,
    ca: String,
    service: IssuedCertificate,
    certs: BTreeMap<String, IssuedCertificate>,
}

impl Install {
    async fn create(database: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        if let Some(url) = database {
            config.database_url = url.to_owned();
        }
        sip_settings_pki::files::ensure(dir.path(), &[]).unwrap();
        sip_settings::app::open_store(&config, true).await.unwrap();
        let services = open_services(&config, Arc::new(SystemClock)).await.unwrap();
        services.add_domain("example.com").await.unwrap();
        let password = Password::parse_for("password", "crash-test-password-1").unwrap();
        let mut certs = BTreeMap::new();
        for w in 0..WRITERS_PER_KIND {
            for (tag, prepaid) in [("ca", false), ("cb", false), ("pb", false), ("fw", false)]
                .into_iter()
                .chain([("pp", true)])
            {
                let id = account(tag, w);
                let update = AccountUpdate {
                    prepaid: Some(prepaid),
                    ..AccountUpdate::default()
                };
                services.add_account(&id, &password, &update).await.unwrap();
                if prepaid {
                    services
                        .topup(&id, Money::parse_for("amount", "1000").unwrap(), "")
                        .await
                        .unwrap();
                }
                let cert = services
                    .issue_certificate(CertSubject::Account(id.clone()), None, None)
                    .await
                    .unwrap();
                certs.insert(id.to_string(), cert);
            }
        }
        let service = services
            .issue_certificate(CertSubject::Service("proxy".to_owned()), None, None)
            .await
            .unwrap();
        let rate = Rate::new(
            "31",
            "NL",
            Money::parse_for("connect_fee", "0.01").unwrap(),
            Money::parse_for("rate_per_minute", "0.10").unwrap(),
            60,
            60,
        )
        .unwrap();
        services.import_rates(&[rate], false).await.unwrap();
        let config_file = dir.path().join("crash.toml");
        std::fs::write(&config_file, "[rate_limits]\nenabled = false\n").unwrap();
        Self {
            ca: services.ca_pem().to_owned(),
            database: config.database_url.clone(),
            dir,
            config_file,
            service,
            certs,
        }
    }

    fn client(&self, cert: &IssuedCertificate) -> reqwest::Client {
        client_with(&self.ca, Some((&cert.cert_pem, &cert.key_pem)))
    }

    fn client_of(&self, id: &AccountId) -> reqwest::Client {
        self.client(&self.certs[&id.to_string()])
    }

    /// `sip-settings serve` on this installation.
    fn serve(&self) -> Server {
        Server::spawn(self.dir.path(), &self.config_file, &self.database, 0)
    }

    /// The store, opened in this process (no migrations: the server ran them).
    async fn services(&self) -> Services {
        let mut config = Config::for_data_dir(self.dir.path());
        config.database_url = self.database.clone();
        config.migrate = false;
        open_services(&config, Arc::new(SystemClock)).await.unwrap()
    }
}

/// Sends a request and classifies its answer: `ok` says whether a 2xx body is a success.
async fn send(request: reqwest::RequestBuilder, ok: impl Fn(&Value) -> bool) -> (Outcome, Value) {
    let response = match tokio::time::timeout(REQUEST_LIMIT, request.send()).await {
        Ok(Ok(r)) => r,
        _ => return (Outcome::Unknown, Value::Null),
    };
    let status = response.status().as_u16();
    let body = match tokio::time::timeout(REQUEST_LIMIT, response.bytes()).await {
        Ok(Ok(b)) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        // The status came, the body did not: the server died while answering.
        _ => return (Outcome::Unknown, Value::Null),
    };
    match status {
        200..=299 if ok(&body) => (Outcome::Acked, body),
        other => (Outcome::Refused(other), body),
    }
}

fn any_body(_: &Value) -> bool {
    true
}

fn action_success(body: &Value) -> bool {
    body["success"] == true
}

/// One writer's writes of one cycle, until `stop`, the first unanswered request, or the bounds.
async fn writer(
    install: Arc<Install>,
    base: String,
    kind: Kind,
    w: usize,
    cycle: u32,
    stop: Arc<AtomicBool>,
    under_way: Arc<AtomicUsize>,
) -> Vec<Attempt> {
    let client = match kind {
        Kind::Call | Kind::Prepaid => install.client(&install.service),
        Kind::Phonebook => install.client_of(&account("pb", w)),
        Kind::Forwarding => install.client_of(&account("fw", w)),
    };
    let deadline = Instant::now() + LOAD_LIMIT;
    let mut attempts = Vec::new();
    let mut announced = false;
    for n in 0..MAX_WRITES {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let token = format!("{}{w}c{cycle}n{n}", kind.tag());
        let (first, second) = match kind {
            Kind::Call => {
                let start = chrono::Utc::now() - chrono::Duration::minutes(2);
                let stop = start + chrono::Duration::seconds(60);
                let body = json!({
                    "call_id": token, "from_tag": "f", "to_tag": "t",
                    "caller": format!("sip:ca{w}@example.com"),
                    "callee": format!("sip:cb{w}@example.com"),
                    "start": start.to_rfc3339(), "stop": stop.to_rfc3339(),
                    "duration": 60, "status": 200, "media": ["audio"], "proxy_ip": "192.0.2.1",
                });
                let r = client.post(format!("{base}/v1/service/calls")).json(&body);
                (send(r, any_body).await.0, None)
            }
            Kind::Phonebook => {
                let body = json!({"uri": format!("sip:{token}@example.org"), "name": format!("N {n}"), "groups": ["family"]});
                let r = client.post(format!("{base}/v1/me/phonebook")).json(&body);
                (send(r, any_body).await.0, None)
            }
            Kind::Forwarding => {
                let target = format!("sip:{token}@example.net");
                let r = if n % 2 == 0 {
                    client.get(format!(
                        "{base}/settings.phtml?action=set_diversions&FUNC={}",
                        enc(&target)
                    ))
                } else {
                    client
                        .patch(format!("{base}/v1/me/diversions"))
                        .json(&json!({ "FUNC": target }))
                };
                let check = if n % 2 == 0 { action_success } else { any_body };
                (send(r, check).await.0, None)
            }
            Kind::Prepaid => {
                let open = client
                    .post(format!("{base}/v1/service/prepaid/sessions"))
                    .json(&json!({"account": format!("pp{w}@example.com"), "destination": "+31201234567", "call_id": token}));
                let (opened, session) = send(open, any_body).await;
                if opened == Outcome::Acked {
                    let granted = session["max_session_time"].as_u64().unwrap();
                    let duration = granted.min(1 + (n as u64 * 37) % 300);
                    let close = client
                        .post(format!("{base}/v1/service/prepaid/sessions/{token}/close"))
                        .json(&json!({"duration": duration, "from_tag": "f", "to_tag": "t"}));
                    (opened, Some(send(close, any_body).await.0))
                } else {
                    (opened, None)
                }
            }
        };
        if first == Outcome::Acked && !announced {
            announced = true;
            under_way.fetch_add(1, Ordering::SeqCst);
        }
        let unanswered = first == Outcome::Unknown || second == Some(Outcome::Unknown);
        attempts.push(Attempt {
            token,
            n,
            first,
            second,
        });
        if unanswered {
            break;
        }
    }
    attempts
}

/// The token (`pb0c1n17`) that `text` names after `prefix` (`pb0c1n`), if any.
fn token_in(text: &str, prefix: &str) -> Option<String> {
    let at = text.find(prefix)?;
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// The number in a token (`17` of `pb0c1n17`).
fn number_of(token: &str) -> usize {
    token.rsplit('n').next().unwrap().parse().unwrap()
}

/// An account's whole journal, oldest first.
async fn journal(services: &Services, id: &AccountId) -> Vec<JournalEntry> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = services.journal_entries(id, before, 200).await.unwrap();
        let done = page.len() < 200;
        before = page.last().map(|e| e.id);
        out.extend(page);
        if done {
            break;
        }
    }
    out.reverse();
    out
}

/// What a check found wrong: `journal` marks a change and its journal entry disagreeing.
#[derive(Debug)]
struct Problem {
    journal: bool,
    text: String,
}

/// What the previous check of a writer's account saw, so that a problem is reported in the
/// cycle it happened in and not again in the next.
#[derive(Debug, Default)]
struct Seen {
    /// The newest journal entry then.
    journal_id: i64,
    /// The FUNC value then (forwarding).
    func: Option<String>,
}

/// [`verify`] of the call writers: every call recorded for both parties, the acknowledged ones
/// there, the refused ones not.
async fn verify_call(
    services: &Services,
    w: usize,
    prefix: &str,
    attempts: &[Attempt],
    problem: &mut dyn FnMut(bool, String),
) {
    let since = chrono::Utc::now() - chrono::Duration::days(2);
    let tokens = |calls: Vec<sip_settings_core::calls::CallRecord>| -> BTreeSet<String> {
        calls
            .iter()
            .filter_map(|c| token_in(&c.call_id, prefix))
            .collect()
    };
    let placed = tokens(
        services
            .store()
            .list_calls(&account("ca", w), Direction::Placed, since, 100_000)
            .await
            .unwrap(),
    );
    let received = tokens(
        services
            .store()
            .list_calls(&account("cb", w), Direction::Received, since, 100_000)
            .await
            .unwrap(),
    );
    if placed != received {
        problem(
            false,
            format!(
                "calls recorded for one party only: placed {:?}, received {:?}",
                placed.difference(&received).collect::<Vec<_>>(),
                received.difference(&placed).collect::<Vec<_>>()
            ),
        );
    }
    for a in attempts {
        let there = placed.contains(&a.token);
        match a.first {
            Outcome::Acked if !there => {
                problem(false, format!("acknowledged call {} lost", a.token));
            }
            Outcome::Refused(s) if there => {
                problem(false, format!("call {} refused ({s}) but stored", a.token));
            }
            _ => {}
        }
    }
}

/// [`verify`] of the phonebook writers: entries and journal entries match, acknowledged ones
/// there, refused ones not.
async fn verify_phonebook(
    services: &Services,
    w: usize,
    prefix: &str,
    attempts: &[Attempt],
    problem: &mut dyn FnMut(bool, String),
) {
    let id = account("pb", w);
    let state: BTreeSet<String> = services
        .phonebook(&id)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| token_in(&e.uri.to_string(), prefix))
        .collect();
    let journaled: BTreeSet<String> = journal(services, &id)
        .await
        .iter()
        .filter(|e| e.entry.resource.starts_with("phonebook"))
        .filter_map(|e| e.entry.new.as_deref().and_then(|n| token_in(n, prefix)))
        .collect();
    for t in state.difference(&journaled) {
        problem(
            true,
            format!("phonebook entry {t} stored without its journal entry"),
        );
    }
    for t in journaled.difference(&state) {
        problem(
            true,
            format!("phonebook entry {t} journaled but not stored"),
        );
    }
    for a in attempts {
        let there = state.contains(&a.token) || journaled.contains(&a.token);
        match a.first {
            Outcome::Acked if !there => {
                problem(
                    false,
                    format!("acknowledged phonebook entry {} lost", a.token),
                );
            }
            Outcome::Refused(s) if there => problem(
                false,
                format!("phonebook entry {} refused ({s}) but stored", a.token),
            ),
            _ => {}
        }
    }
}

/// [`verify`] of the forwarding writers: the FUNC journal is an unbroken chain ending at the
/// value in force, which is the last acknowledged one or later.
async fn verify_forwarding(
    services: &Services,
    w: usize,
    prefix: &str,
    attempts: &[Attempt],
    seen: &mut Seen,
    problem: &mut dyn FnMut(bool, String),
) {
    let id = account("fw", w);
    // Values are compared by the token they name (`fw0c1n7`), whatever the spelling.
    let any_cycle = format!("fw{w}c");
    let named = |v: Option<&str>| v.and_then(|v| token_in(v, &any_cycle));
    let state = services
        .diversions(&id)
        .await
        .unwrap()
        .get(&Condition::Unconditional)
        .map(|t| t.shown());
    let state = named(state.as_deref());
    let all = journal(services, &id).await;
    let entries: Vec<&JournalEntry> = all
        .iter()
        .filter(|e| e.id > seen.journal_id && e.entry.resource.ends_with("FUNC"))
        .collect();
    // Each entry's old value is the value before it (the previous entry's new one, or
    // what the last check found stored): a change that landed without its entry
    // breaks the chain.
    let mut previous: Option<String> = seen.func.clone();
    for e in &entries {
        let old = named(e.entry.old.as_deref());
        if old != previous {
            problem(
                true,
                format!(
                    "FUNC journal entry {} says the old value was {old:?}, the entry before says {previous:?}: a change without its journal entry",
                    e.id
                ),
            );
        }
        previous = named(e.entry.new.as_deref());
    }
    if state != previous {
        problem(
            true,
            format!(
                "FUNC is {state:?} but its newest journal entry says {previous:?}: a change without its journal entry"
            ),
        );
    }
    seen.journal_id = all.last().map_or(0, |e| e.id);
    seen.func = state.clone();
    let journaled: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.entry.new.as_deref().and_then(|n| token_in(n, prefix)))
        .collect();
    let state_token = state.as_deref().and_then(|s| token_in(s, prefix));
    for a in attempts {
        match a.first {
            Outcome::Acked if !journaled.contains(&a.token) => problem(
                true,
                format!("acknowledged FUNC {} has no journal entry", a.token),
            ),
            Outcome::Refused(s)
                if journaled.contains(&a.token) || state_token.as_ref() == Some(&a.token) =>
            {
                problem(false, format!("FUNC {} refused ({s}) but applied", a.token));
            }
            _ => {}
        }
    }
    // The last acknowledged value or a later one (sent, not answered) is in force.
    if let Some(last) = attempts.iter().rev().find(|a| a.first == Outcome::Acked) {
        let ok = state_token
            .as_deref()
            .is_some_and(|t| number_of(t) >= last.n);
        if !ok {
            problem(
                false,
                format!(
                    "FUNC is {state:?}, older than the acknowledged {}",
                    last.token
                ),
            );
        }
    }
}

/// [`verify`] of the prepaid writers: the balance is its history, every close is whole
/// (session, history entry, call record, journal entry), acknowledged ones there, refused ones not.
async fn verify_prepaid(
    services: &Services,
    w: usize,
    prefix: &str,
    attempts: &[Attempt],
    seen: &mut Seen,
    problem: &mut dyn FnMut(bool, String),
) {
    let id = account("pp", w);
    let snapshot = services.store().export_billing(&id).await.unwrap();
    let sessions: BTreeMap<String, bool> = snapshot
        .sessions
        .iter()
        .filter_map(|s| token_in(&s.call_id, prefix).map(|t| (t, s.closed.is_some())))
        .collect();
    let debits: BTreeMap<String, Money> = snapshot
        .history
        .iter()
        .filter_map(|h| {
            h.session
                .as_deref()
                .and_then(|s| token_in(s, prefix))
                .map(|t| (t, h.balance))
        })
        .collect();
    let since = chrono::Utc::now() - chrono::Duration::days(2);
    let calls: BTreeSet<String> = services
        .store()
        .list_calls(&id, Direction::Placed, since, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.price.is_some())
        .filter_map(|c| token_in(&c.call_id, prefix))
        .collect();
    let journal = journal(services, &id).await;
    // A balance entry's new value starts with the amount (`998.6100`, maybe followed
    // by words).
    let amount = |e: &JournalEntry| {
        e.entry.new.as_deref().map(|n| {
            n.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect::<String>()
        })
    };
    let balance_news: BTreeSet<String> = journal
        .iter()
        .filter(|e| e.entry.resource == "balance")
        .filter_map(amount)
        .collect();
    let new_since_last: BTreeSet<String> = journal
        .iter()
        .filter(|e| e.id > seen.journal_id && e.entry.resource == "balance")
        .filter_map(amount)
        .collect();
    seen.journal_id = journal.last().map_or(0, |e| e.id);
    // The balance is its history: the last entry's balance and the sum of the values.
    let sum = snapshot
        .history
        .iter()
        .fold(Money::ZERO, |acc, h| acc + h.value);
    let last = snapshot.history.last().map(|h| h.balance);
    if last != Some(snapshot.balance) || sum != snapshot.balance {
        problem(
            false,
            format!(
                "balance {} but history sums to {sum} and ends at {last:?}",
                snapshot.balance
            ),
        );
    }
    // Every balance the history went through is journaled, and nothing else is.
    let history_balances: BTreeSet<String> = snapshot
        .history
        .iter()
        .map(|h| h.balance.to_string())
        .collect();
    for b in new_since_last.difference(&history_balances) {
        problem(
            true,
            format!("balance {b} journaled but never in the history"),
        );
    }
    let mut tokens: BTreeSet<String> = sessions.keys().cloned().collect();
    tokens.extend(debits.keys().cloned());
    tokens.extend(calls.iter().cloned());
    tokens.extend(attempts.iter().map(|a| a.token.clone()));
    for t in &tokens {
        let closed = sessions.get(t).copied().unwrap_or(false);
        let debited = debits.get(t);
        let called = calls.contains(t);
        if closed != debited.is_some() || closed != called {
            problem(
                false,
                format!(
                    "prepaid {t} half-closed: session closed {closed}, history entry {}, call record {called}",
                    debited.is_some()
                ),
            );
        }
        if let Some(b) = debited
            && !balance_news.contains(&b.to_string())
        {
            problem(
                true,
                format!("prepaid close {t} debited to {b} without its journal entry"),
            );
        }
    }
    for a in attempts {
        let t = &a.token;
        let exists = sessions.contains_key(t);
        let closed = sessions.get(t).copied().unwrap_or(false);
        match a.first {
            Outcome::Acked if !exists => {
                problem(false, format!("acknowledged prepaid open {t} lost"));
            }
            Outcome::Refused(s) if exists => {
                problem(false, format!("prepaid open {t} refused ({s}) but stored"));
            }
            _ => {}
        }
        match a.second {
            Some(Outcome::Acked) if !closed || !debits.contains_key(t) => {
                problem(false, format!("acknowledged prepaid close {t} lost"));
            }
            Some(Outcome::Refused(s)) if closed => {
                problem(
                    false,
                    format!("prepaid close {t} refused ({s}) but applied"),
                );
            }
            _ => {}
        }
    }
}

/// Checks one writer's writes of `cycle` against the store after the kill.
async fn verify(
    services: &Services,
    kind: Kind,
    w: usize,
    cycle: u32,
    attempts: &[Attempt],
    seen: &mut Seen,
    problems: &mut Vec<Problem>,
) {
    let prefix = format!("{}{w}c{cycle}n", kind.tag());
    let mut problem = |journal: bool, text: String| problems.push(Problem { journal, text });
    match kind {
        Kind::Call => verify_call(services, w, &prefix, attempts, &mut problem).await,
        Kind::Phonebook => verify_phonebook(services, w, &prefix, attempts, &mut problem).await,
        Kind::Forwarding => {
            verify_forwarding(services, w, &prefix, attempts, seen, &mut problem).await;
        }
        Kind::Prepaid => verify_prepaid(services, w, &prefix, attempts, seen, &mut problem).await,
    }
}

/// Counts of one cycle's writes.
#[derive(Debug, Default)]
struct Counts {
    writes: usize,
    acked: usize,
    refused: BTreeMap<String, usize>,
    unknown: usize,
}

impl Counts {
    fn add(&mut self, kind: Kind, o: Outcome) {
        self.writes += 1;
        match o {
            Outcome::Acked => self.acked += 1,
            Outcome::Refused(s) => {
                *self
                    .refused
                    .entry(format!("{} {s}", kind.tag()))
                    .or_default() += 1
            }
            Outcome::Unknown => self.unknown += 1,
        }
    }
}

/// Three kill cycles on one installation; the problems found (a failure of the harness itself
/// panics).
async fn kill_cycles(name: &str, install: Install) -> Vec<String> {
    let install = Arc::new(install);
    let started = Instant::now();
    let mut server = install.serve();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(&str, usize), Seen> = BTreeMap::new();
    for cycle in 1..=CYCLES {
        let stop = Arc::new(AtomicBool::new(false));
        let under_way = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for kind in KINDS {
            for w in 0..WRITERS_PER_KIND {
                tasks.push((
                    kind,
                    w,
                    tokio::spawn(writer(
                        install.clone(),
                        server.base.clone(),
                        kind,
                        w,
                        cycle,
                        stop.clone(),
                        under_way.clone(),
                    )),
                ));
            }
        }
        let writers = tasks.len();
        let warm_up = Instant::now() + LOAD_LIMIT;
        while under_way.load(Ordering::SeqCst) < writers {
            assert!(
                Instant::now() < warm_up,
                "cycle {cycle}: not every writer had a write acknowledged within {LOAD_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delay = rand::rng().random_range(KILL_AFTER_MS);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        let mut done: Vec<(Kind, usize, Vec<Attempt>)> = Vec::new();
        let mut counts = Counts::default();
        for (kind, w, task) in tasks {
            let attempts = task.await.unwrap();
            for a in &attempts {
                counts.add(kind, a.first);
                if let Some(s) = a.second {
                    counts.add(kind, s);
                }
            }
            done.push((kind, w, attempts));
        }
        // Restart on the same store; the restarted server answers; then read the store.
        server = install.serve();
        let probe = install
            .client_of(&account("fw", 0))
            .get(format!("{}/v1/me/journal?limit=1", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(probe.status(), 200, "the restarted server answers");
        let services = install.services().await;
        let before = problems.len();
        for (kind, w, attempts) in &done {
            let seen = seen.entry((kind.tag(), *w)).or_default();
            verify(&services, *kind, *w, cycle, attempts, seen, &mut problems).await;
        }
        drop(services);
        let found = &problems[before..];
        eprintln!(
            "crash[{name}] cycle {cycle}: SIGKILL {delay} ms into the load; {} writes ({} acknowledged, refused {:?}, {} unanswered); {} change(s) without their journal entry, {} other problem(s)",
            counts.writes,
            counts.acked,
            counts.refused,
            counts.unknown,
            found.iter().filter(|p| p.journal).count(),
            found.iter().filter(|p| !p.journal).count(),
        );
    }
    drop(server);
    eprintln!(
        "crash[{name}]: {CYCLES} kills in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    problems.into_iter().map(|p| p.text).collect()
}

fn assert_none(name: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "crash[{name}]: {} problem(s) after {CYCLES} kills:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_under_load_loses_no_acknowledged_write_and_half_applies_nothing() {
    let problems = kill_cycles("sqlite", Install::create(None).await).await;
    assert_none("sqlite", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_under_load_loses_no_acknowledged_write_and_half_applies_nothing() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let problems = kill_cycles("postgres", Install::create(Some(db.url())).await).await;
    drop(db);
    assert_none("postgres", &problems);
}
