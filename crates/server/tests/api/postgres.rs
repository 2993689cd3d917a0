//! The service on PostgreSQL, with real `sip-settings serve` processes: two servers sharing one
//! database, moving an installation from SQLite with `copy`, and riding out lost database
//! connections. Each test uses a fresh database on `SIP_SETTINGS_TEST_PG_URL` and skips (saying
//! so) without it, except in CI (`CI=true`), where it fails.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::serve::{Server, TempSqlite, cli, get, provision};
use crate::helpers::sip::question;
use crate::helpers::*;
use sip_settings_store_tests::pg::TempDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_database() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let a = Server::start(install.dir.path(), db.url());
    let b = Server::start(install.dir.path(), db.url());
    let alice = install.client(&install.alice);

    // A change through one is read back through the other at once.
    let (status, body) = get(
        &alice,
        &a.base,
        "action=set_diversions&FUNC=bob&FNOA=%2B31201234567",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, d) = get(&alice, &b.base, "action=diversions").await;
    assert_eq!(d["FUNC"], "bob@example.com");
    assert_eq!(d["FNOA"], "+31201234567@example.com");
    let (_, _) = get(&alice, &b.base, "action=dnd_on").await;
    assert_eq!(get(&alice, &a.base, "action=account").await.1["dnd"], true);

    // A certificate revoked through one server is refused by the other on the next request,
    // on an already open connection too.
    let bob = install.client(&install.bob);
    assert_eq!(get(&bob, &b.base, "action=account").await.0, 200);
    let certs: Value = bob
        .get(format!("{}/v1/me/certificates", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let serial = certs["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = bob
        .delete(format!("{}/v1/me/certificates/{serial}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(get(&bob, &b.base, "action=account").await.0, 403);
    assert_eq!(get(&bob, &a.base, "action=account").await.0, 403);

    // 50 prepaid sessions opened at once across both servers never overdraw: each open
    // reserves what the balance less the open reservations pays. 10.00 at 0.10 a minute with
    // sessions capped at 600 s (1.00): exactly ten fit.
    let service = install.service.clone();
    let ca = install.ca.clone();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let client = client_with(&ca, Some((&service.0, &service.1)));
        tasks.push(tokio::spawn(async move {
            let r = open_prepaid(&client, &base, BOB, &format!("c{i}")).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut reserved_units = 0i64;
    let mut granted = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => {
                let r = sip_settings_core::money::Money::parse_for(
                    "r",
                    body["reserved"].as_str().unwrap(),
                )
                .unwrap();
                reserved_units += r.units();
                granted.push((
                    body["call_id"].as_str().unwrap().to_owned(),
                    body["max_session_time"].as_u64().unwrap(),
                ));
            }
            402 => assert_eq!(body["code"], "insufficient_balance"),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        reserved_units <= 100_000,
        "reserved {reserved_units} of 10.0000"
    );
    assert_eq!(granted.len(), 10, "{granted:?}");
    // Close them all at the full time granted, through alternating servers: the balance stays
    // ≥ 0.
    let proxy = install.client(&install.service);
    for (i, (call_id, granted_seconds)) in granted.iter().enumerate() {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let r = close_prepaid(&proxy, base, call_id, &json!({"duration": granted_seconds})).await;
        assert_eq!(r.status(), 200);
    }
    let balance = cli(install.dir.path(), db.url(), &["balance", "show", BOB]);
    assert!(balance.contains("balance 0.0000 EUR"), "{balance}");
    drop((a, b));
}

/// Every read action of an account, as JSON (the `elapsed` seconds of open calls removed: they
/// move with the clock).
async fn snapshot(client: &reqwest::Client, base: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let billing = [
        "calls&days=90",
        "prepaid",
        "balance_history",
        "monthly_usage",
    ];
    for action in READ_ACTIONS.into_iter().chain(billing) {
        let (status, mut body) = get(client, base, &format!("action={action}")).await;
        assert_eq!(status, 200, "{action}: {body}");
        if let Some(calls) = body.get_mut("active_calls").and_then(Value::as_array_mut) {
            for c in calls {
                if let Some(o) = c.as_object_mut() {
                    o.remove("elapsed");
                }
            }
        }
        out.push((action.to_owned(), body));
    }
    let csv = client
        .get(format!(
            "{base}/settings.phtml?action=balance_history&csv=1"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    out.push(("balance_history csv".to_owned(), Value::String(csv)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_moves_an_installation_and_every_action_answers_the_same() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let sqlite = TempSqlite::new("sip-settings.db");
    let sqlite_url = sqlite.url.clone();
    let install = provision(&sqlite_url);
    let d = install.dir.path();
    for args in [
        &["alias", "add", "al@example.com", ALICE][..],
        &["enum", "add", "+31201234567", ALICE],
        &[
            "voicemail",
            "enable",
            ALICE,
            "--pin",
            "1234",
            "--delivery",
            "email_and_store",
        ],
        &["reject", "add", ALICE, "sip:%0900@%"],
        &[
            "accept", "add", ALICE, "--days", "31", "--start", "09:00", "--stop", "17:00",
            "--groups", "family",
        ],
        &[
            "phonebook",
            "add",
            ALICE,
            "sip:mom@example.org",
            "--group",
            "family",
        ],
    ] {
        cli(d, &sqlite_url, args);
    }
    let calls = d.join("calls.csv");
    std::fs::write(
        &calls,
        "call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\n\
         x1,a,b,sip:bob@example.com,sip:alice@example.com,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,60,200,audio,192.0.2.1,\n\
         x2,a,b,sip:alice@example.com,sip:+4420@pstn.example,2026-11-02T10:00:00Z,2026-11-02T10:02:00Z,120,200,audio video,192.0.2.1,0.2500\n",
    )
    .unwrap();
    cli(
        d,
        &sqlite_url,
        &["calls", "import", calls.to_str().unwrap()],
    );

    let before = {
        let server = Server::start(d, &sqlite_url);
        let alice = install.client(&install.alice);
        let bob = install.client(&install.bob);
        get(
            &alice,
            &server.base,
            "action=set_diversions&FUNC=%3Cvoice-mailbox%3E&FBUS=bob",
        )
        .await;
        get(&alice, &server.base, "action=dnd_on").await;
        get(&alice, &server.base, "action=privacy_on").await;
        // A closed and an open prepaid session for bob.
        let proxy = install.client(&install.service);
        for id in ["p1", "p2"] {
            let r = open_prepaid(&proxy, &server.base, BOB, id).await;
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            if id == "p1" {
                break;
            }
        }
        let close = json!({"duration": 95, "from_tag": "f", "to_tag": "t"});
        let r = close_prepaid(&proxy, &server.base, "p1", &close).await;
        assert_eq!(r.status(), 200);
        let r = open_prepaid(&proxy, &server.base, BOB, "p2").await;
        assert_eq!(r.status(), 201);
        let mut snap = snapshot(&alice, &server.base).await;
        snap.extend(snapshot(&bob, &server.base).await);
        snap
    };

    let copied = cli(
        d,
        &sqlite_url,
        &["copy", "--from", &sqlite_url, "--to", db.url()],
    );
    assert!(copied.contains("2 account(s)"), "{copied}");
    // A second copy into the same (now full) database is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
        .args([
            "--data-dir",
            d.to_str().unwrap(),
            "copy",
            "--from",
            &sqlite_url,
            "--to",
            db.url(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let server = Server::start(d, db.url());
    let alice = install.client(&install.alice);
    let bob = install.client(&install.bob);
    let mut after = snapshot(&alice, &server.base).await;
    after.extend(snapshot(&bob, &server.base).await);
    for ((action, b), (_, a)) in before.iter().zip(after.iter()) {
        assert_eq!(b, a, "{action} differs after the copy");
    }
    // Certificates kept their serials, so the old files still work, and the SIP password still
    // unlocks a new .p12.
    let p12 = alice
        .post(format!("{}/settings.phtml?action=p12", server.base))
        .form(&[("password", ALICE_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(p12.status(), 200);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_connections_give_503_at_worst_and_the_server_recovers() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let mut server = Server::start(install.dir.path(), db.url());
    let alice = install.client(&install.alice);
    assert_eq!(get(&alice, &server.base, "action=account").await.0, 200);
    for round in 0..3 {
        let killed = db.terminate_connections().await;
        assert!(killed > 0, "round {round}: the server held no connection");
        let mut ok = false;
        for _ in 0..20 {
            let r = alice
                .get(format!("{}/settings.phtml?action=account", server.base))
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                200 => {
                    ok = true;
                    break;
                }
                503 => {
                    assert!(
                        r.headers().get("retry-after").is_some(),
                        "503 without Retry-After"
                    );
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body["success"], false);
                }
                other => panic!("round {round}: {other} {}", r.text().await.unwrap()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(ok, "round {round}: the server did not recover");
        // Writes work again too.
        assert_eq!(get(&alice, &server.base, "action=privacy_on").await.0, 200);
    }
    assert!(server.alive(), "the server must keep running");
    drop(server);
}

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL, standing for the network path to the
/// database: it can be cut (it stops accepting and drops every open connection) and restored on
/// the same port.
struct Proxy {
    port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = Some(tokio::spawn(Self::serve(listener, target)));
        Self { port, target, task }
    }

    async fn serve(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
        // Dropping the set (when this task is aborted) drops every proxied connection.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }

    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|e| panic!("rebind 127.0.0.1:{}: {e}", self.port));
        self.task = Some(tokio::spawn(Self::serve(listener, self.target)));
    }
}

/// Where the `host:port` of a URL is.
fn host_port_range(url: &str) -> std::ops::Range<usize> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    host_start..end
}

/// The URL with its `host:port` replaced.
fn with_host_port(url: &str, host_port: &str) -> String {
    let mut out = url.to_owned();
    out.replace_range(host_port_range(url), host_port);
    out
}

/// One request during the outage: its status, whether it had `Retry-After`, and its latency.
async fn timed(client: &reqwest::Client, url: &str) -> (u16, bool, Duration) {
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), client.get(url).send())
        .await
        .expect("no answer within 20 s")
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").is_some();
    let _ = r.bytes().await;
    (status, retry_after, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_fast_and_the_server_recovers_by_itself() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let target = tokio::net::lookup_host(&db.url()[host_port_range(db.url())])
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = Proxy::start(target).await;
    let proxied = with_host_port(db.url(), &format!("127.0.0.1:{}", proxy.port));
    let server = Server::start(install.dir.path(), &proxied);
    let alice = install.client(&install.alice);
    let account = format!("{}/settings.phtml?action=account", server.base);
    let me = format!("{}/v1/me", server.base);
    assert_eq!(timed(&alice, &account).await.0, 200);
    assert_eq!(timed(&alice, &me).await.0, 200);

    proxy.cut().await;
    // The first request finds the database gone (it may wait for the pool's acquire timeout);
    // from then on every 503 comes at once, with Retry-After, on both doors.
    let (status, retry_after, first) = timed(&alice, &account).await;
    assert_eq!((status, retry_after), (503, true), "the first request");
    let mut latencies = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 { &account } else { &me };
        let (status, retry_after, took) = timed(&alice, url).await;
        assert_eq!(
            (status, retry_after),
            (503, true),
            "request {i} during the outage"
        );
        latencies.push(took);
    }
    // And a burst of concurrent requests does not pile up either.
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let (alice, account) = (alice.clone(), account.clone());
            tokio::spawn(async move { timed(&alice, &account).await })
        })
        .collect();
    for t in burst {
        let (status, retry_after, took) = t.await.unwrap();
        assert_eq!((status, retry_after), (503, true), "a request of the burst");
        latencies.push(took);
    }
    latencies.sort();
    let max = *latencies.last().unwrap();
    eprintln!(
        "outage: first 503 after {first:?}; then {} 503s, median {:?}, max {max:?}",
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    assert!(
        max < Duration::from_millis(500),
        "503s during a known outage must be fast: max {max:?}"
    );

    // Restored on the same port: the server finds the database again by itself.
    proxy.restore().await;
    let restored = Instant::now();
    let deadline = restored + Duration::from_secs(5);
    loop {
        let (status, _, _) = timed(&alice, &account).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "no recovery within 5 s of the restore"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered {:?} after the restore", restored.elapsed());
    assert_eq!(timed(&alice, &me).await.0, 200);
    assert_eq!(get(&alice, &server.base, "action=privacy_on").await.0, 200);
    drop(server);
    proxy.cut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sip_door_on_two_servers_follows_changes_and_revocations_at_once() {
    use sip_settings_sip::client::{Connection, Question};
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let d = install.dir.path();
    let sip = "sip_listen = [\"tls:127.0.0.1:0\"]\nsip_registrations = \"hint\"\n";
    let one = Server::start_with_sip(d, db.url(), sip, 1);
    let two = Server::start_with_sip(d, db.url(), sip, 1);
    let tls = std::sync::Arc::new(
        sip_settings_pki::tls::client_config(&install.ca, &install.service.0).unwrap(),
    );
    let open = |server: &Server| {
        let listen: sip_settings_sip::Listen = server.sip[0].parse().unwrap();
        let tls = tls.clone();
        async move {
            Connection::open(listen, Some((tls, "localhost".to_owned())))
                .await
                .unwrap()
        }
    };
    let mut to_one = open(&one).await;
    let mut to_two = open(&two).await;
    let q = question("sip:alice@example.com", "sip:carol@example.org", &[]);
    for conn in [&mut to_one, &mut to_two] {
        let a = conn.ask(&q).await.unwrap();
        assert_eq!(a.response.code, 302, "{}", a.text);
        assert!(a.text.contains("X-Ring-Time: 35"), "{}", a.text);
    }
    // A forward set through server one's settings.phtml is obeyed by server two's next INVITE.
    let alice = install.client(&install.alice);
    let (status, _) = get(
        &alice,
        &one.base,
        "action=set_diversions&FUNC=%2B31201234567",
    )
    .await;
    assert_eq!(status, 200);
    let a = to_two.ask(&q).await.unwrap();
    assert_eq!(a.response.code, 302, "{}", a.text);
    assert_eq!(
        a.response.headers.get("contact"),
        Some("<sip:+31201234567@example.com>"),
        "{}",
        a.text
    );
    assert!(a.text.contains("reason=unconditional"), "{}", a.text);
    // Many questions at once on one connection: on PostgreSQL each waits for the database in
    // its own task, and every one is answered (matched by Call-ID), whatever the order.
    let many: Vec<Question> = (0..60)
        .map(|i| {
            let callee = if i % 2 == 0 {
                "sip:alice@example.com"
            } else {
                "sip:bob@example.com"
            };
            question(callee, &format!("sip:caller{i}@example.org"), &[])
        })
        .collect();
    let answers = to_one.pipeline(&many).await.unwrap();
    assert_eq!(answers.len(), 60);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.response.code, 302, "{}", a.text);
        let expected = if i % 2 == 0 {
            "<sip:+31201234567@example.com>"
        } else {
            "<sip:bob@example.com;ring=35>"
        };
        assert_eq!(
            a.response.headers.get("contact"),
            Some(expected),
            "{i}: {}",
            a.text
        );
    }
    // The proxy's certificate revoked by the CLI: refused on both servers' open connections.
    let list = cli(d, db.url(), &["cert", "list"]);
    let serial = list
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("service"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no service certificate in {list}"))
        .to_owned();
    cli(d, db.url(), &["cert", "revoke", &serial]);
    for conn in [&mut to_one, &mut to_two] {
        let a = conn.ask(&q).await.unwrap();
        assert_eq!(a.response.code, 403, "{}", a.text);
    }
}

/// `url` with a password in the userinfo, the same with it in the query (`?password=`), and the
/// password: the one `url` has, or a made-up one (which a server with trust authentication
/// ignores).
fn password_forms(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with ://");
    let (userinfo, host_path) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let (user, secret) = match userinfo.split_once(':') {
        Some((user, password)) => (user, password.to_owned()),
        None => (userinfo, "hunter2".to_owned()),
    };
    let separator = if host_path.contains('?') { '&' } else { '?' };
    (
        format!("{scheme}://{user}:{secret}@{host_path}"),
        format!("{scheme}://{user}@{host_path}{separator}password={secret}"),
        secret,
    )
}

/// Whether `text` shows `secret` as a URL's password (in the userinfo or the query).
fn shows_password(text: &str, secret: &str) -> bool {
    text.contains(&format!(":{secret}@"))
        || text
            .to_ascii_lowercase()
            .contains(&format!("password={}", secret.to_ascii_lowercase()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_never_prints_the_database_password() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (in_userinfo, in_query, secret) = password_forms(db.url());
    for url in [in_userinfo, in_query] {
        let out = cli(dir.path(), &url, &["migrate"]);
        assert!(out.contains("is migrated"), "{out}");
        assert!(
            out.contains("***"),
            "the password is not shown as ***: {out}"
        );
        assert!(!shows_password(&out, &secret), "{url}: {out}");
    }
}

#[test]
fn a_failed_migrate_never_prints_the_database_password() {
    // Nothing listens on port 1: opening the store fails, and the error names the database.
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable",
        "postgres://u@127.0.0.1:1/db?password=hunter2&sslmode=disable",
        "postgresql://u@127.0.0.1:1/db?sslmode=disable&PASSWORD=hunter2",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--database", url, "migrate"])
            .output()
            .expect("run sip-settings");
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot open database"), "{stderr}");
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "{url}: {stdout}{stderr}"
        );
    }
}

#[test]
fn help_never_prints_the_database_password_from_the_environment() {
    // clap shows an option's environment variable with its value in the help, unless hidden.
    for args in [
        &["--help"][..],
        &["migrate", "--help"],
        &["serve", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
            .args(args)
            .env(
                "SIP_SETTINGS_DATABASE",
                "postgres://u:hunter2@127.0.0.1:1/db?password=hunter3",
            )
            .output()
            .expect("run sip-settings");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(text.contains("SIP_SETTINGS_DATABASE"), "{args:?}: {text}");
        assert!(!text.contains("hunter"), "{args:?}: {text}");
    }
}
