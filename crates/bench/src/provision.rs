//! Provisioning through the library crates, before any server starts: a data directory with the
//! CA and the server certificate, the domain `bench.example`, N accounts `userI@bench.example`
//! each with a client certificate, and a service certificate for the service API.
//!
//! On the embedded store the result is cached under `target/bench-data/accounts-N-HASH/`
//! (HASH covers the store's migrations, so a schema change provisions anew) and each run works
//! on a copy, so writes and call records never reach the cache. A PostgreSQL database is filled
//! from such a copy by `sip-settings copy`'s library function ([`copy_into`]): the same CA and
//! certificates on every store, in seconds rather than an Argon2 hash per account. Given a
//! database URL, [`prepare`] provisions the accounts into it instead (existing ones are kept).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sip_settings::app::{open_store, open_store_url, sqlite_path};
use sip_settings::config::Config;
use sip_settings_core::account::AccountUpdate;
use sip_settings_core::cert::CertSubject;
use sip_settings_core::{AccountId, Password, ServiceError, Services, Store, SystemClock};
use sip_settings_store_sqlite::SqliteStore;
use tokio::task::JoinSet;

/// The benchmark's domain.
pub(crate) const DOMAIN: &str = "bench.example";
/// The SIP password of every benchmark account.
const PASSWORD: &str = "bench-sip-password";
/// Bumped when the cache layout changes.
const CACHE_FORMAT: &str = "bench-cache-v1";
/// A cache older than this is provisioned anew (client certificates last 365 days).
const CACHE_MAX_AGE_DAYS: i64 = 300;

/// The address of account `i`.
pub(crate) fn account_name(i: usize) -> String {
    format!("user{i}@{DOMAIN}")
}

/// A client certificate and its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Credential {
    /// The account or service name.
    pub name: String,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
}

/// Everything the load generator needs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Provisioned {
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// One per account, account `i` at index `i`.
    pub accounts: Vec<Credential>,
    /// The service certificate (`CN=bench`).
    pub service: Credential,
}

/// The service layer on a data directory, closable (so that SQLite checkpoints its WAL before
/// anyone copies the file or a server opens it).
#[derive(Debug)]
pub(crate) struct Db {
    /// The services.
    pub services: Services,
    sqlite: Option<Arc<SqliteStore>>,
}

impl Db {
    /// Opens the store (`database` or the data directory's SQLite file) and the CA.
    pub(crate) async fn open(
        data_dir: &Path,
        database: Option<&str>,
        create: bool,
    ) -> anyhow::Result<Self> {
        let mut config = Config::for_data_dir(data_dir);
        if let Some(url) = database {
            config.database_url = url.to_owned();
        }
        let pki = sip_settings_pki::files::load_ca(data_dir)?;
        let (store, sqlite): (Arc<dyn Store>, Option<Arc<SqliteStore>>) =
            if sqlite_path(&config.database_url).is_some() {
                let s = Arc::new(
                    SqliteStore::open(&config.database_url, create)
                        .await
                        .with_context(|| format!("opening {}", config.database_url))?,
                );
                (s.clone(), Some(s))
            } else {
                (open_store(&config, create).await?, None)
            };
        let services = Services::new(
            store,
            Arc::new(pki),
            Arc::new(SystemClock),
            config.services.clone(),
        );
        Ok(Self { services, sqlite })
    }

    /// How many bulk-load transactions are worth running at once: one on SQLite (a single
    /// writer), two on PostgreSQL (its backends write in parallel).
    pub(crate) fn transactions_at_once(&self) -> usize {
        if self.sqlite.is_some() { 1 } else { 2 }
    }

    /// Closes the store, waiting for its connections.
    pub(crate) async fn close(self) {
        drop(self.services);
        if let Some(s) = self.sqlite {
            s.close().await;
        }
    }
}

/// What [`copy_into`] copied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copied {
    /// Accounts.
    pub accounts: usize,
    /// Certificate records.
    pub certificates: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// Copies the embedded store of the provisioned `data_dir` into the empty database at `url`
