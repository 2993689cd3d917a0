//! Startup: opening the store, loading the CA, building [`Services`], and running the HTTPS
//! server on a bound listener ([`RunningServer`], port 0 in tests).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use sip_settings_core::{Clock, Services, Store, SystemClock};
use sip_settings_http::{AppState, router, serve, tls};
use sip_settings_pki::tls::ServerCert;
use sip_settings_sip::{Door, SipServer, Transport};
use sip_settings_store_postgres::PgStore;
use sip_settings_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;

/// The file path behind a `sqlite:` URL.
pub fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(Path::new(path))
}

/// The kind of store a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file at this path.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL server.
    Postgres,
}

/// Which store a URL names; an unknown scheme is an error.
pub fn backend_of(url: &str) -> anyhow::Result<Backend> {
    if let Some(path) = sqlite_path(url) {
        return Ok(Backend::Sqlite(path.to_owned()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Postgres);
    }
    let scheme = url.split(':').next().unwrap_or_default();
    bail!(
        "unsupported database URL scheme '{scheme}:' (supported: sqlite://, postgres://, postgresql://)"
    )
}

/// Opens the store at `url`. Without `create`, a missing SQLite file is an error that says to
/// run `init`. With `migrate`, the store's migrations run first.
pub async fn open_store_url(
    url: &str,
    create: bool,
    migrate: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with_clock(url, create, migrate, Arc::new(SystemClock)).await
}

/// Like [`open_store_url`], the store taking the time of what it stamps by itself (an
/// account's `updated_at`, …) from `clock`.
async fn open_store_with_clock(
    url: &str,
    create: bool,
    migrate: bool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn Store>> {
    match backend_of(url)? {
        Backend::Sqlite(path) => {
            if !create && !path.exists() {
                bail!(
                    "database {} not found: run `sip-settings init` first",
                    path.display()
                );
            }
            let store = SqliteStore::open_with(url, create, migrate)
                .await
                .with_context(|| format!("cannot open database {}", path.display()))?;
            Ok(Arc::new(store.with_clock(clock)))
        }
        Backend::Postgres => {
            let store = PgStore::open(url, migrate)
                .await
                .with_context(|| format!("cannot open database {}", redact_url(url)))?;
            Ok(Arc::new(store.with_clock(clock)))
        }
    }
}

/// A database URL without its secrets, for messages and logs: the password of the userinfo
/// (`postgres://user:***@host/db`) and the value of every query parameter whose name ends in
/// `password`, in any case (`?password=***`, `&PASSWORD=***`, `&sslpassword=***`), and a client
/// key given inline (`sslkey=-----BEGIN…`; a file name is shown). Every command that shows a
/// database URL shows it through this.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return redact_query(url);
    };
    // The userinfo ends at the last `@` before the query; failing that (an unencoded `?` in the
    // password) at the last `@` at all: better too much hidden than a password shown.
    let query_start = url.find('?').unwrap_or(url.len());
    let at = url[..query_start]
        .rfind('@')
        .or_else(|| url.rfind('@'))
        .filter(|&at| at >= scheme_end);
    match at.and_then(|at| Some((at, url[scheme_end..at].split_once(':')?))) {
        Some((at, (user, _))) => format!(
            "{}{user}:***{}",
            &url[..scheme_end],
            redact_query(&url[at..])
        ),
        None => format!("{}{}", &url[..scheme_end], redact_query(&url[scheme_end..])),
    }
}

/// `text` with the value of every query parameter whose name ends in `password` (any case)
/// replaced by `***`.
fn redact_query(text: &str) -> String {
    let Some((base, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().ends_with("password") => {
                format!("{name}=***")
            }
            // A client key given inline as PEM text (sqlx takes `sslkey=-----BEGIN…`).
            Some((name, value)) if is_key_parameter(name) && value.contains("BEGIN") => {
                format!("{name}=***")
            }
            _ => parameter.to_owned(),
        })
        .collect();
    format!("{base}?{}", parameters.join("&"))
}

/// Whether `name` is the client key's parameter of a PostgreSQL URL (`sslkey`, `ssl-key`, in
/// any case).
fn is_key_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "sslkey" || name == "ssl-key"
}

/// Opens the store named by the configuration (running migrations unless
/// `config.migrate` is off).
pub async fn open_store(config: &Config, create: bool) -> anyhow::Result<Arc<dyn Store>> {
    open_store_url(&config.database_url, create, config.migrate).await
}

