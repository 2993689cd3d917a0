//! The binary on PostgreSQL over TLS: `sip-settings --database 'postgres://…?sslmode=verify-full
//! &sslrootcert=…'` against a PostgreSQL instance of the test's own that takes TLS connections
//! only (`hostssl`), its certificate for `localhost` made by the project's own CA code. The URL's
//! TLS parameters reach the store, and a refused certificate is named, without the password.
//! Needs PostgreSQL's server programs; skips without them (saying so), except in CI.

use std::path::Path;
use std::process::Command;

use sip_settings_pki::Pki;
use sip_settings_store_postgres::testing::OwnServer;

/// `sip-settings --data-dir dir --database url args…`: success, standard output, standard error.
fn run(dir: &Path, url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--database", url])
        .args(args)
        .output()
        .expect("run sip-settings");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_connects_with_verify_full_and_names_a_refused_certificate() {
    let ca = Pki::create_ca("PostgreSQL test CA", 1).unwrap();
    let server = Pki::load(&ca)
        .unwrap()
        .issue_server(&["localhost".to_owned()], 1)
        .unwrap();
    let Some(pg) = OwnServer::start(
        "the CLI over PostgreSQL TLS",
        &server.cert_pem,
        &server.key_pem,
        &ca.cert_pem,
        "hostssl all all 127.0.0.1/32 trust",
    ) else {
        return;
    };
    let root = pg.dir().join("db-ca.crt");
    std::fs::write(&root, &ca.cert_pem).unwrap();
    let root = root.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    // trust authentication ignores the password; it must still never be shown.
    let url = |host: &str, query: &str| {
        format!(
            "postgres://postgres:hunter2@{host}:{}/postgres?{query}",
            pg.port()
        )
    };
    let full = format!("sslmode=verify-full&sslrootcert={root}");
    let mut shown = String::new();
    let mut run = |url: String, args: &[&str]| {
        let (ok, out, err) = run(data.path(), &url, args);
        shown.push_str(&out);
        shown.push_str(&err);
        (ok, out, err)
    };

    let (ok, out, err) = run(url("localhost", &full), &["init"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(url("localhost", &full), &["migrate"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("is migrated") && out.contains("sslmode=verify-full"),
        "{out}"
    );

    // The certificate names localhost, not 127.0.0.1.
    let (ok, out, err) = run(url("127.0.0.1", &full), &["migrate"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("cannot open database")
            && err.contains("TLS with the PostgreSQL server failed (sslmode=verify-full)")
            && err.contains("not valid for name \"127.0.0.1\""),
        "{err}"
    );
    // Without TLS, the server refuses.
    let (ok, out, err) = run(url("localhost", "sslmode=disable"), &["migrate"]);
    assert!(!ok, "{out}");
    assert!(err.contains("no encryption"), "{err}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
