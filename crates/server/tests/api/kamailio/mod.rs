//! The shipped Kamailio configuration (`contrib/kamailio/kamailio.cfg`) in front of a
//! [`TestApp`]: a real Kamailio registers sipp phones (feeding the registrations to the
//! service API), asks the SIP door about every call placed by or for a local account, follows
//! its answers, and feeds call records and prepaid closes back over HTTPS with a service
//! certificate. `sipp` plays the phones, the callers and the PSTN gateway. The tests assert
//! what each far end received, read from sipp's message trace, or what the caller got.
//!
//! Every test passes, saying so, when `kamailio` or `sipp` is not installed. Ports are chosen
//! at run time; Kamailio runs in its own process group and is stopped by its PID; every sipp
//! has its own `-timeout` and a deadline here.

mod calls;
mod outgoing;
mod prepaid;
mod records;
mod registrations;
mod rules;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sip_settings::config::Config;
use sip_settings_core::cert::IssuedCertificate;
use sip_settings_sip::Transport;
use std::os::unix::process::CommandExt;
use tempfile::TempDir;

use crate::helpers::{TestApp, assert_success, free_udp_port, json_of};

// The sipp tests' peer: its trace reader.
use crate::sipp::peer;

use peer::{Exchange, Message};

/// The configuration under test.
const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../contrib/kamailio/kamailio.cfg"
);

/// The longest any sipp process of a test may live (each also has its own `-timeout`).
const SIPP_LIMIT: Duration = Duration::from_secs(25);

/// How long a test waits for something that arrives asynchronously (a call record).
const POLL_LIMIT: Duration = Duration::from_secs(10);

const ALICE_URI: &str = "sip:alice@example.com";
const BOB_URI: &str = "sip:bob@example.com";

/// Carol, a caller from another domain.
const CAROL: &str = "\"Carol\" <sip:carol@example.org>";

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

