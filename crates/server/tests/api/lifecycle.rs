//! The real `serve` process through its life: SIGTERM drains (requests in flight finish, new
//! connections are refused, the process exits 0, and what was acknowledged is stored), a
//! connection that outlives the grace period is cut, SIGHUP rotates the server certificate
//! without dropping open connections (and a broken one is refused and counted), and every
//! request — HTTPS or SIP — leaves one access line, in JSON with `--log-format json`, that
//! holds no secret.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use serde_json::Value;

use crate::helpers::serve::{Install, Server, TempSqlite, provision};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// The server's address from its base URL (`https://localhost:PORT`).
fn addr_of(server: &Server) -> SocketAddr {
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TLS connection as alice, handshake done.
fn connect(install: &Install, to: SocketAddr) -> Tls {
    let config = sip_settings_pki::tls::client_config(&install.ca, &install.alice.0).unwrap();
    let mut tcp = TcpStream::connect(to).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn =
        ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    StreamOwned::new(conn, tcp)
}

/// SHA-256 of the certificate the server presented on `tls`.
fn presented(tls: &Tls) -> String {
    let der = tls.conn.peer_certificates().unwrap()[0].as_ref().to_vec();
    sip_settings_pki::peer_identity(&der).unwrap().1
}

/// Reads one HTTP/1.1 response with a `content-length`: status, lower-cased head, body.
fn read_response(tls: &mut Tls) -> (u16, String, String) {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

/// `GET path` on an open connection.
fn get(tls: &mut Tls, path: &str) -> (u16, String, String) {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    read_response(tls)
}

/// Whether the server has closed `tls` (a read ends or fails within `wait`).
fn closed_within(tls: &mut Tls, wait: Duration) -> bool {
    tls.sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn start(sqlite: &TempSqlite, install: &Install, extra: &str) -> Server {
    Server::start_with(install.dir.path(), &sqlite.url, extra)
}

/// The body of a DND write, split where the test pauses.
const DND_ON: &str = r#"{"on": true, "duration": 30}"#;

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0() {
    let sqlite = TempSqlite::new("s.db");
    let install = provision(&sqlite.url);
    let mut server = start(&sqlite, &install, "");
    let addr = addr_of(&server);
    let mut tls = connect(&install, addr);
    let (status, _, body) = get(&mut tls, "/v1/me/dnd");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""on":false"#), "{body}");

    // A write whose head and half its body are in; the rest comes after SIGTERM.
    let (first, rest) = DND_ON.split_at(10);
    write!(
        tls,
        "PUT /v1/me/dnd HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{first}",
        DND_ON.len()
    )
    .unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    assert!(
        server
            .line_starting("shutting down", Duration::from_secs(10))
            .is_some(),
        "serve did not say it is shutting down"
    );

    // New connections are refused while the old one is served.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            // Refused, or reset when the SYN raced the listener's close
            // (the kernel had queued it, then dropped the queue with a RST).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break;
            }
            Err(e) => panic!("connecting while draining: {e}"),
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(_) => panic!("the listener still accepts connections 5 s after SIGTERM"),
        }
    }
    assert!(
        server.exit_within(Duration::from_millis(300)).is_none(),
        "serve exited with a request in flight"
    );

    tls.write_all(rest.as_bytes()).unwrap();
    tls.flush().unwrap();
    let (status, head, body) = read_response(&mut tls);
    assert_eq!(status, 200, "the request in flight: {body}");
    assert!(body.contains(r#""on":true"#), "{body}");
    assert!(
        head.contains("connection: close") || closed_within(&mut tls, Duration::from_secs(5)),
        "the drained connection stays open"
    );
    let exit = server
        .exit_within(Duration::from_secs(10))
        .expect("serve did not exit within 10 s of its last request");
    assert!(exit.success(), "serve exited with {exit}");

    // What was acknowledged is stored.
    let server = start(&sqlite, &install, "");
    let mut tls = connect(&install, addr_of(&server));
    let (status, _, body) = get(&mut tls, "/v1/me/dnd");
    assert_eq!(status, 200);
    assert!(body.contains(r#""on":true"#), "after the restart: {body}");
}

#[test]
fn a_connection_that_outlives_the_grace_period_is_cut_and_serve_still_exits_0() {
    let sqlite = TempSqlite::new("s.db");
    let install = provision(&sqlite.url);
    let mut server = start(&sqlite, &install, "shutdown_grace_secs = 1\n");
    let mut tls = connect(&install, addr_of(&server));
    // A request that never completes: its body never comes.
    write!(
        tls,
        "PUT /v1/me/dnd HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    server.signal("TERM");
    let exit = server
        .exit_within(Duration::from_secs(10))
        .expect("serve did not exit within 10 s with a 1 s grace period");
    let took = signalled.elapsed();
    assert!(exit.success(), "serve exited with {exit}");
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}: the grace period was not given"
    );
    assert!(
        closed_within(&mut tls, Duration::from_secs(2)),
        "the connection is still open"
    );
}

/// A fresh server certificate for the data directory, written where `serve` reads it.
fn rotate_server_certificate(install: &Install) -> String {
    let dir = install.dir.path();
    let ca = sip_settings_pki::files::load_ca(dir).unwrap();
    let pair = ca
        .issue_server(&["localhost".to_owned(), "127.0.0.1".to_owned()], 30)
        .unwrap();
    let paths = sip_settings_pki::files::PkiPaths::new(dir);
    sip_settings_pki::files::write_file(&paths.server_key, pair.key_pem.as_bytes(), true).unwrap();
    sip_settings_pki::files::write_file(&paths.server_cert, pair.cert_pem.as_bytes(), false)
        .unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pair.cert_pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.as_ref().to_vec())
        .unwrap();
    sip_settings_pki::peer_identity(&der).unwrap().1
}

/// `/metrics` of the ops listener on `port`.
fn metrics(port: u16) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn sighup_rotates_the_server_certificate_and_keeps_open_connections() {
    let sqlite = TempSqlite::new("s.db");
    let install = provision(&sqlite.url);
    let ops = crate::helpers::free_port();
    let mut server = start(
        &sqlite,
        &install,
        &format!("ops_listen = \"127.0.0.1:{ops}\"\n"),
    );
    let addr = addr_of(&server);
    let mut old = connect(&install, addr);
    let first = presented(&old);
    assert_eq!(get(&mut old, "/v1/me/dnd").0, 200);

    let rotated = rotate_server_certificate(&install);
    assert_ne!(rotated, first);
    server.signal("HUP");
    let said = server
        .line_starting("server certificate reloaded", Duration::from_secs(10))
        .expect("serve did not say it reloaded");
    assert!(said.contains(&rotated), "{said}");

    // New handshakes get the new certificate; the open connection still works.
    let mut new = connect(&install, addr);
    assert_eq!(presented(&new), rotated);
    assert_eq!(get(&mut new, "/v1/me/dnd").0, 200);
    assert_eq!(
        get(&mut old, "/v1/me/dnd").0,
        200,
        "the open connection was dropped"
    );

    // A broken key is refused: the certificate in use stays, and the failure is counted.
    let paths = sip_settings_pki::files::PkiPaths::new(install.dir.path());
    std::fs::write(&paths.server_key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(ops).contains("sip_settings_tls_certificate_reloads_total{outcome=\"error\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "the failed reload was not counted:\n{}",
            metrics(ops)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metrics(ops).contains("sip_settings_tls_certificate_reloads_total{outcome=\"ok\"} 1"));
    let mut after = connect(&install, addr);
    assert_eq!(presented(&after), rotated);
    assert_eq!(get(&mut after, "/v1/me/dnd").0, 200);
    assert!(
        server.exit_within(Duration::from_millis(100)).is_none(),
        "serve died"
    );
}

#[test]
fn every_request_leaves_one_json_access_line_without_secrets() {
    let sqlite = TempSqlite::new("s.db");
    let install = provision(&sqlite.url);
    let config = install.dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "sip_listen = [\"udp:127.0.0.1:0\"]\nsip_registrations = \"hint\"\n",
    )
    .unwrap();
    let log = install.dir.path().join("serve.log");
    let mut server = Server::spawn_logged(
        install.dir.path(),
        &config,
        &sqlite.url,
        1,
        &["--log-format", "json"],
        Some(&log),
    );
    let addr = addr_of(&server);
    let mut tls = connect(&install, addr);
    assert_eq!(get(&mut tls, "/v1/me/dnd").0, 200);
    // A query that holds something secret-looking: the access line names the action only.
    let (status, _, _) = get(
        &mut tls,
        "/settings.phtml?action=account&password=hunter2-secret",
    );
    assert_eq!(status, 200);
    assert_eq!(get(&mut tls, "/v1/me/no-such-thing").0, 404);
    // A web log-in with the SIP password in its body.
    let form = format!(
        "address={}&password={}",
        crate::helpers::ALICE,
        crate::helpers::ALICE_PASSWORD
    );
    write!(
        tls,
        "POST /web/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    tls.flush().unwrap();
    let _ = read_response(&mut tls);
    // And one SIP question through the SIP door.
    let udp = server.sip[0].clone();
    crate::helpers::serve::cli(
        install.dir.path(),
        &sqlite.url,
        &[
            "sip",
            "ask",
            "sip:alice@example.com",
            "--server",
            &udp,
            "--header",
            "X-Registered:yes",
        ],
    );
    server.signal("TERM");
    assert!(
        server
            .exit_within(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2"),
        "a secret of the query is in the log:\n{text}"
    );
    assert!(
        !text.contains(crate::helpers::ALICE_PASSWORD),
        "the password is in the log:\n{text}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let sip: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "access" && l["door"] == "sip")
        .collect();
    assert_eq!(sip.len(), 1, "one access line per SIP request:\n{text}");
    assert_eq!(sip[0]["method"], "INVITE", "{}", sip[0]);
    assert_eq!(sip[0]["uri"], "sip:alice@example.com", "{}", sip[0]);
    assert!(sip[0]["status"].as_u64().is_some(), "{}", sip[0]);
    assert!(
        sip[0]["addr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{}",
        sip[0]
    );
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "access" && l["door"] != "sip")
        .collect();
    assert_eq!(access.len(), 4, "one access line per request:\n{text}");
    let alice_serial = alice_serial(&install);
    for (line, (door, route, method, status)) in access.iter().zip([
        ("v1", "/v1/me/dnd", "GET", 200),
        ("settings", "account", "GET", 200),
        ("v1", "/v1/{*rest}", "GET", 404),
        ("web", "/web/login", "POST", 0),
    ]) {
        assert_eq!(line["door"], door, "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["method"], method, "{line}");
        if status != 0 {
            assert_eq!(line["status"], status, "{line}");
        }
        assert_eq!(line["serial"], alice_serial.as_str(), "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(
            line["addr"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0, "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
    }
}

/// The serial of alice's certificate, as the server reads it.
fn alice_serial(install: &Install) -> String {
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(install.alice.0.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.as_ref().to_vec())
        .unwrap();
    sip_settings_pki::peer_identity(&der).unwrap().0.to_string()
}