/// (migrated first), as `sip-settings copy` does.
pub(crate) async fn copy_into(data_dir: &Path, url: &str) -> anyhow::Result<Copied> {
    let started = Instant::now();
    let from = Config::for_data_dir(data_dir).database_url;
    let source = open_store_url(&from, false, false).await?;
    let target = open_store_url(url, true, true).await?;
    eprintln!("copying the provisioned store into {}", crate::redact(url));
    let copied = sip_settings::copy::copy_all(&source, &target, chrono::Utc::now())
        .await
        .context("copying the provisioned store")?;
    Ok(Copied {
        accounts: copied.accounts,
        certificates: copied.certificates,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Makes `data_dir` a provisioned data directory with `n` accounts: a copy of the cache on the
/// embedded store, or freshly provisioned into `database`.
pub(crate) async fn prepare(
    bench_dir: &Path,
    data_dir: &Path,
    n: usize,
    database: Option<&str>,
) -> anyhow::Result<Provisioned> {
    match database {
        None => {
            let cache = ensure_cache(bench_dir, n).await?;
            copy_data_dir(&cache.join("data"), data_dir)?;
            read_credentials(&cache)
        }
        Some(url) => {
            fs::create_dir_all(data_dir)?;
            sip_settings_pki::files::ensure(data_dir, &[])?;
            let db = Db::open(data_dir, Some(url), true).await?;
            let result = provision(&db.services, n).await;
            db.close().await;
            result
        }
    }
}

fn cache_key(n: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(CACHE_FORMAT.as_bytes());
    let migrations = crate::process::workspace_root().join("crates/store-sqlite/migrations");
    let mut files: Vec<PathBuf> = fs::read_dir(&migrations)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        hash.update(
            f.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        hash.update(fs::read(&f).unwrap_or_default());
    }
    let digest = hex::encode(hash.finalize());
    format!("accounts-{n}-{}", &digest[..12])
}

fn read_credentials(cache: &Path) -> anyhow::Result<Provisioned> {
    let path = cache.join("credentials.json");
    let text = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let p: Provisioned =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(p)
}

/// The cache directory for `n` accounts, provisioned if missing or stale.
async fn ensure_cache(bench_dir: &Path, n: usize) -> anyhow::Result<PathBuf> {
    let key = cache_key(n);
    let cache = bench_dir.join(&key);
    if cache.join("credentials.json").exists() {
        match read_credentials(&cache) {
            Ok(p)
                if p.accounts.len() == n
                    && chrono::Utc::now().timestamp() - p.created_at
                        < CACHE_MAX_AGE_DAYS * 86_400 =>
            {
                eprintln!("using the provisioned data in {}", cache.display());
                return Ok(cache);
            }
            Ok(_) => eprintln!("{} is stale; provisioning anew", cache.display()),
            Err(e) => eprintln!("{e:#}; provisioning anew"),
        }
    }
    // Caches for other schemas of the same size are of no further use.
    let prefix = format!("accounts-{n}-");
    if let Ok(entries) = fs::read_dir(bench_dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                fs::remove_dir_all(e.path()).ok();
            }
        }
    }
    let building = bench_dir.join(format!("{key}.building"));
    if building.exists() {
        fs::remove_dir_all(&building)?;
    }
    let data = building.join("data");
    fs::create_dir_all(&data)?;
    sip_settings_pki::files::ensure(&data, &[])?;
    let db = Db::open(&data, None, true).await?;
    let result = provision(&db.services, n).await;
    db.close().await;
    let provisioned = result?;
    let json = serde_json::to_vec(&provisioned)?;
    sip_settings_pki::files::write_file(&building.join("credentials.json"), &json, true)?;
    fs::rename(&building, &cache)
        .with_context(|| format!("renaming {} to {}", building.display(), cache.display()))?;
    Ok(cache)
}

/// Copies a data directory, leaving out SQLite's `-shm` index (rebuilt on open).
fn copy_data_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with("-shm") || !entry.file_type()?.is_file() {
            continue;
        }
        fs::copy(entry.path(), to.join(&name))
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    Ok(())
}

/// Adds the domain, `n` accounts with a certificate each, and the service certificate.
/// Argon2 makes an account cost tens of milliseconds, so as many run at once as there are cores.
async fn provision(services: &Services, n: usize) -> anyhow::Result<Provisioned> {
    if n == 0 {
        bail!("at least one account is needed");
    }
    match services.add_domain(DOMAIN).await {
        Ok(_) | Err(ServiceError::Conflict(_)) => {}
        Err(e) => return Err(e).context("adding the domain"),
    }
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!("provisioning {n} accounts with certificates ({workers} at a time)");
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let services = services.clone();
        let next = next.clone();
        let done = done.clone();
        set.spawn(async move {
            let password = Password::parse_for("password", PASSWORD)?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = account_name(i);
                let id = AccountId::parse(&name)?;
                match services
                    .add_account(&id, &password, &AccountUpdate::default())
                    .await
                {
                    Ok(_) | Err(ServiceError::Conflict(_)) => {}
                    Err(e) => return Err(anyhow!(e).context(format!("adding {name}"))),
                }
                let issued = services
                    .issue_certificate(CertSubject::Account(id), None, None)
                    .await
                    .with_context(|| format!("issuing a certificate for {name}"))?;
                out.push((
                    i,
                    Credential {
                        name,
                        cert_pem: issued.cert_pem,
                        key_pem: issued.key_pem,
                    },
                ));
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(500) {
                    eprintln!("  {d}/{n} accounts");
                }
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    all.sort_by_key(|(i, _)| *i);
    let accounts: Vec<Credential> = all.into_iter().map(|(_, c)| c).collect();
    let service = services
        .issue_certificate(CertSubject::Service("bench".into()), None, None)
        .await
        .context("issuing the service certificate")?;
    eprintln!(
        "provisioned {n} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Provisioned {
        created_at: chrono::Utc::now().timestamp(),
        accounts,
        service: Credential {
            name: "bench".into(),
            cert_pem: service.cert_pem,
            key_pem: service.key_pem,
        },
    })
}
