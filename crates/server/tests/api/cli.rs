//! The operator's command line, run as the real binary: what it does, and that every kind of
//! bad input fails with one line, a non-zero exit, and nothing written.

use std::path::Path;

use crate::helpers::*;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything the CLI can show of the state, to compare before and after a refused command.
fn snapshot(dir: &Path) -> String {
    let mut s = String::new();
    for args in [
        &["domain", "list"][..],
        &["account", "list", "--json"],
        &["cert", "list"],
        &["account", "show", ALICE, "--json"],
    ] {
        s.push_str(&ok(&sip_settings_cmd(dir, args)));
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    s.push_str(&files.join("\n"));
    s
}

#[tokio::test]
async fn init_creates_everything_once_and_says_so_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = ok(&sip_settings_cmd(
        &data,
        &[
            "init",
            "--hostname",
            "sip.example.net",
            "--hostname",
            "192.0.2.7",
        ],
    ));
    assert!(first.contains("created client CA"), "{first}");
    assert!(first.contains("sip.example.net"), "{first}");
    for f in [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "sip-settings.db",
    ] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(data.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} must be owner-only, mode {mode:o}");
        }
    }
    let ca_before = std::fs::read(data.join("ca.crt")).unwrap();
    let server_before = std::fs::read(data.join("server.crt")).unwrap();
    let second = ok(&sip_settings_cmd(&data, &["init"]));
    assert!(second.contains("nothing changed"), "{second}");
    assert_eq!(std::fs::read(data.join("ca.crt")).unwrap(), ca_before);
    assert_eq!(
        std::fs::read(data.join("server.crt")).unwrap(),
        server_before
    );

    // The server certificate names every host, as openssl reads it.
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(data.join("server.crt"))
        .output()
        .unwrap();
    let sans = String::from_utf8_lossy(&text.stdout);
    for name in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:sip.example.net",
        "IP Address:192.0.2.7",
    ] {
        assert!(sans.contains(name), "{name} not in {sans}");
    }
}

#[tokio::test]
async fn commands_before_init_say_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["domain", "list"][..],
        &["account", "list"],
        &["cert", "list"],
        &["serve"],
        &["migrate"],
    ] {
        let out = sip_settings_cmd(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sip-settings init"), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
    }
    assert!(
        !dir.path().join("sip-settings.db").exists(),
        "nothing may be created"
    );
}

#[tokio::test]
async fn domains_accounts_and_certificates_round_trip() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir();
    assert!(ok(&app.cli(&["domain", "add", "Example.ORG"])).contains("added domain example.org"));
    assert_eq!(
        ok(&app.cli(&["domain", "list"])),
        "example.com\nexample.org\n"
    );

    let pwfile = dir.join("pw.txt");
    std::fs::write(&pwfile, "dave-password-1\n").unwrap();
    ok(&app.cli(&[
        "account",
        "add",
        "dave@example.org",
        "--password-file",
        pwfile.to_str().unwrap(),
    ]));
    assert_eq!(
        ok(&app.cli(&["account", "list", "--domain", "example.org"])),
        "dave@example.org\n"
    );
    assert_eq!(ok(&app.cli(&["account", "list"])).lines().count(), 3);
    let shown: serde_json::Value = serde_json::from_str(&ok(&app.cli(&[
        "account",
        "show",
        "dave@example.org",
        "--json",
    ])))
    .unwrap();
    assert_eq!(shown["sip_address"], "dave@example.org");
    assert!(
        !shown.to_string().contains("dave-password"),
        "never show the password"
    );

    // The password from the file is the SIP password: it unlocks a .p12; another does not.
    let out_dir = dir.join("dave");
    let out_str = out_dir.to_str().unwrap();
    ok(&app.cli(&[
        "cert",
        "issue",
        "dave@example.org",
        "--out",
        out_str,
        "--p12-password",
        "dave-password-1",
    ]));
    assert!(out_dir.join("dave@example.org.p12").exists());
    // passwd changes it.
    ok(&app.cli(&[
        "account",
        "passwd",
        "dave@example.org",
        "--password",
        "dave-password-2",
    ]));
    std::fs::remove_dir_all(&out_dir).unwrap();
    let refused = app.cli(&[
        "cert",
        "issue",
        "dave@example.org",
        "--out",
        out_str,
        "--p12-password",
        "dave-password-1",
    ]);
    assert!(!refused.status.success());
    assert!(
        !out_dir.join("dave@example.org.crt").exists(),
        "a refused issue writes nothing"
    );
    ok(&app.cli(&[
        "cert",
        "issue",
        "dave@example.org",
        "--out",
        out_str,
        "--p12-password",
        "dave-password-2",
        "--days",
        "30",
    ]));

    // Admin and service certificates.
    ok(&app.cli(&["cert", "issue", "--admin", "ops", "--out", out_str]));
    ok(&app.cli(&["cert", "issue", "--service", "proxy-1", "--out", out_str]));
    assert!(out_dir.join("ops.crt").exists() && out_dir.join("proxy-1.crt").exists());
    let list = ok(&app.cli(&["cert", "list"]));
    assert!(
        list.lines()
            .any(|l| l.contains("ops") && l.contains("admin")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("proxy-1") && l.contains("service")),
        "{list}"
    );
    let daves = ok(&app.cli(&["cert", "list", "dave@example.org"]));
    assert_eq!(
        daves.lines().count(),
        3,
        "header and two certificates: {daves}"
    );

    // Revoke all of dave's.
    assert!(
        ok(&app.cli(&["cert", "revoke", "--account", "dave@example.org"])).contains("revoked 2")
    );
    let daves = ok(&app.cli(&["cert", "list", "dave@example.org"]));
    assert!(
        daves.lines().skip(1).all(|l| !l.trim_end().ends_with(" -")),
        "{daves}"
    );
}

