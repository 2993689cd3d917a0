#![allow(dead_code)] // shared helpers; not every test module uses every one
//! `TestApp::spawn()`: a fresh data directory, CA and database; domain `example.com` with
//! accounts alice and bob, each with a certificate; the server on a free port; and clients
//! that present any certificate.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use chrono::{Duration, Utc};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use sip_settings::app::{RunningServer, open_services};
use sip_settings::config::Config;
use sip_settings_core::account::AccountUpdate;
use sip_settings_core::cert::{CertSubject, IssueRequest, IssuedCertificate};
use sip_settings_core::{AccountId, Clock, ManualClock, Password, Services};
use sip_settings_pki::Pki;
use tempfile::TempDir;

pub(crate) mod api;
pub(crate) mod serve;
pub(crate) mod sip;

pub(crate) use api::{Api, assert_problem, assert_status};

pub(crate) const ALICE: &str = "alice@example.com";
pub(crate) const BOB: &str = "bob@example.com";
pub(crate) const ALICE_PASSWORD: &str = "alice-sip-password";
pub(crate) const BOB_PASSWORD: &str = "bob-sip-password";

/// A running server with its data directory and provisioned accounts.
pub(crate) struct TestApp {
    pub(crate) dir: TempDir,
    pub(crate) config: Config,
    pub(crate) services: Services,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) server: Option<RunningServer>,
    pub(crate) base: String,
    pub(crate) ca_pem: String,
    pub(crate) alice: IssuedCertificate,
    pub(crate) bob: IssuedCertificate,
}

impl TestApp {
    /// A fresh installation, served on 127.0.0.1 with a free port.
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA of this installation (to make certificates the service would not).
    pub(crate) fn pki(&self) -> Pki {
        sip_settings_pki::files::load_ca(self.data_dir()).unwrap()
    }

    /// A certificate signed by this CA but never recorded by the service, valid for the given
    /// days around now (negative end = expired).
    pub(crate) fn unrecorded_cert(
        &self,
        who: &str,
        from_days: i64,
        to_days: i64,
    ) -> IssuedCertificate {
        let now = Utc::now();
        self.pki()
            .issue_unrecorded(&IssueRequest {
                subject: CertSubject::Account(AccountId::parse(who).unwrap()),
                not_before: now + Duration::days(from_days),
                not_after: now + Duration::days(to_days),
            })
            .unwrap()
    }

    /// A client presenting `cert` (or none), trusting this installation's CA.
    pub(crate) fn client(&self, cert: Option<&IssuedCertificate>) -> reqwest::Client {
        client_with(
            &self.ca_pem,
            cert.map(|c| (c.cert_pem.as_str(), c.key_pem.as_str())),
        )
    }

    /// GET `settings.phtml` with a query string; returns status and JSON body.
    pub(crate) async fn action(&self, cert: &IssuedCertificate, query: &str) -> (u16, Value) {
        let response = self
            .client(Some(cert))
            .get(format!("{}/settings.phtml?{query}", self.base))
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// Writes `content` to a file in the data directory and returns its path.
    pub(crate) fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.data_dir().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Writes a certificate's `.crt` bundle to a file and returns its path.
    pub(crate) fn write_crt(&self, name: &str, cert: &IssuedCertificate) -> PathBuf {
        let path = self.data_dir().join(name);
        std::fs::write(&path, cert.crt_bundle()).unwrap();
        path
    }

    /// Runs the real `sip-settings` binary against this data directory.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        sip_settings_cmd(self.data_dir(), args)
    }
}

/// Runs the real binary with `--data-dir`.
pub(crate) fn sip_settings_cmd(data_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sip-settings"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SIP_SETTINGS_DATABASE")
        .env_remove("SIP_SETTINGS_CONFIG")
        .env_remove("SIP_SETTINGS_LISTEN")
        .output()
        .expect("run sip-settings")
}

