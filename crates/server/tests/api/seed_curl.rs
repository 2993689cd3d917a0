//! The seed's own curl lines, run with the real `curl` and the `.crt` the CLI writes, for every
//! read and change of the action endpoint.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

fn curl(dir: &std::path::Path, port: u16, query: &str) -> Value {
    let out = Command::new("curl")
        .current_dir(dir)
        .args(["-s", "-k", "-E", "alice@example.com.crt"])
        .arg(format!("https://localhost:{port}/settings.phtml?{query}"))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{query}: not JSON ({e}): {body}"))
}

fn is_string_array(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
}

fn status_ok(query: &str, v: &Value) {
    assert_eq!(keys_of(v), ["success", "error_message"], "{query}: {v}");
    assert_eq!(v["success"], true, "{query}: {v}");
    assert!(v["error_message"].is_string(), "{query}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_curl_lines_work_for_every_action() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir().join("curl");
    app.cli_ok(&["cert", "issue", ALICE, "--out", dir.to_str().unwrap()]);
    assert!(dir.join("alice@example.com.crt").exists());
    let port = app.server.as_ref().unwrap().addr().port();

    let v = curl(&dir, port, "action=account");
    assert_eq!(v["sip_address"], ALICE);
    assert_eq!(v["dnd"], false);
    assert_eq!(v["privacy"], false);

    for read in ["aliases", "enum", "reject"] {
        let v = curl(&dir, port, &format!("action={read}"));
        assert!(is_string_array(&v), "{read}: {v}");
    }
    let v = curl(&dir, port, "action=diversions");
    assert_eq!(
        keys_of(&v),
        ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV", "no_answer_timeout"]
    );
    assert!(v["no_answer_timeout"].is_u64(), "{v}");
    let v = curl(&dir, port, "action=accept");
    assert_eq!(keys_of(&v), ["persistent", "temporary", "groups"]);
    assert!(v["persistent"].is_object() && v["groups"].is_array(), "{v}");
    assert_eq!(
        v["temporary"],
        json!({"groups": [], "duration": 0, "until": null})
    );
    let v = curl(&dir, port, "action=voicemail");
    assert!(v.is_null(), "no mailbox: {v}");

    let v = curl(&dir, port, "action=dnd_on");
    status_ok("dnd_on", &v);
    assert_eq!(v["error_message"], "Do Not Disturb is on");
    assert_eq!(curl(&dir, port, "action=account")["dnd"], true);

    let v = curl(&dir, port, "action=dnd_on&duration=60");
    status_ok("dnd_on&duration=60", &v);
    assert_eq!(v["error_message"], "Do Not Disturb is on for 60 minutes");
    let accept = curl(&dir, port, "action=accept");
    assert_eq!(accept["temporary"]["groups"], json!(["nobody"]));
    assert_eq!(accept["temporary"]["duration"], 60);

    let v = curl(&dir, port, "action=dnd_off");
    status_ok("dnd_off", &v);
    assert_eq!(v["error_message"], "Do Not Disturb is off");
    assert_eq!(curl(&dir, port, "action=account")["dnd"], false);

    let v = curl(&dir, port, "action=privacy_on");
    status_ok("privacy_on", &v);
    assert_eq!(v["error_message"], "Privacy is on");
    assert_eq!(curl(&dir, port, "action=account")["privacy"], true);
    let v = curl(&dir, port, "action=privacy_off");
    status_ok("privacy_off", &v);
    assert_eq!(v["error_message"], "Privacy is off");
    assert_eq!(curl(&dir, port, "action=account")["privacy"], false);

    let v = curl(&dir, port, "action=add_alias&username=alice2");
    status_ok("add_alias", &v);
    assert_eq!(v["error_message"], "Alias alice2@example.com added");
    assert_eq!(
        curl(&dir, port, "action=aliases"),
        json!(["alice2@example.com"])
    );

    let v = curl(
        &dir,
        port,
        "action=set_diversions&FUNC=bob&FBUS=0031201234567",
    );
    status_ok("set_diversions", &v);
    let text = v["error_message"].as_str().unwrap();
    assert!(
        text.starts_with("Diversions updated: ") && text.contains("FUNC") && text.contains("FBUS"),
        "{text}"
    );
    let d = curl(&dir, port, "action=diversions");
    assert_eq!(d["FUNC"], "bob@example.com");
    assert_eq!(d["FBUS"], "+31201234567@example.com");
    assert!(
        d["FNOL"].is_null() && d["FNOA"].is_null() && d["FUNV"].is_null(),
        "{d}"
    );
}
