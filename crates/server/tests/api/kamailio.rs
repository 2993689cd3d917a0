//! The shipped Kamailio configuration (`contrib/kamailio/kamailio.cfg`) in front of the SIP
//! door: a real Kamailio asks a [`TestApp`]'s redirect server about every INVITE and follows its
//! answers; `sipp` plays the callees (a UAS that registers with Kamailio, then answers, is busy
//! or lets it ring) and the caller. The tests assert what each far end received, read from
//! sipp's message trace.
//!
//! Every test passes, saying so, when `kamailio` or `sipp` is not installed.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sip_settings_sip::Transport;
use std::os::unix::process::CommandExt;
use tempfile::TempDir;

use crate::helpers::{ALICE, TestApp, assert_success};

// The sipp tests' peer: its trace reader and one-request runner.
use crate::sipp::peer;

use peer::{Call, Exchange, Message};

/// The configuration under test.
const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../contrib/kamailio/kamailio.cfg"
);

/// The longest any sipp process of a test may live (each also has its own `-timeout`).
const SIPP_LIMIT: Duration = Duration::from_secs(20);

const ALICE_URI: &str = "sip:alice@example.com";

/// The path of `program` on PATH (or in /usr/sbin, where Debian puts kamailio).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The two programs, or a printed reason why the test is skipped.
fn programs() -> Option<PathBuf> {
    let kamailio = find_program("kamailio");
    let sipp = find_program("sipp");
    match (kamailio, sipp) {
        (Some(kamailio), Some(_)) => Some(kamailio),
        (None, _) => {
            eprintln!("kamailio not installed: skipping");
            None
        }
        (_, None) => {
            eprintln!("sipp not installed: skipping");
            None
        }
    }
}

