//! Chat-history replication (issue 18, point 3): `get_journal_entries`, `put_journal_entries`
//! and `delete_journal_entries` as Blink Cocoa's `ChatHistoryReplicator` (HistoryManager.py)
//! sends them — `put` as a POST of `uuid` and `data` (a JSON object of rows keyed by message
//! id) with the action in the URL, `get` with `except_uuid`, `after_timestamp` and `summary=1`
//! in an unencoded query string, `delete` as a POST of `data` (a JSON list of ids as strings) —
//! and what it reads from the replies; the bounds, the refusals (nothing changed), other
//! accounts' entries, and the same over HTTP Digest.

use serde_json::{Value, json};
use sip_settings_core::digest::Algorithm;

use crate::helpers::{
    ALICE, ALICE_PASSWORD, TestApp, digest_authorization, digest_nonce_opaque, json_of,
    no_redirects,
};

const MAC: &str = "2f1a6d2e-8f0b-4a57-9c7e-1d2b3c4d5e6f";
const PHONE: &str = "9c0e51aa-1b2c-4d3e-8f90-aabbccddeeff";
const PUT: &str = "action=put_journal_entries&realm=example.com";
const DELETE: &str = "action=delete_journal_entries&realm=example.com";

/// Blink's outgoing batch: `{msgid: {"data": …, "id": msgid}}`.
fn batch(ids: &[&str]) -> String {
    let rows: serde_json::Map<String, Value> = ids
        .iter()
        .map(|m| {
            (
                (*m).to_owned(),
                json!({"data": format!("ENC({m})"), "id": m}),
            )
        })
        .collect();
    Value::Object(rows).to_string()
}