/// Status and JSON body of a response; asserts the content type is JSON.
pub(crate) async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = header_of(&response, "content-type").unwrap_or_default();
    let text = response.text().await.expect("body");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type} for {text}"
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// A response header as text, if there and readable.
pub(crate) fn header_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A root store holding the certificates of `ca_pem`.
pub(crate) fn roots_of(ca_pem: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// A reqwest client trusting `ca_pem` and presenting an optional certificate and key.
pub(crate) fn client_with(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = roots_of(ca_pem);
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

/// Every action name of docs/actions.md, the read actions (with their seed names) first: the
/// first [`READ_NAME_COUNT`].
pub(crate) const ACTION_NAMES: [&str; 33] = [
    "account",
    "get_identity",
    "get_account",
    "aliases",
    "get_aliases",
    "enum",
    "get_enum",
    "diversions",
    "get_call_forwarding",
    "get_diversions",
    "accept",
    "get_accept_rules",
    "get_accept",
    "reject",
    "get_reject_rules",
    "get_reject",
    "voicemail",
    "get_voicemail",
    "dnd_on",
    "set_dnd_on",
    "dnd_off",
    "set_dnd_off",
    "privacy_on",
    "set_privacy_on",
    "privacy_off",
    "set_privacy_off",
    "add_alias",
    "set_diversions",
    "set_call_forwarding",
    "crt",
    "get_crt",
    "p12",
    "get_p12",
];

/// How many of [`ACTION_NAMES`] are read actions (the first ones).
pub(crate) const READ_NAME_COUNT: usize = 18;

/// The read actions of the compatibility endpoint, seed names, in the order snapshots list them.
pub(crate) const READ_ACTIONS: [&str; 7] = [
    "account",
    "aliases",
    "enum",
    "diversions",
    "accept",
    "reject",
    "voicemail",
];

impl TestApp {
    /// POST `settings.phtml` with a form; returns status and JSON body.
    pub(crate) async fn post_action(
        &self,
        cert: &IssuedCertificate,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = self
            .client(Some(cert))
            .post(format!("{}/settings.phtml", self.base))
            .form(form)
            .send()
            .await
            .expect("request");
        json_of(response).await
    }

    /// GET `settings.phtml` with a query string; the raw response (for file downloads).
    pub(crate) async fn get_raw(&self, cert: &IssuedCertificate, query: &str) -> reqwest::Response {
        self.client(Some(cert))
            .get(format!("{}/settings.phtml?{query}", self.base))
            .send()
            .await
            .expect("request")
    }

    /// POST `settings.phtml` with a form; the raw response (for file downloads).
    pub(crate) async fn post_raw(
        &self,
        cert: &IssuedCertificate,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client(Some(cert))
            .post(format!("{}/settings.phtml", self.base))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// Every read action's JSON for the certificate's account, in [`READ_ACTIONS`] order.
    pub(crate) async fn snapshot_of(&self, cert: &IssuedCertificate) -> Vec<(&'static str, Value)> {
        let client = self.client(Some(cert));
        let mut out = Vec::new();
        for name in READ_ACTIONS {
            let response = client
                .get(format!("{}/settings.phtml?action={name}", self.base))
                .send()
                .await
                .expect("request");
            let (status, body) = json_of(response).await;
            assert_eq!(status, 200, "snapshot read {name}: {body}");
            out.push((name, body));
        }
        out
    }

    /// Snapshots of alice and bob together.
    pub(crate) async fn snapshot_both(&self) -> Vec<(&'static str, Value)> {
        let mut s = self.snapshot_of(&self.alice).await;
        s.extend(self.snapshot_of(&self.bob).await);
        s
    }

    /// One read action's JSON (asserting a 200).
    pub(crate) async fn read(&self, cert: &IssuedCertificate, name: &str) -> Value {
        let (status, body) = self.action(cert, &format!("action={name}")).await;
        assert_eq!(status, 200, "read {name}: {body}");
        body
    }

    /// Runs the real binary and asserts success; returns stdout.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the real binary and asserts that it fails with one line on stderr and no panic;
    /// returns stderr.
    pub(crate) fn cli_refused(&self, args: &[&str]) -> String {
        let result = self.cli(args);
        let err = String::from_utf8_lossy(&result.stderr).into_owned();
        assert!(
            !result.status.success(),
            "{args:?} succeeded: {}",
            String::from_utf8_lossy(&result.stdout)
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        err
    }

    /// Creates an account through the real binary (extra `account add` flags allowed) and
    /// issues it a certificate.
    pub(crate) async fn add_account_with_cert(
        &self,
        who: &str,
        extra: &[&str],
    ) -> IssuedCertificate {
        let mut args = vec!["account", "add", who, "--password", "some-sip-password-1"];
        args.extend_from_slice(extra);
        self.cli_ok(&args);
        self.services
            .issue_certificate(
                CertSubject::Account(AccountId::parse(who).unwrap()),
                None,
                None,
            )
            .await
            .unwrap()
    }

    /// Number of lines `cert list USER@DOMAIN` prints.
    pub(crate) fn cert_list_lines(&self, who: &str) -> usize {
        self.cli_ok(&["cert", "list", who]).lines().count()
    }
}

/// Asserts a successful status object with exactly this text.
pub(crate) fn assert_done(status: u16, body: &Value, text: &str) {
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        &serde_json::json!({"success": true, "error_message": text}),
        "status object"
    );
}

/// Asserts a successful status object (any text).
pub(crate) fn assert_success(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert!(body["error_message"].is_string(), "{body}");
}

/// The keys of a JSON object, in order.
pub(crate) fn keys_of(value: &Value) -> Vec<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// Percent-encodes a value for a query string.
pub(crate) fn enc(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TestApp {
    /// Like [`TestApp::spawn`], with the configuration changed by `f` before the services open
    /// (e.g. `|c| c.services.prepaid_max_sessions = 2`).
    pub(crate) async fn spawn_with(f: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_data_dir(dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Rate limits are tested on their own (ratelimit.rs); elsewhere they would only count
        // requests against a clock that stands still.
        config.rate_limits = None;
        f(&mut config);
        sip_settings_pki::files::ensure(dir.path(), &[]).unwrap();
        sip_settings::app::open_store(&config, true).await.unwrap();
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let services = open_services(&config, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap();
        services.add_domain("example.com").await.unwrap();
        let mut certs = Vec::new();
        for (who, pw) in [(ALICE, ALICE_PASSWORD), (BOB, BOB_PASSWORD)] {
            let id = AccountId::parse(who).unwrap();
            services
                .add_account(
                    &id,
                    &Password::parse_for("password", pw).unwrap(),
                    &AccountUpdate::default(),
                )
                .await
                .unwrap();
            certs.push(
                services
                    .issue_certificate(CertSubject::Account(id), None, None)
                    .await
                    .unwrap(),
            );
        }
        let bob = certs.pop().unwrap();
        let alice = certs.pop().unwrap();
        let server = RunningServer::start(&config, services.clone())
            .await
            .unwrap();
        let base = format!("https://localhost:{}", server.addr().port());
        let ca_pem = services.ca_pem().to_owned();
        Self {
            dir,
            config,
            services,
            clock,
            server: Some(server),
            base,
            ca_pem,
            alice,
            bob,
        }
    }
}

/// A client without a certificate, trusting the installation's CA, that does not follow
/// redirects (so the statuses are the server's own).
pub(crate) fn no_redirects(app: &TestApp) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = roots_of(&app.ca_pem);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A service certificate (a proxy's) of this installation.
pub(crate) async fn service_cert(app: &TestApp) -> IssuedCertificate {
    app.services
        .issue_certificate(CertSubject::Service("proxy".into()), None, None)
        .await
        .unwrap()
}

/// `POST /v1/service/prepaid/sessions` on `base`: `account` calls +31201234567 as `call_id`.
pub(crate) async fn open_prepaid(
    client: &reqwest::Client,
    base: &str,
    account: &str,
    call_id: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/service/prepaid/sessions"))
        .json(&serde_json::json!({
            "account": account,
            "destination": "+31201234567",
            "call_id": call_id,
        }))
        .send()
        .await
        .unwrap()
}

/// `POST /v1/service/prepaid/sessions/{call_id}/close` on `base` with `body`.
pub(crate) async fn close_prepaid(
    client: &reqwest::Client,
    base: &str,
    call_id: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(format!(
            "{base}/v1/service/prepaid/sessions/{call_id}/close"
        ))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Rate limits with these certificate-client budgets (reads and writes: per second, burst) and
/// address budgets too large to matter.
pub(crate) fn certificate_limits(
    reads: (f64, f64),
    writes: (f64, f64),
) -> sip_settings_http::ratelimit::RateLimits {
    use sip_settings_http::ratelimit::{Budget, RateLimits};
    let budget = |(per_second, burst): (f64, f64)| Budget { per_second, burst };
    RateLimits {
        certificate_reads: budget(reads),
        certificate_writes: budget(writes),
        address_reads: budget((1000.0, 1000.0)),
        address_writes: budget((1000.0, 1000.0)),
    }
}

/// A port on 127.0.0.1 free for both UDP and TCP when asked (bound and released).
pub(crate) fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A free UDP port on loopback (bound and released).
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether an external tool (`curl`, `python3`) runs here: tests that need one skip without it,
/// saying so; the CI script installs them.
pub(crate) fn have_tool(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A parameter of a `WWW-Authenticate: Digest` challenge, quoted or bare.
pub(crate) fn digest_param(challenge: &str, name: &str) -> Option<String> {
    let quoted = format!("{name}=\"");
    if let Some(i) = challenge.find(&quoted) {
        let rest = &challenge[i + quoted.len()..];
        return rest.find('"').map(|j| rest[..j].to_owned());
    }
    let bare = format!("{name}=");
    let i = challenge.find(&bare)?;
    let rest = &challenge[i + bare.len()..];
    Some(rest.split([',', ' ']).next().unwrap_or_default().to_owned())
}

/// `(nonce, opaque)` of the `algorithm` challenge of a `401`.
pub(crate) fn digest_nonce_opaque(
    response: &reqwest::Response,
    algorithm: sip_settings_core::digest::Algorithm,
) -> (String, String) {
    let header = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|h| digest_param(h, "algorithm").as_deref() == Some(algorithm.as_str()))
        .expect("a challenge for the algorithm");
    (
        digest_param(&header, "nonce").unwrap(),
        digest_param(&header, "opaque").unwrap(),
    )
}

/// An `Authorization: Digest` header for realm `example.com`, computed by hand
/// (RFC 7616 §3.4.1, `qop=auth`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn digest_authorization(
    algorithm: sip_settings_core::digest::Algorithm,
    user: &str,
    password: &str,
    nonce: &str,
    opaque: &str,
    nc: u32,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = algorithm.hash(&format!("{user}:example.com:{password}"));
    let nc = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let r = sip_settings_core::digest::response(algorithm, &ha1, nonce, &nc, cnonce, method, uri);
    format!(
        "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{r}\", \
         opaque=\"{opaque}\"",
        algorithm.as_str()
    )
}