/// Opens the store and the CA of an initialised data directory and builds the service layer.
/// `clock` is the only source of the time: the services', the store's (`updated_at`, …) and
/// the CA's (`issued_at`, …).
pub async fn open_services(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Services> {
    if !sip_settings_pki::files::exists(&config.data_dir) {
        bail!(
            "{} is not initialised (no CA or server certificate): run `sip-settings init` first",
            config.data_dir.display()
        );
    }
    let store =
        open_store_with_clock(&config.database_url, false, config.migrate, clock.clone()).await?;
    let pki = sip_settings_pki::files::load_ca(&config.data_dir)?.with_clock(clock.clone());
    Ok(Services::new(
        store,
        Arc::new(pki),
        clock,
        config.services.clone(),
    ))
}

/// Like [`open_services`] with the system clock.
pub async fn open_default_services(config: &Config) -> anyhow::Result<Services> {
    open_services(config, Arc::new(SystemClock)).await
}

/// The web page's session signing key: `web.key` in the data directory (32 random bytes, mode
/// 0600), created on first use. Creation is atomic (written aside, then hard-linked into place),
/// so servers starting together on one data directory end up with the same key.
pub fn load_or_create_web_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("web.key");
    let read = |path: &Path| -> anyhow::Result<[u8; 32]> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            anyhow::anyhow!(
                "{} must hold exactly 32 bytes (delete it to make a new one; web sessions end)",
                path.display()
            )
        })
    };
    if path.exists() {
        return read(&path);
    }
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut key);
    let aside = data_dir.join(format!("web.key.{}.tmp", std::process::id()));
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&aside)
            .with_context(|| format!("cannot write {}", aside.display()))?;
        file.write_all(&key)?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&aside, &path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// A server running in the background: HTTPS, and the SIP door when `sip.listen` is set.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    sip: Option<SipServer>,
    /// The ops listener's address and task, when it runs.
    ops: Option<(SocketAddr, JoinHandle<()>)>,
    /// The server certificate both doors present; replaced by [`RunningServer::reload_certificate`].
    cert: Arc<ServerCert>,
    /// Where the server certificate is read from.
    data_dir: std::path::PathBuf,
    /// Set when the server starts draining (`/readyz` answers 503 from then on).
    draining: Arc<AtomicBool>,
    /// Writes the certificate uses seen once a minute ([`sip_settings_core::cert_use`]).
    uses: JoinHandle<()>,
    /// The services, for the last write of the uses when it stops.
    services: Services,
}

/// How often a server writes the certificate uses it has seen.
pub const CERTIFICATE_USES_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes the uses `services` saw, logging (never failing on) an error: they are kept for the
/// next time.
async fn record_uses(services: &Services) {
    if let Err(e) = services.record_certificate_uses().await {
        tracing::warn!(error = %e, "could not record when certificates were last used; trying again later");
    }
}

