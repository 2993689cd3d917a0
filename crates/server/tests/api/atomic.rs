//! A change, its `old` value and its journal entry are one transaction, on both stores and
//! across servers: under concurrent writes every acknowledged change has exactly its entry with
//! the value it replaced; `If-Match` has one winner even when the writers are two servers on one
//! PostgreSQL database; SQLite writers wait for the CLI's commits instead of failing. These run
//! real `sip-settings serve` processes and the real CLI.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sip_settings_store_tests::pg::TempDatabase;

use crate::helpers::serve::{Install, Server, TempSqlite, cli, get, provision};

/// A server with rate limits off, so that a burst of writes is not cut short by `429`.
fn serve(install: &Install, database: &str) -> Server {
    Server::start_with(
        install.dir.path(),
        database,
        "[rate_limits]\nenabled = false\n",
    )
}

async fn journal_of(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = client
            .get(format!("{base}/v1/me/journal?limit=100{cursor}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        let batch = page["entries"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        entries.extend(batch);
        match page["next"].as_i64() {
            Some(next) => cursor = format!("&before={next}"),
            None => break,
        }
    }
    entries
}

/// `writers` concurrent `set_diversions` of alice's FUNC, each to a target of its own, through
/// the action endpoint (which takes no precondition: last writer wins). Afterwards the journal's
/// `diversions.FUNC` entries, oldest first, must form one chain — each entry's old value is the
/// previous entry's new one — with one entry per acknowledged write, ending in the stored value.
async fn journal_chain_holds(database: &str, writers: usize) {
    let install = provision(database);
    let server = serve(&install, database);
    let alice = install.client(&install.alice);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let alice = alice.clone();
            let base = server.base.clone();
            tokio::spawn(async move {
                let r = alice
                    .get(format!(
                        "{base}/settings.phtml?action=set_diversions&FUNC=target{i}@example.org"
                    ))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    let mut acknowledged = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(
            status == 200 || status == 503,
            "a write answered {status}, not 200 or 503"
        );
        acknowledged += usize::from(status == 200);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let entries: Vec<Value> = journal_of(&alice, &server.base)
        .await
        .into_iter()
        .rev()
        .filter(|e| e["resource"] == "diversions.FUNC")
        .collect();
    let mut broken = 0;
    let mut previous = Value::Null;
    for e in &entries {
        if e["old"] != previous {
            broken += 1;
        }
        previous = e["new"].clone();
    }
    let (_, stored) = get(&alice, &server.base, "action=diversions").await;
    eprintln!(
        "{database}: {acknowledged} of {writers} writes acknowledged, {} entries, {broken} with a \
         wrong old value",
        entries.len()
    );
    assert_eq!(
        broken, 0,
        "entries whose old value is not the value they replaced: {entries:#?}"
    );
    assert_eq!(
        entries.len(),
        acknowledged,
        "one journal entry per acknowledged write"
    );
    assert_eq!(
        previous, stored["FUNC"],
        "the last entry is the stored value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_old_values_are_exact_under_concurrent_writes_on_sqlite() {
    let sqlite = TempSqlite::new("s.db");
    let url = sqlite.url.clone();
    journal_chain_holds(&url, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_old_values_are_exact_under_concurrent_writes_on_postgres() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    journal_chain_holds(db.url(), 60).await;
}

/// Two servers on one PostgreSQL database, ten writers on each, all sending `If-Match` with the
/// same entity tag at the same moment (connections opened beforehand, a barrier): exactly one
/// write wins, every other is `412`, and the stored value is the winner's — in every one of
/// several rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_has_one_winner_across_two_servers() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let servers = [serve(&install, db.url()), serve(&install, db.url())];
    // One client (one connection) per writer, each warmed up by a read.
    let mut writers = Vec::new();
    for i in 0..20 {
        let client = install.client(&install.alice);
        let base = servers[i % 2].base.clone();
        let (status, _) = get(&client, &base, "action=account").await;
        assert_eq!(status, 200);
        writers.push((client, base));
    }
    let mut rounds_with_more_winners = 0;
    for round in 0..8 {
        let r = writers[0]
            .0
            .get(format!("{}/v1/me/diversions/FUNC", writers[0].1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(writers.len()));
        let tasks: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(i, (client, base))| {
                let (client, base, tag) = (client.clone(), base.clone(), tag.clone());
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let request = client
                        .put(format!("{base}/v1/me/diversions/FUNC"))
                        .header("if-match", tag)
                        .json(&json!({"target": format!("r{round}w{i}@example.org")}));
                    barrier.wait().await;
                    (i, request.send().await.unwrap().status().as_u16())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (i, status) = t.await.unwrap();
            match status {
                200 => winners.push(i),
                412 => {}
                other => panic!("writer {i} answered {other}"),
            }
        }
        if winners.len() != 1 {
            rounds_with_more_winners += 1;
            eprintln!("round {round}: winners {winners:?}");
            continue;
        }
        let (_, stored) = get(&writers[1].0, &writers[1].1, "action=diversions").await;
        assert_eq!(
            stored["FUNC"],
            format!("r{round}w{}@example.org", winners[0])
        );
    }
    eprintln!(
        "If-Match across two servers: {rounds_with_more_winners} of 8 rounds without exactly one winner"
    );
    assert_eq!(rounds_with_more_winners, 0);
    drop(servers);
}

/// The server and the CLI write one SQLite file at the same time: the server's writes wait for
/// the CLI's commits (busy timeout) instead of failing with `503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_wait_for_the_cli_instead_of_failing() {
    let sqlite = TempSqlite::new("s.db");
    let url = sqlite.url.clone();
    let install = provision(&url);
    let server = serve(&install, &url);
    let data_dir = install.dir.path().to_owned();
    let cli_url = url.clone();
    let operator = std::thread::spawn(move || {
        for i in 0..30 {
            let uri = format!("sip:contact{i}@example.org");
            cli(
                &data_dir,
                &cli_url,
                &[
                    "phonebook",
                    "add",
                    crate::helpers::ALICE,
                    &uri,
                    "--group",
                    "g",
                ],
            );
        }
    });
    let alice = install.client(&install.alice);
    let bob = install.client(&install.bob);
    let mut statuses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while !operator.is_finished() && Instant::now() < deadline && round < 200 {
        let writes = [
            (
                alice.clone(),
                format!("action=set_diversions&FUNC=t{round}@example.org"),
            ),
            (
                bob.clone(),
                format!("action=set_diversions&FBUS=t{round}@example.org"),
            ),
            (
                alice.clone(),
                format!("action=dnd_on&duration={}", round + 1),
            ),
        ];
        let tasks: Vec<_> = writes
            .into_iter()
            .map(|(client, query)| {
                let base = server.base.clone();
                tokio::spawn(async move {
                    let r = client
                        .get(format!("{base}/settings.phtml?{query}"))
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                })
            })
            .collect();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        round += 1;
    }
    operator.join().unwrap();
    let failed = statuses.iter().filter(|s| **s != 200).count();
    eprintln!(
        "SQLite with the CLI writing: {failed} of {} writes failed",
        statuses.len()
    );
    assert!(
        statuses.len() >= 30,
        "too few writes ran: {}",
        statuses.len()
    );
    assert_eq!(failed, 0, "statuses: {statuses:?}");
}