/// Whether something has bound UDP `port` on loopback.
fn is_bound(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// Kamailio in the foreground with the shipped configuration, its own work directory and a
/// port chosen at run time; stopped (SIGTERM to its process group, then SIGKILL) when dropped.
struct Kamailio {
    child: std::process::Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Kamailio {
    /// Starts it with these `-A` defines (besides LISTEN) and waits until it listens. A port
    /// taken by another test between choosing and binding it is given up for another one.
    fn start(program: &Path, defines: &[String]) -> Self {
        for _ in 0..4 {
            if let Some(kamailio) = Self::start_once(program, defines) {
                return kamailio;
            }
        }
        panic!("kamailio found no free port in 4 tries");
    }

    /// One start; `None` when its port was taken.
    fn start_once(program: &Path, defines: &[String]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let child = std::process::Command::new(program)
            .args(["-f", CONFIG, "-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-A")
            .arg(format!("LISTEN=udp:127.0.0.1:{port}"))
            .args(defines.iter().flat_map(|d| ["-A", d.as_str()]))
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
        loop {
            if let Some(status) = kamailio.child.try_wait().unwrap() {
                let log = kamailio.log();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("kamailio exited ({status}):\n{log}");
            }
            // Listening, and its main process has started the workers (it is still running).
            if is_bound(port) && kamailio.log().contains("Listening on") {
                std::thread::sleep(Duration::from_millis(100));
                if kamailio.child.try_wait().unwrap().is_none() {
                    return Some(kamailio);
                }
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not listen:\n{}",
                kamailio.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
        Self::start_with(name, scenario, port, remote, &[])
    }

    /// [`Sipp::start`] with more sipp options (`-cid_str …`, say).
    fn start_with(
        name: &str,
        scenario: &str,
        port: u16,
        remote: Option<SocketAddr>,
        options: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scenario.xml");
        std::fs::write(&file, scenario).unwrap();
        let port = if port == 0 { free_udp_port() } else { port };
        let mut command = tokio::process::Command::new("sipp");
        command
            .current_dir(dir.path())
            .arg("-sf")
            .arg(&file)
            .args(["-m", "1", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "u1", "-timeout", "20s", "-timeout_error"])
            .args(["-trace_msg", "-trace_err", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .args(options);
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

    /// Starts a UAS on `port` and waits until it listens (and is still running: a sipp that
    /// found its port taken by another test exits at once).
    async fn listening(name: &str, scenario: &str, port: u16) -> Self {
        let mut sipp = Self::start(name, scenario, port, None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_bound(port) {
            assert!(Instant::now() < deadline, "{name}'s sipp did not listen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(status) = sipp.child.try_wait().unwrap() {
            panic!(
                "{name}'s sipp ended ({status}) on port {port}: {}",
                std::fs::read_to_string(sipp.dir.path().join("errors.log")).unwrap_or_default()
            );
        }
        sipp
    }

    /// Waits for the end of its scenario (at most [`SIPP_LIMIT`]), asserts it succeeded and
    /// returns what it sent and received.
    async fn finish(mut self, kamailio: &Kamailio) -> Exchange {
        let status = tokio::time::timeout(SIPP_LIMIT, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "sipp {} ran longer than {SIPP_LIMIT:?}; received:\n{}\n\nkamailio:\n{}",
                    self.name,
                    texts(&self.trace().received),
                    kamailio.log()
                )
            })
            .unwrap();
        let exchange = self.trace();
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

    /// Stops a phone that must not have been called, and returns what it received.
    async fn stop_unused(mut self) -> Exchange {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "{}'s sipp ended",
            self.name
        );
        self.child.kill().await.unwrap();
        self.trace()
    }

    /// What it sent and received so far.
    fn trace(&self) -> Exchange {
        peer::read_trace(&self.dir.path().join("messages.log"))
    }
}

fn texts(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| m.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// How a callee's phone (or the gateway) behaves.
#[derive(Clone, Copy)]
enum Phone {
    /// Rings, answers 200, takes the ACK and the caller's BYE.
    Answers,
    /// Rings, answers 200, takes the ACK, then gets a BYE from the proxy (a prepaid limit).
    AnswersUntilCut,
    /// Answers 486 Busy Here.
    Busy,
    /// Answers 503 Service Unavailable (a phone that cannot take calls now).
    Unavailable,
    /// Rings (180) until the caller's side cancels.
    RingsOn,
}

/// An SDP offer or answer with one audio stream.
fn sdp(user: &str) -> String {
    format!(
        "v=0\no={user} 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n\
         m=audio 40000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )
}

/// A reply of the callee's UAS to the INVITE just received.
fn uas_reply(status: &str, user: &str) -> String {
    let (body, length) = if status.starts_with("200") {
        let sdp = sdp(user);
        let length = sdp.len();
        (
            sdp,
            format!("Content-Type: application/sdp\nContent-Length: {length}"),
        )
    } else {
        (String::new(), "Content-Length: 0".to_owned())
    };
    format!(
        "<send><![CDATA[\n\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]-uas\n\
         [last_Call-ID:]\n[last_CSeq:]\n[last_Record-Route:]\n\
         Contact: <sip:{user}@[local_ip]:[local_port]>\n{length}\n\n{body}]]></send>\n"
    )
}

/// A reply to a request other than the INVITE (CANCEL, BYE).
const UAS_OK: &str = "<send><![CDATA[\n\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n\
                      [last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

/// The UAS scenario of a callee's phone.
fn uas_scenario(user: &str, phone: Phone) -> String {
    let body = match phone {
        Phone::Answers | Phone::AnswersUntilCut => format!(
            "{}{}<recv request=\"ACK\"/>\n<recv request=\"BYE\"/>\n{UAS_OK}",
            uas_reply("180 Ringing", user),
            uas_reply("200 OK", user)
        ),
        Phone::Busy => format!(
            "{}<recv request=\"ACK\"/>\n",
            uas_reply("486 Busy Here", user)
        ),
        Phone::Unavailable => format!(
            "{}<recv request=\"ACK\"/>\n",
            uas_reply("503 Service Unavailable", user)
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

/// A REGISTER of `aor` (`user@domain`) with the contact 127.0.0.1:`port`, expecting `code`.
fn register_scenario(aor: &str, port: u16, expires: u32, code: u16) -> String {
    let user = aor.split('@').next().unwrap_or_default();
    let domain = aor.split('@').nth(1).unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scenario name=\"register\">\n\
         <send retrans=\"500\"><![CDATA[\n\n\
         REGISTER sip:{domain} SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         Max-Forwards: 70\n\
         From: <sip:{aor}>;tag=[pid]-reg\n\
         To: <sip:{aor}>\n\
         Call-ID: [call_id]\n\
         CSeq: 1 REGISTER\n\
         Contact: <sip:{user}@127.0.0.1:{port}>\n\
         Expires: {expires}\n\
         User-Agent: sipp-phone/{user}\n\
         Content-Length: 0\n\n]]></send>\n\
         <recv response=\"{code}\"/>\n</scenario>\n"
    )
}

/// What a caller does and expects.
#[derive(Clone, Copy)]
enum Outcome {
    /// Answered; the caller hangs up after this long.
    Answered(Duration),
    /// Answered; the proxy ends the call with a BYE.
    CutByProxy,
    /// Refused with this final code (acknowledged).
    Refused(u16),
    /// The caller cancels after the first 180 and this long.
    Cancelled(Duration),
}

/// A call from `from` (a name-addr) to `uri` with an SDP offer, extra header lines and the
/// expected outcome.
fn call_scenario(from: &str, uri: &str, headers: &[&str], outcome: Outcome) -> String {
    let from = format!("From: {from};tag=[pid]-[call_number]");
    let headers: String = headers.iter().map(|h| format!("{h}\n")).collect();
    let offer = sdp("caller");
    let invite = format!(
        "<send retrans=\"500\"><![CDATA[\n\n\
         INVITE {uri} SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         Max-Forwards: 70\n{from}\nTo: <{uri}>\nCall-ID: [call_id]\nCSeq: 1 INVITE\n\
         Contact: <sip:caller@[local_ip]:[local_port]>\n{headers}\
         Content-Type: application/sdp\nContent-Length: {}\n\n{offer}]]></send>\n\
         <recv response=\"100\" optional=\"true\"/>\n",
        offer.len()
    );
    let ack = format!(
        "<send><![CDATA[\n\n\
         ACK [next_url] SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         [routes]\nMax-Forwards: 70\n{from}\n[last_To:]\n[last_Call-ID:]\nCSeq: 1 ACK\n\
         Content-Length: 0\n\n]]></send>\n"
    );
    let body = match outcome {
        Outcome::Answered(talk) => format!(
            "<recv response=\"180\" optional=\"true\"/>\n\
             <recv response=\"183\" optional=\"true\"/>\n\
             <recv response=\"200\" rrs=\"true\"/>\n{ack}\
             <pause milliseconds=\"{}\"/>\n\
             <send retrans=\"500\"><![CDATA[\n\n\
             BYE [next_url] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
             [routes]\nMax-Forwards: 70\n{from}\n[last_To:]\n[last_Call-ID:]\nCSeq: 2 BYE\n\
             Content-Length: 0\n\n]]></send>\n\
             <recv response=\"200\"/>\n",
            talk.as_millis()
        ),
        // The 200 to the proxy's BYE comes 100 ms later, as over a network: Kamailio 5.6's
        // dialog module sends its two BYEs one after the other and refuses the second once
        // the first is answered (README: "Prepaid"); sipp on loopback answers within
        // microseconds and would win that race.
        Outcome::CutByProxy => format!(
            "<recv response=\"180\" optional=\"true\"/>\n\
             <recv response=\"183\" optional=\"true\"/>\n\
             <recv response=\"200\" rrs=\"true\"/>\n{ack}\
             <recv request=\"BYE\"/>\n<pause milliseconds=\"100\"/>\n{UAS_OK}"
        ),
        Outcome::Refused(code) => format!(
            "<recv response=\"180\" optional=\"true\"/>\n\
             <recv response=\"183\" optional=\"true\"/>\n\
             <recv response=\"{code}\"/>\n\
             <send><![CDATA[\n\n\
             ACK {uri} SIP/2.0\n[last_Via:]\nMax-Forwards: 70\n[last_From:]\n[last_To:]\n\
             [last_Call-ID:]\nCSeq: 1 ACK\nContent-Length: 0\n\n]]></send>\n"
        ),
        // The CANCEL has the INVITE's branch (the Via the 180 echoes) and CSeq number.
        Outcome::Cancelled(after) => format!(
            "<recv response=\"180\"/>\n\
             <pause milliseconds=\"{}\"/>\n\
             <send><![CDATA[\n\n\
             CANCEL {uri} SIP/2.0\n[last_Via:]\nMax-Forwards: 70\n{from}\nTo: <{uri}>\n\
             [last_Call-ID:]\nCSeq: 1 CANCEL\nContent-Length: 0\n\n]]></send>\n\
             <recv response=\"200\"/>\n\
             <recv response=\"487\"/>\n\
             <send><![CDATA[\n\n\
             ACK {uri} SIP/2.0\n[last_Via:]\nMax-Forwards: 70\n[last_From:]\n[last_To:]\n\
             [last_Call-ID:]\nCSeq: 1 ACK\nContent-Length: 0\n\n]]></send>\n",
            after.as_millis()
        ),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scenario name=\"call\">\n\
         {invite}{body}</scenario>\n"
    )
}

/// A TestApp with the SIP door on UDP, a service certificate for Kamailio, and Kamailio in
/// front of it with a gateway address chosen at run time.
struct Setup {
    app: TestApp,
    kamailio: Kamailio,
    /// The PSTN gateway's port on 127.0.0.1 (a sipp started by [`Setup::gateway`]).
    gateway_port: u16,
    /// The service certificate and the CA file Kamailio uses.
    _certs: TempDir,
}

impl Setup {
    /// `None` (and a printed reason) when kamailio or sipp is missing.
    async fn start() -> Option<Self> {
        Self::start_with(|_| {}).await
    }

    /// Like [`Setup::start`], with the server configuration changed by `f` first.
    async fn start_with(f: impl FnOnce(&mut Config)) -> Option<Self> {
        Self::start_full(f, true).await
    }

    /// Like [`Setup::start`], the feeds through `API` alone (`http_client_query`, a new
    /// connection per request) instead of the kept-open `API_CONNECTION`.
    async fn start_without_kept_connection() -> Option<Self> {
        Self::start_full(|_| {}, false).await
    }

    async fn start_full(f: impl FnOnce(&mut Config), kept_connection: bool) -> Option<Self> {
        let program = programs()?;
        let app = TestApp::spawn_with(|c| {
            c.sip.listen = vec!["udp:127.0.0.1:0".parse().unwrap()];
            f(c);
        })
        .await;
        let door = app
            .server
            .as_ref()
            .unwrap()
            .sip_addr(Transport::Udp)
            .unwrap();
        let certs = tempfile::tempdir().unwrap();
        app.cli_ok(&[
            "cert",
            "issue",
            "--service",
            "kamailio",
            "--out",
            certs.path().to_str().unwrap(),
        ]);
        let crt = certs.path().join("kamailio.crt");
        assert!(crt.is_file(), "no {}", crt.display());
        let ca = certs.path().join("ca.crt");
        std::fs::write(&ca, &app.ca_pem).unwrap();
        let api = format!(
            "https://127.0.0.1:{}",
            app.server.as_ref().unwrap().addr().port()
        );
        let gateway_port = free_udp_port();
        let mut defines = vec![
            format!("SETTINGS=\"sip:{door};transport=udp\""),
            "DOMAIN=\"example.com\"".to_owned(),
            format!("API=\"{api}\""),
            format!("API_CERT=\"{}\"", crt.display()),
            format!("API_KEY=\"{}\"", crt.display()),
            format!("API_CA=\"{}\"", ca.display()),
            format!("GATEWAY=\"sip:127.0.0.1:{gateway_port}\""),
            "WORKERS=2".to_owned(),
        ];
        if kept_connection {
            defines.push(format!("API_CONNECTION=\"settings=>{api}\""));
        }
        let kamailio = Kamailio::start(&program, &defines);
        Some(Self {
            app,
            kamailio,
            gateway_port,
            _certs: certs,
        })
    }

    /// Changes a subscriber's settings through `settings.phtml`, asserting success.
    async fn sets(&self, cert: &IssuedCertificate, query: &str) {
        let (status, body) = self.app.action(cert, query).await;
        assert_success(status, &body);
    }

    /// Changes alice's settings through `settings.phtml`, asserting success.
    async fn alice_sets(&self, query: &str) {
        self.sets(&self.app.alice, query).await;
    }

    /// Registers `aor` with the contact 127.0.0.1:`port` through Kamailio; the REGISTER must
    /// get `code`.
    async fn register(&self, aor: &str, port: u16, expires: u32, code: u16) {
        Sipp::start(
            &format!("REGISTER {aor}"),
            &register_scenario(aor, port, expires, code),
            0,
            Some(self.kamailio.addr),
        )
        .finish(&self.kamailio)
        .await;
    }

    /// Starts the phone of `user`@example.com and registers it with Kamailio.
    async fn phone(&self, user: &str, phone: Phone) -> Sipp {
        let port = free_udp_port();
        let uas = Sipp::listening(user, &uas_scenario(user, phone), port).await;
        self.register(&format!("{user}@example.com"), port, 3600, 200)
            .await;
        uas
    }

    /// Starts the PSTN gateway (it does not register: Kamailio knows its address).
    async fn gateway(&self, phone: Phone) -> Sipp {
        Sipp::listening(
            "gateway",
            &uas_scenario("gateway", phone),
            self.gateway_port,
        )
        .await
    }

    /// A call from `from` to `uri` through Kamailio, with extra headers; asserts the outcome
    /// (and that sipp succeeded).
    async fn call_from(
        &self,
        from: &str,
        uri: &str,
        headers: &[&str],
        outcome: Outcome,
    ) -> Exchange {
        Sipp::start(
            "caller",
            &call_scenario(from, uri, headers, outcome),
            0,
            Some(self.kamailio.addr),
        )
        .finish(&self.kamailio)
        .await
    }

    /// Carol calls `uri` through Kamailio and the call is answered (and hung up).
    async fn answered_call(&self, uri: &str) -> Exchange {
        self.call_from(CAROL, uri, &[], Outcome::Answered(Duration::ZERO))
            .await
    }

    /// Carol calls `uri` through Kamailio and gets `code`.
    async fn refused_call(&self, uri: &str, code: u16) -> Exchange {
        self.call_from(CAROL, uri, &[], Outcome::Refused(code))
            .await
    }

    /// GET a `/v1` path with a certificate: status and JSON body.
    async fn get_v1(&self, cert: &IssuedCertificate, path: &str) -> (u16, Value) {
        let response = self
            .app
            .client(Some(cert))
            .get(format!("{}{path}", self.app.base))
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// `method` a `/v1` path with a JSON body and a certificate: status and JSON body.
    async fn send_v1(
        &self,
        cert: &IssuedCertificate,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = self
            .app
            .client(Some(cert))
            .request(method, format!("{}{path}", self.app.base))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// A call from carol to alice whose phone answers as `phone` (busy, unavailable …) and bob's
/// answers: alice's phone is rung, then bob's gets the call with the new `Diversion` entry of
/// `reason` and the History-Info entry of `cause`.
async fn alice_fails_over_to_bob(setup: &Setup, phone: Phone, reason: &str, cause: u16) {
    let alice = setup.phone("alice", phone).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
    let bob = bob.finish(&setup.kamailio).await;
    let diversion = format!("<sip:alice@example.com>;reason={reason};counter=1");
    let history = format!(
        "<sip:alice@example.com>;index=1, <sip:bob@example.com;cause={cause}>;index=1.1;mp=1"
    );
    assert_reached(&bob, "bob", Some(&diversion), Some(&history));
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
        invite.header("From").is_some_and(|f| f.starts_with(CAROL)),
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

/// Asserts that a phone that was registered received no INVITE, and stops it.
async fn assert_not_rung(phone: Sipp) {
    let trace = phone.stop_unused().await;
    assert!(
        !trace.received.iter().any(|m| m.start.starts_with("INVITE")),
        "{}",
        texts(&trace.received)
    );
}

/// Polls `read` until `done` holds for its value, at most [`POLL_LIMIT`]; the last value.
/// Kamailio's log is shown when it never does.
async fn poll<F, Fut>(
    kamailio: &Kamailio,
    what: &str,
    mut read: F,
    done: impl Fn(&Value) -> bool,
) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = Instant::now() + POLL_LIMIT;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not there after {POLL_LIMIT:?}: {value}\nkamailio:\n{}",
            kamailio.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