impl TestApp {
    /// POST to `settings.phtml?{query}` with a form body, by certificate.
    async fn chat_post(
        &self,
        cert: &sip_settings_core::cert::IssuedCertificate,
        query: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = self
            .client(Some(cert))
            .post(format!("{}/settings.phtml?{query}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// Every journal id alice's account keeps (the summary).
    async fn summary_ids(&self) -> Vec<i64> {
        let (status, body) = self
            .action(&self.alice, "action=get_journal_entries&summary=1&limit=1")
            .await;
        assert_eq!(status, 200, "{body}");
        body["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["journal_id"].as_i64().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn blink_replicates_between_two_devices() {
    let app = TestApp::spawn().await;
    // The Mac pushes two messages, the phone one.
    let (status, body) = app
        .chat_post(
            &app.alice,
            PUT,
            &[("uuid", MAC), ("data", &batch(&["m1", "m2"]))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["rows"], 2);
    assert_eq!(body["error_message"], "2 journal entries stored");
    // What Blink reads: each result's id (its message id) and journal_id.
    let results = body["results"].as_array().unwrap();
    let ids: Vec<(String, i64)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["journal_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ids[0].0, "m1");
    assert_eq!(ids[1].0, "m2");
    assert!(ids[0].1 < ids[1].1);
    let (status, body) = app
        .chat_post(
            &app.alice,
            PUT,
            &[("uuid", PHONE), ("data", &batch(&["p1"]))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let phone_id = body["results"][0]["journal_id"].as_i64().unwrap();

    // The phone asks as Blink does: except itself, after timestamp 0, with the summary.
    let query = format!(
        "realm=example.com&action=get_journal_entries&except_uuid={PHONE}&after_timestamp=0&summary=1"
    );
    let (status, body) = app.action(&app.alice, &query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["rows"], 2);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let now = chrono::Utc::now().timestamp();
    for (r, (m, id)) in results.iter().zip(&ids) {
        assert_eq!(r["id"].as_i64(), Some(*id), "{r}");
        assert_eq!(r["uuid"], MAC);
        assert_eq!(r["data"], format!("ENC({m})"));
        assert_eq!(r["account"], ALICE);
        // Blink compares and converts it as a number of seconds.
        let t = r["timestamp"].as_i64().unwrap();
        assert!((now - 60..=now + 60).contains(&t), "{t} vs {now}");
    }
    // The summary lists every entry, the phone's own too (Blink deletes local messages whose
    // journal id is missing from it).
    let summary: Vec<i64> = body["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(s["timestamp"].as_i64().is_some(), "{s}");
            s["journal_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(summary, vec![ids[0].1, ids[1].1, phone_id]);
    // Without summary=1 there is none.
    let (_, body) = app.action(&app.alice, "action=get_journal_entries").await;
    assert!(body.get("summary").is_none(), "{body}");
    assert_eq!(body["rows"], 3);

    // after_timestamp is inclusive: the last timestamp seen brings that second's entries again
    // (Blink drops repeats by message id), so none stored in that second is ever missed.
    let last = results[1]["timestamp"].as_i64().unwrap();
    let (_, body) = app
        .action(
            &app.alice,
            &format!("action=get_journal_entries&except_uuid={PHONE}&after_timestamp={last}"),
        )
        .await;
    assert_eq!(body["rows"], 2, "{body}");
    let (_, body) = app
        .action(
            &app.alice,
            &format!("action=get_journal_entries&after_timestamp={}", last + 3600),
        )
        .await;
    assert_eq!(body["rows"], 0, "{body}");
    // limit limits (CDRTool answered nothing for any limit under 5000); after_id pages on.
    let (_, body) = app
        .action(&app.alice, "action=get_journal_entries&limit=1")
        .await;
    assert_eq!(body["rows"], 1, "{body}");
    assert_eq!(body["results"][0]["id"].as_i64(), Some(ids[0].1));
    let (_, body) = app
        .action(
            &app.alice,
            &format!("action=get_journal_entries&limit=1&after_id={}", ids[0].1),
        )
        .await;
    assert_eq!(body["results"][0]["id"].as_i64(), Some(ids[1].1), "{body}");

    // Bob sees none of alice's entries, and his delete of her ids deletes nothing.
    let (_, body) = app
        .action(&app.bob, "action=get_journal_entries&summary=1")
        .await;
    assert_eq!(body["rows"], 0, "{body}");
    assert_eq!(body["summary"], json!([]));
    let all = json!([
        ids[0].1.to_string(),
        ids[1].1.to_string(),
        phone_id.to_string()
    ])
    .to_string();
    let (status, body) = app.chat_post(&app.bob, DELETE, &[("data", &all)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], 0, "{body}");
    assert_eq!(app.summary_ids().await.len(), 3);

    // Blink deletes by a list of ids as strings; one id alone as journal_id.
    let two = json!([ids[0].1.to_string(), ids[1].1.to_string()]).to_string();
    let (status, body) = app.chat_post(&app.alice, DELETE, &[("data", &two)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["rows"], 2);
    assert_eq!(body["error_message"], "2 journal entries deleted");
    assert_eq!(app.summary_ids().await, vec![phone_id]);
    let (status, body) = app
        .action(
            &app.alice,
            &format!("action=delete_journal_entries&journal_id={phone_id}"),
        )
        .await;
    assert_eq!((status, body["rows"].clone()), (200, json!(1)), "{body}");
    assert!(app.summary_ids().await.is_empty());
}

/// A refusal case: the query string, the form, the start of the expected text.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

/// Every refusal is 400 with `Error: <parameter> …` and changes nothing.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .chat_post(&app.alice, PUT, &[("uuid", MAC), ("data", &batch(&["m1"]))])
        .await;
    assert_eq!(status, 200, "{body}");
    let kept = app.summary_ids().await;
    let big = json!([{"id": "m", "data": "A".repeat(64 * 1024 + 1)}]).to_string();
    let cases: Vec<Case<'_>> = vec![
        (PUT, vec![("data", batch(&["x"]))], "Error: uuid is missing"),
        (
            PUT,
            vec![("uuid", "a b".into()), ("data", batch(&["x"]))],
            "Error: uuid must be",
        ),
        (PUT, vec![("uuid", MAC.into())], "Error: data is missing"),
        (
            PUT,
            vec![("uuid", MAC.into()), ("data", "{not json".into())],
            "Error: data is not valid JSON",
        ),
        (
            PUT,
            vec![("uuid", MAC.into()), ("data", "\"text\"".into())],
            "Error: data must be a JSON list",
        ),
        (
            PUT,
            vec![("uuid", MAC.into()), ("data", "[]".into())],
            "Error: data has no entries",
        ),
        (
            PUT,
            vec![
                ("uuid", MAC.into()),
                ("data", r#"[{"data":"ok"},{"data":5}]"#.into()),
            ],
            "Error: data[1] has a data that is not a string",
        ),
        (
            PUT,
            vec![("uuid", MAC.into()), ("data", big)],
            "Error: data[0] has a data of 65537 bytes, at most 65536",
        ),
        (DELETE, vec![], "Error: data is missing"),
        (
            DELETE,
            vec![("data", "[\"1\",\"x\"]".into())],
            "Error: data[1] must be a journal id",
        ),
        (
            DELETE,
            vec![("data", "1".into())],
            "Error: data must be a JSON list",
        ),
        (
            DELETE,
            vec![("data", "[1]".into()), ("journal_id", "1".into())],
            "Error: journal_id cannot",
        ),
        (
            DELETE,
            vec![("journal_id", "1 OR 1=1".into())],
            "Error: journal_id must be",
        ),
        (
            "action=get_journal_entries",
            vec![("limit", "0".into())],
            "Error: limit must be",
        ),
        (
            "action=get_journal_entries",
            vec![("after_id", "-1".into())],
            "Error: after_id must be",
        ),
        (
            "action=get_journal_entries",
            vec![("after_timestamp", "2026-12-05 10:00:00".into())],
            "Error: after_timestamp must be",
        ),
        (
            "action=get_journal_entries",
            vec![("except_uuid", "x' OR '1".into())],
            "Error: except_uuid must be",
        ),
        (
            "action=get_journal_entries",
            vec![("summary", "yes".into())],
            "Error: summary must be",
        ),
    ];
    for (query, form, text) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = app.chat_post(&app.alice, query, &form).await;
        assert_eq!(status, 400, "{query} {form:?}: {body}");
        assert_eq!(body["success"], false, "{body}");
        let message = body["error_message"].as_str().unwrap();
        assert!(message.starts_with(text), "{query}: {message}");
        assert_eq!(app.summary_ids().await, kept, "{query} changed something");
    }
}

/// The endpoint's rules hold for the chat writes: another account named is `403`, `HEAD` is
/// `405`, the larger body needs the action in the URL and cannot carry another action, and a
/// body over 4 MiB is `413`; none of them changes anything.
#[tokio::test]
async fn chat_writes_keep_the_endpoint_rules() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .chat_post(&app.alice, PUT, &[("uuid", MAC), ("data", &batch(&["m1"]))])
        .await;
    assert_eq!(status, 200, "{body}");
    let kept = app.summary_ids().await;
    // Another account named: 403. HEAD on a change: 405. The 4 MiB body of a chat write does
    // not reach another action (the body's action conflicts with the URL's).
    let (status, body) = app
        .chat_post(
            &app.alice,
            PUT,
            &[
                ("account", "bob@example.com"),
                ("uuid", MAC),
                ("data", &batch(&["y"])),
            ],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let head = app
        .client(Some(&app.alice))
        .head(format!("{}/settings.phtml?{PUT}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 405);
    let (status, body) = app
        .chat_post(
            &app.alice,
            PUT,
            &[("action", "set_diversions"), ("FUNC", "bob")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Error: action "),
        "{body}"
    );
    assert_eq!(
        app.read(&app.alice, "diversions").await["FUNC"],
        Value::Null
    );
    assert_eq!(app.summary_ids().await, kept);
    // The action in the form body instead of the URL: the endpoint's usual value limit.
    let long = batch(&["a"; 1]).replace("ENC(a)", &"A".repeat(5000));
    let (status, body) = app
        .post_action(
            &app.alice,
            &[
                ("action", "put_journal_entries"),
                ("uuid", MAC),
                ("data", &long),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Error: data is longer than 4096")
    );
    // With the action in the URL it is accepted.
    let (status, body) = app
        .chat_post(&app.alice, PUT, &[("uuid", MAC), ("data", &long)])
        .await;
    assert_eq!(status, 200, "{body}");
    // A body over the chat limit (4 MiB) is 413.
    let huge = "A".repeat(4 * 1024 * 1024 + 1);
    let (status, body) = app
        .chat_post(&app.alice, PUT, &[("uuid", MAC), ("data", &huge)])
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(app.summary_ids().await.len(), kept.len() + 1);
}

/// At 10 000 entries an account drops its oldest in the put that goes over, and says so.
#[tokio::test]
async fn the_oldest_entries_go_beyond_ten_thousand() {
    let app = TestApp::spawn().await;
    let mut first = None;
    for round in 0..10 {
        let rows: Vec<Value> = (0..1000)
            .map(|i| json!({"id": format!("r{round}-{i}"), "data": "x"}))
            .collect();
        let (status, body) = app
            .chat_post(
                &app.alice,
                PUT,
                &[("uuid", MAC), ("data", &Value::Array(rows).to_string())],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["dropped"], 0);
        first.get_or_insert(body["results"][0]["journal_id"].as_i64().unwrap());
    }
    let (status, body) = app
        .chat_post(
            &app.alice,
            PUT,
            &[("uuid", PHONE), ("data", &batch(&["n1", "n2"]))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dropped"], 2, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("the 2 oldest dropped (an account keeps at most 10000 entries"),
        "{body}"
    );
    let ids = app.summary_ids().await;
    assert_eq!(ids.len(), 10_000);
    // Counted (the registry is the test process's, shared by the tests running in it).
    let counted = |op: &str| {
        sip_settings_core::metrics::global()
            .counter("sip_settings_chat_journal_entries_total", &[op])
    };
    assert!(counted("stored") >= 10_002);
    assert!(counted("dropped") >= 2);
    let first = first.unwrap();
    assert_eq!(ids[0], first + 2, "the two oldest went");
    // More than 1000 entries in one put is refused.
    let rows: Vec<Value> = (0..1001).map(|_| json!({"data": "x"})).collect();
    let (status, body) = app
        .chat_post(
            &app.alice,
            PUT,
            &[("uuid", MAC), ("data", &Value::Array(rows).to_string())],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("at most 1000 per request")
    );
}

/// Blink has no certificate: it answers the Digest challenge with the SIP credentials, for
/// the put (POST) and the get (GET) alike.
#[tokio::test]
async fn digest_put_then_get() {
    let app = TestApp::spawn().await;
    let client = no_redirects(&app);
    let put_uri = format!("/settings.phtml?{PUT}");
    let challenge = client
        .post(format!("{}{put_uri}", app.base))
        .form(&[("uuid", MAC), ("data", &batch(&["d1"]))])
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status().as_u16(), 401);
    let (nonce, opaque) = digest_nonce_opaque(&challenge, Algorithm::Md5);
    let response = client
        .post(format!("{}{put_uri}", app.base))
        .header(
            "authorization",
            digest_authorization(
                Algorithm::Md5,
                "alice",
                ALICE_PASSWORD,
                &nonce,
                &opaque,
                1,
                "POST",
                &put_uri,
            ),
        )
        .form(&[("uuid", MAC), ("data", &batch(&["d1"]))])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let journal_id = body["results"][0]["journal_id"].as_i64().unwrap();
    assert_eq!(body["results"][0]["id"], "d1");

    let get_uri = format!(
        "/settings.phtml?realm=example.com&action=get_journal_entries&except_uuid={PHONE}&after_timestamp=0&summary=1"
    );
    let response = client
        .get(format!("{}{get_uri}", app.base))
        .header(
            "authorization",
            digest_authorization(
                Algorithm::Md5,
                "alice",
                ALICE_PASSWORD,
                &nonce,
                &opaque,
                2,
                "GET",
                &get_uri,
            ),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["id"].as_i64(), Some(journal_id));
    assert_eq!(body["results"][0]["data"], "ENC(d1)");
    assert_eq!(body["summary"][0]["journal_id"].as_i64(), Some(journal_id));
    // The certificate sees the same account's entries.
    assert_eq!(app.summary_ids().await, vec![journal_id]);
}

/// Blink's replicator, reproduced in Python (its own language) from HistoryManager.py, as an
/// independent client over HTTP Digest (Python's `urllib`): the Mac pushes its outgoing batch
/// (urlencoded POST, the action in the URL), the phone polls with its `except_uuid`, its last
/// `after_timestamp` and, the first time, `summary=1`, and applies the results as Blink does
/// (`int(timestamp)`, `str(id)`, `datetime.fromtimestamp`, the `msgid_list` that drops the
/// repeats of an inclusive `after_timestamp`), then deletes one entry by a list of string ids.
const BLINK: &str = r#"
import base64, json, ssl, sys, urllib.parse, urllib.request
from datetime import datetime
base, ca, user, password, mac, phone = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
pm = urllib.request.HTTPPasswordMgrWithDefaultRealm()
pm.add_password(None, base, user, password)
opener = urllib.request.build_opener(
    urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPDigestAuthHandler(pm))
settings_url = base + "/settings.phtml"

def post(action, variables):
    url = settings_url + "?action=%s&realm=example.com" % action
    body = urllib.parse.urlencode(variables).encode()
    with opener.open(urllib.request.Request(url, data=body, method="POST")) as r:
        return json.loads(r.read())

def push(uuid, messages):
    outgoing = {}
    for m in messages:
        entry = base64.b64encode(json.dumps(m).encode()).decode()  # stands for encrypt()
        outgoing[m['msgid']] = {'data': entry, 'id': m['msgid']}
    journal = post('put_journal_entries', {'uuid': uuid, 'data': json.dumps(outgoing)})
    assert journal['success'], journal
    return {entry['id']: str(entry['journal_id']) for entry in journal['results']}

local = {}
last = {'timestamp': 0, 'msgid_list': []}
summary_seen = [False]

def poll(uuid):
    variables = {'realm': 'example.com', 'action': 'get_journal_entries',
                 'except_uuid': uuid, 'after_timestamp': last['timestamp']}
    if not summary_seen[0]:
        variables['summary'] = 1
    query = "&".join(("%s=%s" % (k, v) for k, v in list(variables.items())))
    datetime.fromtimestamp(last['timestamp'])
    with opener.open(settings_url + "?" + query) as r:
        journal = json.loads(r.read())
    assert journal['success'], journal
    if 'summary' in journal and journal['summary']:
        summary_seen[0] = True
        first = journal['summary'][0]
        datetime.fromtimestamp(int(first['timestamp'])).strftime('%Y-%m-%d %H:%M:%S')
        [r['journal_id'] for r in journal['summary']]
    received = 0
    for entry in journal['results']:
        data, timestamp, journal_id = entry['data'], entry['timestamp'], str(entry['id'])
        assert entry['uuid'] != uuid
        if last['timestamp'] < timestamp:
            last['timestamp'] = timestamp
            last['msgid_list'] = []
        data = json.loads(base64.b64decode(data))
        if data['msgid'] not in last['msgid_list']:
            last['msgid_list'].append(data['msgid'])
            local[data['msgid']] = (data['body'], journal_id)
            received += 1
    return received

ids = push(mac, [{'msgid': 'm1', 'body': 'hello'}, {'msgid': 'm2', 'body': 'there'}])
first = poll(phone)
push(mac, [{'msgid': 'm3', 'body': 'again'}])
second = poll(phone)
third = poll(phone)
deleted = post('delete_journal_entries', {'data': json.dumps([ids['m1']])})
assert deleted['success'], deleted
print(json.dumps({'first': first, 'second': second, 'third': third,
                  'local': sorted(local), 'bodies': sorted(b for b, _ in local.values()),
                  'summary_seen': summary_seen[0], 'deleted': deleted['rows']}))
"#;

// Multi-threaded: python3 runs as a blocking child process while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blink_replicator_in_python_over_digest() {
    let have_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_python {
        eprintln!("SKIP: python3 is not installed");
        return;
    }
    let app = TestApp::spawn().await;
    let ca = app.write_file("chat-ca.crt", &app.ca_pem);
    let out = std::process::Command::new("python3")
        .args(["-c", BLINK, &app.base])
        .arg(&ca)
        .args(["alice", ALICE_PASSWORD, MAC, PHONE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["first"], 2, "{report}");
    // The second poll brings m3 (and, when it was stored in the same second as m1 and m2,
    // those again, dropped by msgid_list); the third brings nothing new.
    assert_eq!(report["second"], 1, "{report}");
    assert_eq!(report["third"], 0, "{report}");
    assert_eq!(report["local"], json!(["m1", "m2", "m3"]));
    assert_eq!(report["bodies"], json!(["again", "hello", "there"]));
    assert_eq!(report["summary_seen"], true);
    assert_eq!(report["deleted"], 1);
    assert_eq!(app.summary_ids().await.len(), 2);
}

/// On PostgreSQL, two real servers sharing one database: what one device puts through one
/// server the other reads through the other, and a delete through either holds on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_servers_share_the_chat_journal() {
    use crate::helpers::serve::{Server, get, provision};
    use sip_settings_store_tests::pg::TempDatabase;

    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let a = Server::start(install.dir.path(), db.url());
    let b = Server::start(install.dir.path(), db.url());
    let alice = install.client(&install.alice);
    let response = alice
        .post(format!("{}/settings.phtml?{PUT}", a.base))
        .form(&[("uuid", MAC), ("data", &batch(&["m1", "m2"]))])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["journal_id"].as_i64().unwrap())
        .collect();
    let (status, body) = get(
        &alice,
        &b.base,
        &format!("action=get_journal_entries&except_uuid={PHONE}&after_timestamp=0&summary=1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(body["results"][1]["data"], "ENC(m2)");
    assert_eq!(body["summary"].as_array().unwrap().len(), 2);
    let (status, body) = get(
        &alice,
        &b.base,
        &format!("action=delete_journal_entries&journal_id={}", ids[0]),
    )
    .await;
    assert_eq!((status, body["rows"].clone()), (200, json!(1)), "{body}");
    let (_, body) = get(&alice, &a.base, "action=get_journal_entries").await;
    assert_eq!(body["rows"], 1, "{body}");
    assert_eq!(body["results"][0]["id"].as_i64(), Some(ids[1]));
}

/// `sip-settings copy` from SQLite to PostgreSQL carries the chat journal with its journal ids
/// (Blink holds them), and a put afterwards gets an id above them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_postgres_keeps_the_journal_ids() {
    use crate::helpers::serve::{Server, TempSqlite, cli, get, provision};
    use sip_settings_store_tests::pg::TempDatabase;

    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let sqlite = TempSqlite::new("sip-settings.db");
    let install = provision(&sqlite.url);
    let d = install.dir.path();
    let alice = install.client(&install.alice);
    let everything = "action=get_journal_entries&summary=1";
    let before = {
        let server = Server::start(d, &sqlite.url);
        for (device, ids) in [(MAC, ["m1", "m2"]), (PHONE, ["p1", "p2"])] {
            let response = alice
                .post(format!("{}/settings.phtml?{PUT}", server.base))
                .form(&[("uuid", device), ("data", &batch(&ids))])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        let (_, first) = get(&alice, &server.base, everything).await;
        let id = first["results"][0]["id"].as_i64().unwrap();
        get(
            &alice,
            &server.base,
            &format!("action=delete_journal_entries&journal_id={id}"),
        )
        .await;
        get(&alice, &server.base, everything).await.1
    };
    assert_eq!(before["rows"], 3, "{before}");
    let copied = cli(
        d,
        &sqlite.url,
        &["copy", "--from", &sqlite.url, "--to", db.url()],
    );
    assert!(copied.contains("3 chat journal entries"), "{copied}");
    let server = Server::start(d, db.url());
    let (status, after) = get(&alice, &server.base, everything).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after, before);
    let response = alice
        .post(format!("{}/settings.phtml?{PUT}", server.base))
        .form(&[("uuid", MAC), ("data", &batch(&["m3"]))])
        .send()
        .await
        .unwrap();
    let (_, body) = json_of(response).await;
    let max = before["summary"][2]["journal_id"].as_i64().unwrap();
    assert!(
        body["results"][0]["journal_id"].as_i64().unwrap() > max,
        "{body}"
    );
}