/// Bad input to `domain add` and `account add`, with a word the one-line error must contain.
fn bad_domain_and_account_add_cases() -> Vec<(Vec<&'static str>, &'static str)> {
    vec![
        (vec!["domain", "add", "not a domain"], "domain"),
        (vec!["domain", "add", "example.com"], "exists"),
        (vec!["domain", "add", "nodot"], "domain"),
        (
            vec![
                "account",
                "add",
                "Al ice@example.com",
                "--password",
                "long-enough-1",
            ],
            "account",
        ),
        (
            vec![
                "account",
                "add",
                "_x@example.com",
                "--password",
                "long-enough-1",
            ],
            "must start",
        ),
        (
            vec![
                "account",
                "add",
                "carol@unknown.example",
                "--password",
                "long-enough-1",
            ],
            "not served",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password",
                "long-enough-1",
                "--timezone",
                "Mars/Olympus",
            ],
            "timezone",
        ),
        (
            vec!["account", "add", ALICE, "--password", "long-enough-1"],
            "exists already",
        ),
        (
            vec!["account", "add", "carol@example.com", "--password", "short"],
            "password",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password",
                "long-enough-1",
                "--email",
                "nope",
            ],
            "email",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password",
                "long-enough-1",
                "--mobile",
                "0612345678",
            ],
            "mobile",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password",
                "long-enough-1",
                "--no-answer-timeout",
                "4",
            ],
            "no_answer_timeout",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password",
                "long-enough-1",
                "--no-answer-timeout",
                "soon",
            ],
            "no_answer_timeout",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password",
                "long-enough-1",
                "--language",
                "english!",
            ],
            "language",
        ),
        (
            vec![
                "account",
                "add",
                "carol@example.com",
                "--password-file",
                "/nonexistent/pw",
            ],
            "password file",
        ),
    ]
}

/// Bad input to the other account commands, the certificate commands and the global options
/// (`--out` is `out`, `--config` a bad file), with a word the one-line error must contain.
fn bad_account_cert_and_option_cases<'a>(
    out_s: &'a str,
    bad_config: &'a str,
) -> Vec<(Vec<&'a str>, &'a str)> {
    vec![
        (vec!["account", "add", "carol@example.com"], "password"),
        (vec!["account", "show", "nobody@example.com"], "no account"),
        (vec!["account", "show", "garbage"], "user@domain"),
        (vec!["account", "list", "--domain", "bad domain"], "domain"),
        (
            vec![
                "account",
                "passwd",
                "nobody@example.com",
                "--password",
                "long-enough-1",
            ],
            "no account",
        ),
        (
            vec!["account", "passwd", ALICE, "--password", "short"],
            "password",
        ),
        (
            vec!["account", "delete", "nobody@example.com"],
            "no account",
        ),
        (
            vec!["cert", "issue", "nobody@example.com", "--out", out_s],
            "no account",
        ),
        (
            vec![
                "cert",
                "issue",
                ALICE,
                "--out",
                out_s,
                "--p12-password",
                "wrong-password",
            ],
            "password",
        ),
        (
            vec!["cert", "issue", ALICE, "--out", out_s, "--days", "0"],
            "days",
        ),
        (
            vec!["cert", "issue", ALICE, "--out", out_s, "--days", "99999"],
            "days",
        ),
        (
            vec!["cert", "issue", "--admin", "bad name!", "--out", out_s],
            "name",
        ),
        (
            vec!["cert", "issue", "--service", "", "--out", out_s],
            "name",
        ),
        (vec!["cert", "revoke", "xyz"], "serial"),
        (vec!["cert", "revoke", "0123456789ABCDEF"], "no certificate"),
        (
            vec!["cert", "revoke", "--account", "nobody@example.com"],
            "no account",
        ),
        (vec!["cert", "list", "not-an-account"], "user@domain"),
        (
            vec!["--database", "mysql://localhost/x", "account", "list"],
            "unsupported database",
        ),
        (vec!["--config", bad_config, "account", "list"], "bad.toml"),
    ]
}

#[tokio::test]
async fn bad_input_to_every_command_fails_cleanly_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir().to_owned();
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    let bad_config = dir.join("bad.toml");
    std::fs::write(&bad_config, "listen = 12\n").unwrap();
    let bad_config_s = bad_config.to_str().unwrap();
    let mut cases = bad_domain_and_account_add_cases();
    cases.extend(bad_account_cert_and_option_cases(out_s, bad_config_s));
    let before = snapshot(&dir);
    for (args, expect) in cases {
        let err = app.cli_refused(&args);
        assert!(
            err.contains(expect),
            "{args:?}: expected '{expect}' in: {err}"
        );
        assert_eq!(snapshot(&dir), before, "{args:?} changed something");
        assert!(!out.exists(), "{args:?} wrote files");
    }
}