impl RunningServer {
    /// Binds `config.listen` (port 0 picks a free port) and starts serving.
    pub async fn start(config: &Config, services: Services) -> anyhow::Result<Self> {
        let server = sip_settings_pki::files::load_server(&config.data_dir)?;
        let ca = sip_settings_pki::files::load_ca(&config.data_dir)?;
        let cert = ServerCert::new(&server).map_err(|e| anyhow::anyhow!(e))?;
        let tls =
            tls::server_config_with(cert.clone(), ca.ca_der()).map_err(|e| anyhow::anyhow!(e))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let web_key = load_or_create_web_key(&config.data_dir)?;
        let app = router(AppState::new(services.clone(), config.rate_limits).with_web_key(web_key));
        let sip = if config.sip.listen.is_empty() {
            None
        } else {
            let door = Door::new(services.clone(), config.sip.clone());
            let sip_tls = sip_settings_pki::tls::server_config_with(cert.clone(), ca.ca_der())
                .map_err(|e| anyhow::anyhow!(e))?;
            Some(
                SipServer::start(&config.sip, door, Some(Arc::new(sip_tls)))
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?,
            )
        };
        let draining = Arc::new(AtomicBool::new(false));
        let ops = match config.ops_listen {
            Some(at) => Some(
                sip_settings_http::ops::start(at, services.clone(), draining.clone())
                    .await
                    .with_context(|| format!("cannot listen on {at} (ops listener)"))?,
            ),
            None => None,
        };
        let uses = {
            let services = services.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(CERTIFICATE_USES_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    every.tick().await;
                    record_uses(&services).await;
                }
            })
        };
        let (tx, rx) = oneshot::channel::<()>();
        let limits = config.limits.clone();
        let task = tokio::spawn(async move {
            serve::serve(listener, Arc::new(tls), app, limits, async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
            sip,
            ops,
            cert,
            data_dir: config.data_dir.clone(),
            draining,
            uses,
            services,
        })
    }

    /// Reads the server certificate and key from the data directory again and presents them in
    /// every handshake from now on, on both doors; connections already open are kept. On an
    /// error the certificate in use stays. Returns the new certificate's SHA-256 fingerprint.
    pub fn reload_certificate(&self) -> anyhow::Result<String> {
        let pair = sip_settings_pki::files::load_server(&self.data_dir)?;
        self.cert.replace(&pair).map_err(|e| anyhow::anyhow!(e))?;
        let (_, fingerprint) = sip_settings_pki::peer_identity(&self.cert.current_der())
            .map_err(|e| anyhow::anyhow!("the new server certificate: {e}"))?;
        Ok(fingerprint)
    }

    /// The ops listener's bound address, when it runs.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(|(addr, _)| *addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the SIP door's first listener of `transport`, if any.
    pub fn sip_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.sip.as_ref().and_then(|s| s.addr(transport))
    }

    /// The SIP door's listeners.
    pub fn sip_listeners(&self) -> &[(Transport, SocketAddr)] {
        self.sip.as_ref().map_or(&[], |s| s.bound())
    }

    /// The SIP door's decision times so far.
    pub fn sip_latency(&self) -> Option<sip_settings_sip::LatencySummary> {
        self.sip.as_ref().map(SipServer::latency)
    }

    /// Stops: `/readyz` answers 503 from now on, the SIP door stops (and logs its decision
    /// latency), the HTTPS door stops accepting and drains — requests in flight finish within
    /// the grace period (`serve::Limits::shutdown_grace`) — and then the ops listener stops,
    /// and the certificate uses seen since the last minute are written.
    pub async fn stop(mut self) {
        self.draining.store(true, Ordering::SeqCst);
        if let Some(sip) = self.sip.take() {
            sip.stop().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let Some((_, ops)) = self.ops.take() {
            ops.abort();
        }
        self.uses.abort();
        record_uses(&self.services).await;
    }

    /// Waits until the server stops by itself (it runs until stopped).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
        self.uses.abort();
        if let Some((_, ops)) = &self.ops {
            ops.abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
mod tests {
    use super::redact_url;

    /// The services' clock is the CA's and the store's: a certificate issued while the clock
    /// stands years away from now is recorded as issued then.
    #[tokio::test]
    async fn the_services_clock_is_the_ca_and_store_clock() {
        use std::sync::Arc;

        use chrono::{Duration, TimeZone, Utc};
        use sip_settings_core::cert::CertSubject;
        use sip_settings_core::{AccountId, AccountUpdate, Clock, ManualClock, Password};

        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::for_data_dir(dir.path());
        sip_settings_pki::files::ensure(dir.path(), &[]).unwrap();
        super::open_store(&config, true).await.unwrap();
        let t = Utc.timestamp_opt(1_900_000_000, 0).single().unwrap();
        let clock = Arc::new(ManualClock::new(t));
        let services = super::open_services(&config, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap();
        services.add_domain("example.com").await.unwrap();
        let alice = AccountId::parse("alice@example.com").unwrap();
        let password = Password::parse_for("password", "A-long-enough-pw-1").unwrap();
        services
            .add_account(&alice, &password, &AccountUpdate::default())
            .await
            .unwrap();
        clock.advance(Duration::hours(3));
        let issued = services
            .issue_certificate(CertSubject::Account(alice.clone()), None, None)
            .await
            .unwrap();
        assert_eq!(issued.record.issued_at, t + Duration::hours(3));
        let stored = services.list_certificates(Some(&alice)).await.unwrap();
        assert_eq!(stored[0].issued_at, t + Duration::hours(3));
    }

    #[test]
    fn redact_url_hides_a_password_in_the_userinfo() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        // An `@` in the password: the userinfo ends at the last `@` before the query.
        let r = redact_url("postgresql://u:se@cret@h/db?sslmode=require");
        assert!(!r.contains("se@cret") && !r.contains("cret"), "{r}");
        assert_eq!(r, "postgresql://u:***@h/db?sslmode=require");
        // No password: nothing to hide.
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite:///srv/x/sip-settings.db"),
            "sqlite:///srv/x/sip-settings.db"
        );
    }

    #[test]
    fn redact_url_hides_a_password_in_the_query() {
        assert_eq!(
            redact_url("postgres://u@h/db?password=secret&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&PASSWORD=secret"),
            "postgres://u@h/db?sslmode=require&PASSWORD=***"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?Password=secret"),
            "postgres://u@h/db?Password=***"
        );
        // libpq's `sslpassword` (the client key's passphrase) is a secret too.
        assert_eq!(
            redact_url("postgres://u@h/db?sslpassword=secret"),
            "postgres://u@h/db?sslpassword=***"
        );
        // Both forms at once.
        let r = redact_url("postgres://u:one@h/db?password=two");
        assert_eq!(r, "postgres://u:***@h/db?password=***");
        // An `@` in the query and no userinfo: the query's password is still hidden.
        assert_eq!(
            redact_url("postgres://h/db?password=two&application_name=a@b"),
            "postgres://h/db?password=***&application_name=a@b"
        );
    }

    #[test]
    fn redact_url_hides_an_inline_client_key_but_not_a_key_file() {
        assert_eq!(
            redact_url(
                "postgres://u@h/db?sslmode=verify-full&sslkey=-----BEGIN%20PRIVATE%20KEY-----%0AMC4%3D"
            ),
            "postgres://u@h/db?sslmode=verify-full&sslkey=***"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?SSL-KEY=-----BEGIN+EC+PRIVATE+KEY-----"),
            "postgres://u@h/db?SSL-KEY=***"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?sslkey=/etc/sip-settings/db.key&sslrootcert=/ca.crt"),
            "postgres://u@h/db?sslkey=/etc/sip-settings/db.key&sslrootcert=/ca.crt"
        );
    }

    #[test]
    fn redact_url_hides_a_password_with_an_unencoded_question_mark() {
        let r = redact_url("postgres://u:pa?ss@h/db");
        assert!(!r.contains("pa") && !r.contains("ss"), "{r}");
    }
}