/// A free UDP port on loopback (bound and released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something has bound UDP `port` on loopback.
fn is_bound(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// Kamailio in the foreground with the shipped configuration, its own work directory and a
/// port chosen at run time; stopped (SIGTERM to its PID, then SIGKILL) when dropped.
struct Kamailio {
    child: std::process::Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Kamailio {
    /// Starts it against the SIP door at `settings`, with extra `-A` defines, and waits until
    /// it listens.
    fn start(program: &Path, settings: SocketAddr, defines: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let child = std::process::Command::new(program)
            .args(["-f", CONFIG, "-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-A")
            .arg(format!("LISTEN=udp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("SETTINGS=\"sip:{settings};transport=udp\""))
            .arg("-A")
            .arg("DOMAIN=\"example.com\"")
            .args(defines.iter().flat_map(|d| ["-A", d]))
            .arg("-w")
            .arg(dir.path())
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that its worker processes are stopped with it.
            .process_group(0)
            .spawn()
            .expect("start kamailio");
        let mut kamailio = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_bound(port) {
            if let Some(status) = kamailio.child.try_wait().unwrap() {
                panic!("kamailio exited ({status}):\n{}", kamailio.log());
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not listen:\n{}",
                kamailio.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        kamailio
    }

    /// What it logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM lets the main process stop its children; SIGKILL to the whole process group
        // if it has not ended in 3 s (killing only the main process would orphan the workers).
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever of the group is left (nothing, normally).
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running sipp process and where its trace goes; killed if dropped.
struct Sipp {
    child: tokio::process::Child,
    name: String,
    dir: TempDir,
}

impl Sipp {
    /// Starts sipp on `scenario` on 127.0.0.1:`port` (0: any), towards `remote` if given.
    fn start(name: &str, scenario: &str, port: u16, remote: Option<SocketAddr>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scenario.xml");
        std::fs::write(&file, scenario).unwrap();
        let mut command = tokio::process::Command::new("sipp");
        command
            .current_dir(dir.path())
            .arg("-sf")
            .arg(&file)
            .args(["-m", "1", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "u1", "-timeout", "15s", "-timeout_error"])
            .args(["-trace_msg", "-trace_err", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"));
        if let Some(remote) = remote {
            command.arg(remote.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start sipp");
        Self {
            child,
            name: name.to_owned(),
            dir,
        }
    }

    /// Waits for the end of its scenario (at most [`SIPP_LIMIT`]), asserts it succeeded and
    /// returns what it sent and received.
    async fn finish(mut self, kamailio: &Kamailio) -> Exchange {
        let status = tokio::time::timeout(SIPP_LIMIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("sipp {} ran longer than {SIPP_LIMIT:?}", self.name))
            .unwrap();
        let exchange = peer::read_trace(&self.dir.path().join("messages.log"));
        if !status.success() {
            panic!(
                "sipp {} failed ({status}).\nsent:\n{}\n\nreceived:\n{}\n\nerrors:\n{}\n\n\
                 kamailio:\n{}",
                self.name,
                texts(&exchange.sent),
                texts(&exchange.received),
                std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default(),
                kamailio.log()
            );
        }
        exchange
    }
}

fn texts(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| m.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// How a callee's phone behaves.
#[derive(Clone, Copy)]
enum Phone {
    /// Rings, answers 200, takes the ACK and the caller's BYE.
    Answers,
    /// Answers 486 Busy Here.
    Busy,
    /// Rings (180) until the caller's side cancels.
    RingsOn,
}

/// A reply of the callee's UAS to the INVITE just received.
fn uas_reply(status: &str, user: &str) -> String {
    format!(
        "<send><![CDATA[\n\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]-uas\n\
         [last_Call-ID:]\n[last_CSeq:]\n[last_Record-Route:]\n\
         Contact: <sip:{user}@[local_ip]:[local_port]>\nContent-Length: 0\n\n]]></send>\n"
    )
}

/// A reply to a request other than the INVITE (CANCEL, BYE).
const UAS_OK: &str = "<send><![CDATA[\n\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n\
                      [last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

/// The UAS scenario of a callee's phone.
fn uas_scenario(user: &str, phone: Phone) -> String {
    let body = match phone {
        Phone::Answers => format!(
            "{}{}<recv request=\"ACK\"/>\n<recv request=\"BYE\"/>\n{UAS_OK}",
            uas_reply("180 Ringing", user),
            uas_reply("200 OK", user)
        ),
        Phone::Busy => format!(
            "{}<recv request=\"ACK\"/>\n",
            uas_reply("486 Busy Here", user)
        ),
        // The 487 answers the INVITE (same branch as the CANCEL just received, CSeq 1).
        Phone::RingsOn => format!(
            "{}<recv request=\"CANCEL\"/>\n{UAS_OK}\
             <send><![CDATA[\n\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n\
             [last_To:];tag=[pid]-uas\n[last_Call-ID:]\nCSeq: 1 INVITE\nContent-Length: 0\n\n\
             ]]></send>\n<recv request=\"ACK\"/>\n",
            uas_reply("180 Ringing", user),
        ),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scenario name=\"{user}\">\n\
         <recv request=\"INVITE\"/>\n{body}</scenario>\n"
    )
}

/// A REGISTER of `user`@example.com with the contact 127.0.0.1:`port`.
fn register_scenario(user: &str, port: u16) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scenario name=\"register\">\n\
         <send retrans=\"500\"><![CDATA[\n\n\
         REGISTER sip:example.com SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         Max-Forwards: 70\n\
         From: <sip:{user}@example.com>;tag=[pid]-reg\n\
         To: <sip:{user}@example.com>\n\
         Call-ID: [call_id]\n\
         CSeq: 1 REGISTER\n\
         Contact: <sip:{user}@127.0.0.1:{port}>\n\
         Expires: 60\n\
         Content-Length: 0\n\n]]></send>\n\
         <recv response=\"200\"/>\n</scenario>\n"
    )
}

/// A call from carol@example.org to `uri` that must be answered: INVITE, 200, ACK and BYE
/// along the recorded route, 200.
fn call_scenario(uri: &str) -> String {
    let from = "From: \"Carol\" <sip:carol@example.org>;tag=[pid]-[call_number]";
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scenario name=\"call\">\n\
         <send retrans=\"500\"><![CDATA[\n\n\
         INVITE {uri} SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         Max-Forwards: 70\n{from}\nTo: <{uri}>\nCall-ID: [call_id]\nCSeq: 1 INVITE\n\
         Contact: <sip:carol@[local_ip]:[local_port]>\nContent-Length: 0\n\n]]></send>\n\
         <recv response=\"100\" optional=\"true\"/>\n\
         <recv response=\"180\" optional=\"true\"/>\n\
         <recv response=\"200\" rrs=\"true\"/>\n\
         <send><![CDATA[\n\n\
         ACK [next_url] SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         [routes]\nMax-Forwards: 70\n{from}\n[last_To:]\n[last_Call-ID:]\nCSeq: 1 ACK\n\
         Content-Length: 0\n\n]]></send>\n\
         <send retrans=\"500\"><![CDATA[\n\n\
         BYE [next_url] SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         [routes]\nMax-Forwards: 70\n{from}\n[last_To:]\n[last_Call-ID:]\nCSeq: 2 BYE\n\
         Content-Length: 0\n\n]]></send>\n\
         <recv response=\"200\"/>\n</scenario>\n"
    )
}

/// A TestApp with the SIP door on UDP and Kamailio in front of it.
struct Setup {
    app: TestApp,
    kamailio: Kamailio,
}

impl Setup {
    /// `None` (and a printed reason) when kamailio or sipp is missing.
    async fn start() -> Option<Self> {
        let program = programs()?;
        let app =
            TestApp::spawn_with(|c| c.sip.listen = vec!["udp:127.0.0.1:0".parse().unwrap()]).await;
        let door = app
            .server
            .as_ref()
            .unwrap()
            .sip_addr(Transport::Udp)
            .unwrap();
        let kamailio = Kamailio::start(&program, door, &[]);
        Some(Self { app, kamailio })
    }

    /// Changes alice's settings through `settings.phtml`, asserting success.
    async fn alice_sets(&self, query: &str) {
        let (status, body) = self.app.action(&self.app.alice, query).await;
        assert_success(status, &body);
    }

    /// Starts the phone of `user`@example.com and registers it with Kamailio.
    async fn phone(&self, user: &str, phone: Phone) -> Sipp {
        let port = free_udp_port();
        let uas = Sipp::start(user, &uas_scenario(user, phone), port, None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_bound(port) {
            assert!(Instant::now() < deadline, "{user}'s sipp did not listen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let register = Sipp::start(
            &format!("REGISTER {user}"),
            &register_scenario(user, port),
            0,
            Some(self.kamailio.addr),
        );
        register.finish(&self.kamailio).await;
        uas
    }

    /// Carol calls `uri` through Kamailio and the call is answered (and hung up).
    async fn answered_call(&self, uri: &str) -> Exchange {
        Sipp::start("caller", &call_scenario(uri), 0, Some(self.kamailio.addr))
            .finish(&self.kamailio)
            .await
    }
}

/// The one INVITE a phone received.
fn invite_of(exchange: &Exchange) -> &Message {
    let invites: Vec<&Message> = exchange
        .received
        .iter()
        .filter(|m| m.start.starts_with("INVITE "))
        .collect();
    assert_eq!(invites.len(), 1, "{}", texts(&exchange.received));
    invites[0]
}

/// Asserts that the phone of `user` got the call from carol, addressed to its registered
/// contact, with exactly this Diversion and History-Info.
fn assert_reached(exchange: &Exchange, user: &str, diversion: Option<&str>, history: Option<&str>) {
    let invite = invite_of(exchange);
    assert!(
        invite
            .start
            .starts_with(&format!("INVITE sip:{user}@127.0.0.1:")),
        "{}",
        invite.text
    );
    assert!(
        invite
            .header("From")
            .is_some_and(|f| f.starts_with("\"Carol\" <sip:carol@example.org>")),
        "{}",
        invite.text
    );
    assert_eq!(invite.header("Diversion"), diversion, "{}", invite.text);
    assert_eq!(invite.header("History-Info"), history, "{}", invite.text);
    assert_eq!(invite.header("X-Registered"), None, "{}", invite.text);
}

/// The final answers the caller got to its INVITE.
fn invite_finals(exchange: &Exchange) -> Vec<u16> {
    exchange
        .finals()
        .iter()
        .filter(|m| m.header("CSeq").is_some_and(|c| c.ends_with("INVITE")))
        .map(|m| m.code())
        .collect()
}

#[tokio::test]
async fn a_call_to_registered_alice_rings_her_phone_and_is_answered() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn unconditional_forwarding_reaches_bob_with_diversion_and_history_info() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn a_busy_alice_is_forwarded_to_bob_on_busy() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FBUS=bob").await;
    let alice = setup.phone("alice", Phone::Busy).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=user-busy;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=486>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn an_unregistered_alice_is_forwarded_to_bob_on_not_logged_in() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FNOL=bob").await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unavailable;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=503>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn the_ring_time_is_a_hard_limit_and_no_answer_goes_to_bob() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup
        .app
        .cli_ok(&["account", "set", ALICE, "--no-answer-timeout", "5"]);
    setup.alice_sets("action=set_diversions&FNOA=bob").await;
    let alice = setup.phone("alice", Phone::RingsOn).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let started = Instant::now();
    let caller = setup.answered_call(ALICE_URI).await;
    let took = started.elapsed();
    assert_eq!(invite_finals(&caller), [200]);
    // Alice's 180 did not restart the timer: 5 s after the INVITE, not 5 s after the 180.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=no-answer;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=408>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn a_rejected_caller_gets_603_and_alice_is_not_rung() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup
        .app
        .cli_ok(&["reject", "add", ALICE, "sip:carol@example.org"]);
    let alice = setup.phone("alice", Phone::Answers).await;
    let exchange = peer::run(
        setup.kamailio.addr,
        Transport::Udp,
        &Call::invite(ALICE_URI),
        603,
    )
    .await;
    assert_eq!(exchange.answer().code(), 603, "{}", exchange.answer().text);
    // Alice's phone is still waiting for its first INVITE.
    let mut alice = alice;
    assert!(
        alice.child.try_wait().unwrap().is_none(),
        "alice's phone ended"
    );
    alice.child.kill().await.unwrap();
    let trace = peer::read_trace(&alice.dir.path().join("messages.log"));
    assert!(
        !trace.received.iter().any(|m| m.start.starts_with("INVITE")),
        "{}",
        texts(&trace.received)
    );
}

#[tokio::test]
async fn a_busy_alice_without_a_busy_forward_gives_the_caller_486_not_the_302() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let alice = setup.phone("alice", Phone::Busy).await;
    let exchange = peer::run(
        setup.kamailio.addr,
        Transport::Udp,
        &Call::invite(ALICE_URI),
        486,
    )
    .await;
    assert_eq!(exchange.answer().code(), 486, "{}", exchange.answer().text);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn an_unregistered_alice_without_fnol_gives_the_caller_480() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let exchange = peer::run(
        setup.kamailio.addr,
        Transport::Udp,
        &Call::invite(ALICE_URI),
        480,
    )
    .await;
    assert_eq!(exchange.answer().code(), 480, "{}", exchange.answer().text);
}

#[tokio::test]
async fn after_a_forward_the_second_question_names_the_new_target() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // Alice forwards to bob, who is busy and has no busy forward: Kamailio must ask about
    // `sip:bob@example.com;cause=486` (486 Busy Here), not about alice again.
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    let bob = setup.phone("bob", Phone::Busy).await;
    let exchange = peer::run(
        setup.kamailio.addr,
        Transport::Udp,
        &Call::invite(ALICE_URI),
        486,
    )
    .await;
    assert_eq!(exchange.answer().code(), 486, "{}", exchange.answer().text);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn alone_kamailio_rings_a_registered_phone_without_asking_sip_settings() {
    let Some(program) = programs() else {
        return;
    };
    // No SIP door at all: the address it would be asked at is a port nobody listens on.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let kamailio = Kamailio::start(&program, nobody, &["ALONE"]);
    let setup = Setup {
        app: TestApp::spawn().await,
        kamailio,
    };
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
    // bob has no device: 404 at once, from Kamailio itself.
    let exchange = peer::run(
        setup.kamailio.addr,
        Transport::Udp,
        &Call::invite("sip:bob@example.com"),
        404,
    )
    .await;
    assert_eq!(exchange.answer().code(), 404, "{}", exchange.answer().text);
}
