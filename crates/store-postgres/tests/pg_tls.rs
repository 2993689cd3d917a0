//! `PgStore` over TLS, against a PostgreSQL instance of the test's own (the shared server on
//! 5432 is not reconfigured): `ssl = on` with a server certificate for `localhost` only, made
//! at test time by a test CA, and a `pg_hba.conf` that takes TLS connections only (`hostssl`),
//! so a connection that gets in without TLS proves nothing passed in the clear. Needs
//! PostgreSQL's server programs (`initdb`, `pg_ctl`: Debian's `postgresql` package, which CI
//! installs); without them the tests say so and pass, except in CI (`CI=true`), where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sip_settings_core::Domain;
use sip_settings_core::store::Accounts;
use sip_settings_store_postgres::PgStore;
use sip_settings_store_postgres::testing::OwnServer;
use sqlx::{Connection, PgConnection};

/// A test CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A certificate of `ca` for `names` (subject alternative names) with common name `cn`, and
/// its key, both PEM.
fn leaf(ca: &Ca, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes `text` to `dir/name` and returns the path, for a URL.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// `value` percent-encoded for a URL's query.
fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The instance with a server certificate of `ca` for `localhost` only, taking client
/// certificates of `ca` too, and the `hba` lines.
fn start(what: &str, ca: &Ca, hba: &str) -> Option<OwnServer> {
    let (cert, key) = leaf(
        ca,
        "localhost",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    OwnServer::start(what, &cert, &key, &ca.pem, hba)
}

/// Whether the connections of `application` (every connection of a store opened with
/// `application_name=…`) all use TLS, and how many there are, seen by the server.
async fn tls_of(admin: &mut PgConnection, application: &str) -> (bool, i64) {
    sqlx::query_as(
        "SELECT coalesce(bool_and(s.ssl), false), count(*) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(application)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// The error of a store that must not open, as text.
async fn refused(url: &str) -> String {
    match PgStore::open(url, false).await {
        Ok(store) => {
            store.close().await;
            panic!("{url}: connected, but must not")
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_means_what_libpq_says() {
    let test_ca = ca("sip-settings test CA");
    // The database `plain` takes connections without TLS only; the others with TLS only.
    let hba = "hostnossl plain all 127.0.0.1/32 trust\n\
               hostssl plain all 127.0.0.1/32 reject\n\
               hostssl all certuser 127.0.0.1/32 cert\n\
               hostssl all all 127.0.0.1/32 trust";
    let Some(pg) = start("the PostgreSQL TLS tests", &test_ca, hba) else {
        return;
    };
    let started = Instant::now();
    let port = pg.port();
    let dir = pg.dir();
    let root = enc(&file(dir, "ca.crt", &test_ca.pem));
    let other_root = enc(&file(dir, "other-ca.crt", &ca("another CA").pem));
    let at = |host: &str, db: &str, user: &str, query: &str| {
        format!("postgres://{user}@{host}:{port}/{db}?{query}")
    };
    let url = |db: &str, app: &str, query: &str| {
        at(
            "127.0.0.1",
            db,
            "postgres",
            &format!("application_name={app}&{query}"),
        )
    };

    let mut admin = PgConnection::connect(&url("postgres", "admin", "sslmode=require"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE plain")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("CREATE ROLE certuser LOGIN")
        .execute(&mut admin)
        .await
        .unwrap();

    // Opens a store that must connect; returns whether all its connections use TLS.
    let mut opened = async |url: String, app: &str| -> bool {
        let store = PgStore::open(&url, false)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let (tls, connections) = tls_of(&mut admin, app).await;
        assert!(connections >= 1, "{url}: no connection seen");
        store.close().await;
        tls
    };

    // disable: no TLS, so the hostssl-only databases refuse it; a hostnossl one takes it.
    let e = refused(&url("postgres", "a", "sslmode=disable")).await;
    assert!(
        e.contains("no pg_hba.conf entry") && e.contains("no encryption"),
        "{e}"
    );
    assert!(!opened(url("plain", "b", "sslmode=disable"), "b").await);

    // require: TLS whatever the certificate (a test CA the client does not know), so the
    // hostnossl database refuses it.
    assert!(opened(url("postgres", "c", "sslmode=require"), "c").await);
    let e = refused(&url("plain", "d", "sslmode=require")).await;
    assert!(
        e.contains("pg_hba.conf rejects") && e.contains("SSL encryption"),
        "{e}"
    );

    // prefer (sqlx's default too) and allow (read as prefer) use TLS when the server has it.
    assert!(opened(url("postgres", "e", "sslmode=prefer"), "e").await);
    assert!(opened(url("postgres", "f", ""), "f").await);
    assert!(opened(url("postgres", "g", "sslmode=allow"), "g").await);

    // The name the server's certificate holds.
    let named = |app: &str, query: &str| {
        at(
            "localhost",
            "postgres",
            "postgres",
            &format!("application_name={app}&{query}"),
        )
    };

    // verify-ca: the chain must end in sslrootcert.
    let q = format!("sslmode=verify-ca&sslrootcert={root}");
    assert!(opened(named("h", &q), "h").await);
    let e = refused(&named(
        "i",
        &format!("sslmode=verify-ca&sslrootcert={other_root}"),
    ))
    .await;
    assert!(
        e.contains("TLS") && e.contains("verify-ca") && e.contains("UnknownIssuer"),
        "{e}"
    );
    // Without sslrootcert only the public CAs are trusted, not a private one.
    let e = refused(&named("j", "sslmode=verify-ca")).await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    // libpq's verify-ca does not check the name; sqlx 0.8.6 does, against rustls 0.23.24 and
    // later (sqlx issue #3793, fixed after 0.8.6): verify-ca is verify-full here. When a
    // newer sqlx connects, docs/deployment.md ("PostgreSQL over TLS") changes with this line.
    let e = refused(&url("postgres", "h2", &q)).await;
    assert!(
        e.contains("verify-ca") && e.contains("not valid for name"),
        "{e}"
    );
    // require with an sslrootcert verifies the chain, as in libpq.
    let e = refused(&named(
        "k",
        &format!("sslmode=require&sslrootcert={other_root}"),
    ))
    .await;
    assert!(
        e.contains("verify-ca") && e.contains("UnknownIssuer"),
        "{e}"
    );
    assert!(
        opened(
            named("l", &format!("sslmode=require&sslrootcert={root}")),
            "l"
        )
        .await
    );

    // verify-full: the chain and the host name (the certificate is for localhost only).
    let full = format!("sslmode=verify-full&sslrootcert={root}");
    assert!(opened(named("m", &full), "m").await);
    let e = refused(&url("postgres", "n", &full)).await;
    assert!(
        e.contains("verify-full") && e.contains("not valid for name \"127.0.0.1\""),
        "{e}"
    );
    let e = refused(&named(
        "o",
        &format!("sslmode=verify-full&sslrootcert={other_root}"),
    ))
    .await;
    assert!(e.contains("UnknownIssuer"), "{e}");

    // A client certificate (`cert` authentication: its common name is the user).
    let (cert, key) = leaf(
        &test_ca,
        "certuser",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert = enc(&file(dir, "client.crt", &cert));
    let key = enc(&file(dir, "client.key", &key));
    let with_cert = format!(
        "application_name=p&sslmode=verify-full&sslrootcert={root}&sslcert={cert}&sslkey={key}"
    );
    assert!(opened(at("localhost", "postgres", "certuser", &with_cert), "p").await);
    let without = format!("application_name=q&sslmode=verify-full&sslrootcert={root}");
    let e = refused(&at("localhost", "postgres", "certuser", &without)).await;
    assert!(e.contains("requires a valid client certificate"), "{e}");
    let half = format!("{without}&sslcert={cert}");
    let e = refused(&at("localhost", "postgres", "certuser", &half)).await;
    assert!(e.contains("sslcert and sslkey go together"), "{e}");

    admin.close().await.unwrap();
    eprintln!("TLS modes checked in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_store_runs_over_verify_full() {
    let test_ca = ca("sip-settings test CA");
    let Some(pg) = start(
        "the PostgreSQL TLS store test",
        &test_ca,
        "hostssl all all 127.0.0.1/32 trust",
    ) else {
        return;
    };
    let root = enc(&file(pg.dir(), "ca.crt", &test_ca.pem));
    let url = |app: &str| {
        format!(
            "postgres://postgres@localhost:{}/store?application_name={app}\
             &sslmode=verify-full&sslrootcert={root}",
            pg.port()
        )
    };
    let mut admin = PgConnection::connect(&url("admin").replace("/store?", "/postgres?"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE store")
        .execute(&mut admin)
        .await
        .unwrap();

    // Migrations, then the read cache's listener, over verify-full.
    let holder = PgStore::open(&url("holder"), true).await.unwrap();
    let writer = PgStore::open(&url("writer"), false).await.unwrap();
    holder.start_read_cache();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !holder.read_cache_holding() {
        assert!(
            Instant::now() < deadline,
            "the read cache never started holding"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (tls, connections) = tls_of(&mut admin, "holder").await;
    assert!(tls, "a connection of the store without TLS");
    assert!(connections >= 2, "pool and listener: {connections}");

    // A write through one store, read back through the other; the holder's cached answer is
    // dropped by the writer's ping over the listener before the write returns.
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    let domain = Domain::parse("example.com").unwrap();
    assert!(!holder.domain_exists(&domain).await.unwrap());
    assert!(!holder.domain_exists(&domain).await.unwrap());
    assert!(holder.read_cache_hits() >= 1, "answered from memory");
    let took = Instant::now();
    writer.add_domain(&domain, t0).await.unwrap();
    assert!(
        took.elapsed() < Duration::from_secs(2),
        "the holder confirmed the ping at once: {:?}",
        took.elapsed()
    );
    assert!(holder.domain_exists(&domain).await.unwrap());
    assert!(holder.read_cache_holding());
    assert_eq!(holder.live_read_cache_holders().await.unwrap(), 1);
    let (tls, _) = tls_of(&mut admin, "writer").await;
    assert!(tls);

    writer.close().await;
    holder.close().await;
    admin.close().await.unwrap();
}

/// A missing or empty `sslrootcert` is named before any connection is tried (nothing listens
/// on port 1: a connection would fail otherwise).
#[tokio::test]
async fn missing_or_empty_tls_files_are_named_before_connecting() {
    let dir = std::env::temp_dir().join(format!("sip-settings-pgtls-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = |mode: &str, root: &str| {
        format!(
            "postgres://postgres@127.0.0.1:1/postgres?sslmode={mode}&sslrootcert={}",
            enc(root)
        )
    };
    let missing = dir.join("missing.crt").to_string_lossy().into_owned();
    let e = refused(&url("verify-full", &missing)).await;
    assert!(
        e.contains("sslrootcert") && e.contains(&missing) && e.contains("cannot read"),
        "{e}"
    );
    let empty = file(&dir, "empty.crt", "");
    let e = refused(&url("verify-ca", &empty)).await;
    assert!(
        e.contains(&empty) && e.contains("no PEM CERTIFICATE"),
        "{e}"
    );
    // require with an sslrootcert verifies, so the file is read too.
    let e = refused(&url("require", &empty)).await;
    assert!(
        e.contains(&empty) && e.contains("no PEM CERTIFICATE"),
        "{e}"
    );
    // Modes that do not verify do not read it.
    let e = refused(&url("prefer", &missing)).await;
    assert!(!e.contains("sslrootcert"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
