//! What a user does with the downloads: the real `curl` with the `.crt` exactly as the seed
//! shows it, the real `openssl pkcs12` with the `.p12`, and `quickstart` end to end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::serve::KillOnDrop;
use crate::helpers::*;

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run tool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_the_crt_file_works_as_the_seed_shows() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir();
    let issued = app.cli(&["cert", "issue", ALICE, "--out", dir.to_str().unwrap()]);
    assert!(issued.status.success());
    let port = app.server.as_ref().unwrap().addr().port();
    // The seed's own line: curl -k -E user@domain.crt https://host/settings.phtml?action=name
    let (ok, body, err) = run(Command::new("curl")
        .current_dir(dir)
        .args(["-s", "-k", "-E", "alice@example.com.crt"])
        .arg(format!(
            "https://localhost:{port}/settings.phtml?action=account"
        )));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sip_address"], ALICE);
    // And verifying the server with ca.crt instead of -k.
    let (ok, body, err) = run(Command::new("curl")
        .current_dir(dir)
        .args(["-sS", "--cacert", "ca.crt", "-E", "alice@example.com.crt"])
        .arg(format!(
            "https://localhost:{port}/settings?action=get_account"
        )));
    assert!(ok, "{err}");
    assert!(
        body.contains("\"sip_address\":\"alice@example.com\""),
        "{body}"
    );
    // Without a certificate curl gets the JSON 401.
    let (_, body, _) = run(Command::new("curl")
        .current_dir(dir)
        .args(["-s", "--cacert", "ca.crt"])
        .arg(format!(
            "https://localhost:{port}/settings.phtml?action=account"
        )));
    assert!(body.contains("client certificate is required"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_serial_matches_what_cert_list_prints() {
    let app = TestApp::spawn().await;
    let crt = app.write_crt("alice.crt", &app.alice);
    let (ok, out, err) = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&crt));
    assert!(ok, "{err}");
    let serial = out.trim().trim_start_matches("serial=").to_owned();
    assert_eq!(serial, app.alice.record.serial.as_str());
    let list = String::from_utf8_lossy(&app.cli(&["cert", "list", ALICE]).stdout).into_owned();
    assert!(list.contains(&serial), "{list}");
    // And `cert revoke` takes that exact output.
    let revoke = app.cli(&["cert", "revoke", out.trim()]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p12_files_open_with_openssl_with_the_sip_password_only() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir();
    let port = app.server.as_ref().unwrap().addr().port();
    for (flag, cipher, mac) in [
        (None, "AES-256-CBC", "MAC: sha256"),
        (
            Some("--legacy-p12"),
            "pbeWithSHA1And3-KeyTripleDES-CBC",
            "MAC: sha1",
        ),
    ] {
        let out = dir.join(if flag.is_some() { "legacy" } else { "modern" });
        let mut args = vec![
            "cert",
            "issue",
            ALICE,
            "--out",
            out.to_str().unwrap(),
            "--p12-password",
            ALICE_PASSWORD,
        ];
        args.extend(flag);
        let issued = app.cli(&args);
        assert!(
            issued.status.success(),
            "{}",
            String::from_utf8_lossy(&issued.stderr)
        );
        let p12 = out.join("alice@example.com.p12");
        let (ok, _, info) = run(Command::new("openssl")
            .args([
                "pkcs12",
                "-info",
                "-noout",
                "-passin",
                &format!("pass:{ALICE_PASSWORD}"),
                "-in",
            ])
            .arg(&p12));
        assert!(ok, "{info}");
        assert!(info.contains(cipher), "{cipher} in {info}");
        assert!(info.contains(mac), "{mac} in {info}");
        // Key, certificate and CA certificate are inside.
        let (ok, pems, err) = run(Command::new("openssl")
            .args([
                "pkcs12",
                "-nodes",
                "-passin",
                &format!("pass:{ALICE_PASSWORD}"),
                "-in",
            ])
            .arg(&p12));
        assert!(ok, "{err}");
        assert_eq!(pems.matches("BEGIN CERTIFICATE").count(), 2, "{pems}");
        assert!(pems.contains("BEGIN PRIVATE KEY"));
        assert!(pems.contains("sip-settings client CA"));
        // Another password fails.
        let (ok, _, _) = run(Command::new("openssl")
            .args([
                "pkcs12",
                "-info",
                "-noout",
                "-passin",
                "pass:not-the-password",
                "-in",
            ])
            .arg(&p12));
        assert!(!ok, "a wrong password opened the .p12");
        // And curl can use the .p12 directly.
        let (ok, body, err) = run(Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(dir.join("ca.crt"))
            .args(["--cert-type", "P12", "--cert"])
            .arg(format!("{}:{ALICE_PASSWORD}", p12.display()))
            .arg(format!(
                "https://localhost:{port}/settings.phtml?action=account"
            )));
        assert!(ok, "{err}");
        assert!(body.contains(ALICE), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_runs_the_demo_and_the_printed_curl_line_works() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
            .current_dir(dir.path())
            .args(["quickstart", "--listen", "127.0.0.1:0"])
            .env_remove("SIP_SETTINGS_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut child = KillOnDrop(child);
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let curl_line = loop {
            assert!(Instant::now() < deadline, "no curl line: {seen:?}");
            let line = lines.next().expect("quickstart ended early").unwrap();
            seen.push(line.clone());
            if line.trim_start().starts_with("curl ") {
                break line.trim().to_owned();
            }
        };
        assert!(
            curl_line.contains("--cacert") && !curl_line.contains(" -k"),
            "{curl_line}"
        );
        if round == 0 {
            assert!(
                seen.iter()
                    .any(|l| l.contains("SIP password of alice@example.com")),
                "{seen:?}"
            );
        } else {
            assert!(seen.iter().any(|l| l.contains("reusing")), "{seen:?}");
            assert!(!seen.iter().any(|l| l.contains("SIP password")), "{seen:?}");
        }
        let (ok, body, err) = run(Command::new("sh")
            .current_dir(dir.path())
            .args(["-c", &format!("{curl_line} -sS")]));
        assert!(ok, "{curl_line}: {err}");
        assert!(
            body.contains("\"sip_address\":\"alice@example.com\""),
            "{body}"
        );
        for f in ["ca.crt", "alice@example.com.crt", "alice@example.com.p12"] {
            assert!(dir.path().join("sip-settings-data").join(f).exists(), "{f}");
        }
        if round == 0 {
            // The SIP redirect server runs too, and the printed line asks it.
            let sip_line = loop {
                assert!(Instant::now() < deadline, "no sip ask line: {seen:?}");
                let line = lines.next().expect("quickstart ended early").unwrap();
                seen.push(line.clone());
                if line.trim_start().starts_with("sip-settings ") && line.contains(" sip ask ") {
                    break line.trim().to_owned();
                }
            };
            let args: Vec<&str> = sip_line.split_whitespace().skip(1).collect();
            let out = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
                .current_dir(dir.path())
                .args(&args)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{sip_line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.starts_with("SIP/2.0 302 Moved Temporarily\n"),
                "{text}"
            );
            assert!(
                text.contains("Contact: <sip:alice@example.com;ring=35>"),
                "{text}"
            );
        }
        let _ = child.0.kill();
        let _ = child.0.wait();
    }
}
