//! The one typed configuration value. Sources, lowest precedence first: built-in defaults, the
//! TOML file (`--config`), `SIP_SETTINGS_*` environment variables, command-line flags. Flags and
//! environment are merged by clap (a flag wins over its variable); this module adds the file and
//! the defaults underneath.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use sip_settings_core::ServicesConfig;
use sip_settings_http::ratelimit::{Budget, RateLimits};
use sip_settings_http::serve::Limits;
use sip_settings_sip::{Cidr, Listen, SipConfig, VoicemailTemplate};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./sip-settings-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// The keys a TOML configuration file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Database URL.
    pub database: Option<String>,
    /// Listen address of `serve`.
    pub listen: Option<SocketAddr>,
    /// Listen address of the ops listener (`/metrics`, `/healthz`, `/readyz`; off if unset).
    pub ops_listen: Option<SocketAddr>,
    /// Lifetime of issued client certificates, in days.
    pub cert_days: Option<u32>,
    /// Aliases per account.
    pub alias_limit: Option<u32>,
    /// TLS handshake timeout, in seconds.
    pub handshake_timeout_secs: Option<u64>,
    /// Most open connections.
    pub max_connections: Option<usize>,
    /// Seconds from the handshake to a complete first request.
    pub first_request_timeout_secs: Option<u64>,
    /// Seconds a connection may sit without a request in flight.
    pub idle_timeout_secs: Option<u64>,
    /// Most open connections from one source address.
    pub max_connections_per_address: Option<usize>,
    /// On SIGTERM/SIGINT, seconds requests in flight may take to finish.
    pub shutdown_grace_secs: Option<u64>,
    /// Currency of prepaid balances.
    pub currency: Option<String>,
    /// Longest prepaid session, seconds.
    pub prepaid_max_session_seconds: Option<u32>,
    /// Most open prepaid sessions per account.
    pub prepaid_max_sessions: Option<u32>,
    /// Request rate limits of subscribers (`[rate_limits]`).
    pub rate_limits: Option<RateLimitsFile>,
    /// SIP listeners, `["udp:127.0.0.1:5070", "tls:0.0.0.0:5071"]`.
    pub sip_listen: Option<Vec<String>>,
    /// Address blocks answered on SIP UDP/TCP, `["127.0.0.0/8", "10.0.0.0/24"]`.
    pub sip_trusted: Option<Vec<String>>,
    /// Voice-mailbox URI template, `"sip:vm-{user}@vm.example.net"`.
    pub voicemail_uri: Option<String>,
    /// Diversions a SIP request may already carry before 482.
    pub sip_max_diversions: Option<u32>,
    /// Where the SIP door learns registrations: `"feed"` (default) or `"hint"`.
    pub sip_registrations: Option<String>,
}

/// `[rate_limits]` in the TOML file: `enabled`, and per budget `*_per_second` and `*_burst`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// Set false to turn rate limiting off.
    pub enabled: Option<bool>,
    /// Reads per second per certificate.
    pub certificate_reads_per_second: Option<f64>,
    /// Read burst per certificate.
    pub certificate_reads_burst: Option<f64>,
    /// Writes per second per certificate.
    pub certificate_writes_per_second: Option<f64>,
    /// Write burst per certificate.
    pub certificate_writes_burst: Option<f64>,
    /// Reads per second per source address.
    pub address_reads_per_second: Option<f64>,
    /// Read burst per source address.
    pub address_reads_burst: Option<f64>,
    /// Writes per second per source address.
    pub address_writes_per_second: Option<f64>,
    /// Write burst per source address.
    pub address_writes_burst: Option<f64>,
}

impl RateLimitsFile {
    fn resolve(&self) -> anyhow::Result<Option<RateLimits>> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let mut l = RateLimits::default();
        let set = |b: &mut Budget,
                   rate: Option<f64>,
                   burst: Option<f64>,
                   name: &str|
         -> anyhow::Result<()> {
            if let Some(r) = rate {
                if !(r > 0.0 && r.is_finite()) {
                    bail!("configuration: rate_limits.{name}_per_second must be a positive number");
                }
                b.per_second = r;
            }
            if let Some(r) = burst {
                if !(r >= 1.0 && r.is_finite()) {
                    bail!("configuration: rate_limits.{name}_burst must be at least 1");
                }
                b.burst = r;
            }
            Ok(())
        };
        set(
            &mut l.certificate_reads,
            self.certificate_reads_per_second,
            self.certificate_reads_burst,
            "certificate_reads",
        )?;
        set(
            &mut l.certificate_writes,
            self.certificate_writes_per_second,
            self.certificate_writes_burst,
            "certificate_writes",
        )?;
        set(
            &mut l.address_reads,
            self.address_reads_per_second,
            self.address_reads_burst,
            "address_reads",
        )?;
        set(
            &mut l.address_writes,
            self.address_writes_per_second,
            self.address_writes_burst,
            "address_writes",
        )?;
        Ok(Some(l))
    }
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("configuration file {}: {}", path.display(), e.message()))
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory (CA, server certificate, SQLite file, demo downloads).
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…`).
    pub database_url: String,
    /// Listen address of `serve`.
    pub listen: SocketAddr,
    /// Listen address of the ops listener: plain HTTP, no client certificate, `/metrics`,
    /// `/healthz`, `/readyz` (off when `None`).
    pub ops_listen: Option<SocketAddr>,
    /// Service-layer tunables.
    pub services: ServicesConfig,
    /// Connection limits.
    pub limits: Limits,
    /// Subscriber request rate limits (`None`: off).
    pub rate_limits: Option<RateLimits>,
    /// Run the store's migrations when opening it (`serve --no-migrate` turns this off).
    pub migrate: bool,
    /// The SIP door (off while `sip.listen` is empty).
    pub sip: SipConfig,
}

/// What the command line and environment said (already merged by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir` / `SIP_SETTINGS_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database` / `SIP_SETTINGS_DATABASE`.
    pub database: Option<String>,
    /// `--config` / `SIP_SETTINGS_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--listen` / `SIP_SETTINGS_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `serve --ops-listen` / `SIP_SETTINGS_OPS_LISTEN`.
    pub ops_listen: Option<SocketAddr>,
    /// `serve --first-request-timeout-secs` / `SIP_SETTINGS_FIRST_REQUEST_TIMEOUT_SECS`.
    pub first_request_timeout_secs: Option<u64>,
    /// `serve --idle-timeout-secs` / `SIP_SETTINGS_IDLE_TIMEOUT_SECS`.
    pub idle_timeout_secs: Option<u64>,
    /// `serve --max-connections-per-address` / `SIP_SETTINGS_MAX_CONNECTIONS_PER_ADDRESS`.
    pub max_connections_per_address: Option<usize>,
    /// `serve --shutdown-grace-secs` / `SIP_SETTINGS_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace_secs: Option<u64>,
    /// `--sip-listen` / `SIP_SETTINGS_SIP_LISTEN`.
    pub sip_listen: Option<Vec<Listen>>,
    /// `--sip-trusted` / `SIP_SETTINGS_SIP_TRUSTED`.
    pub sip_trusted: Option<Vec<Cidr>>,
    /// `--voicemail-uri` / `SIP_SETTINGS_VOICEMAIL_URI`.
    pub voicemail_uri: Option<VoicemailTemplate>,
    /// `--sip-max-diversions` / `SIP_SETTINGS_SIP_MAX_DIVERSIONS`.
    pub sip_max_diversions: Option<u32>,
    /// `--sip-registrations` / `SIP_SETTINGS_SIP_REGISTRATIONS`.
    pub sip_registrations: Option<sip_settings_sip::Registrations>,
}

/// Parses a list of configuration-file strings with `T::from_str`, naming the key.
fn parse_list<T: std::str::FromStr<Err = String>>(
    key: &str,
    items: &[String],
) -> anyhow::Result<Vec<T>> {
    items
        .iter()
        .map(|i| {
            i.parse::<T>()
                .map_err(|e| anyhow::anyhow!("configuration: {key}: {e}"))
        })
        .collect()
}

impl Config {
    /// The configuration for a data directory with every other value at its default (tests use
    /// this and adjust fields).
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self::resolve(&Overrides {
            data_dir: Some(data_dir.to_owned()),
            ..Overrides::default()
        })
        .unwrap_or_else(|_| unreachable!("defaults alone always resolve"))
    }

    /// Resolves defaults → file → overrides.
    pub fn resolve(overrides: &Overrides) -> anyhow::Result<Self> {
        let file = match &overrides.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = overrides
            .database
            .clone()
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("sip-settings.db").display()));
        let listen = match overrides.listen.or(file.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| anyhow::anyhow!("bad default listen address"))?,
        };
        let mut services = ServicesConfig::default();
        if let Some(d) = file.cert_days {
            if !(1..=sip_settings_core::service::MAX_CERT_DAYS).contains(&d) {
                bail!("configuration: cert_days must be between 1 and 3650, not {d}");
            }
            services.cert_days = d;
        }
        if let Some(n) = file.alias_limit {
            services.alias_limit = n;
        }
        let mut limits = Limits::default();
        if let Some(s) = file.handshake_timeout_secs {
            limits.handshake_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(n) = file.max_connections {
            limits.max_connections = n.max(1);
        }
        let seconds =
            |value: Option<u64>, name: &str, max: u64| -> anyhow::Result<Option<Duration>> {
                match value {
                    None => Ok(None),
                    Some(s) if (1..=max).contains(&s) => Ok(Some(Duration::from_secs(s))),
                    Some(s) => {
                        bail!("configuration: {name} must be between 1 and {max} seconds, not {s}")
                    }
                }
            };
        if let Some(d) = seconds(
            overrides
                .first_request_timeout_secs
                .or(file.first_request_timeout_secs),
            "first_request_timeout_secs",
            3_600,
        )? {
            limits.first_request_timeout = d;
        }
        if let Some(d) = seconds(
            overrides.idle_timeout_secs.or(file.idle_timeout_secs),
            "idle_timeout_secs",
            86_400,
        )? {
            limits.idle_timeout = d;
        }
        if let Some(d) = seconds(
            overrides.shutdown_grace_secs.or(file.shutdown_grace_secs),
            "shutdown_grace_secs",
            3_600,
        )? {
            limits.shutdown_grace = d;
        }
        limits.max_connections_per_address = match overrides
            .max_connections_per_address
            .or(file.max_connections_per_address)
        {
            None => Limits::default_per_address(limits.max_connections),
            Some(n) if (1..=limits.max_connections).contains(&n) => n,
            Some(n) => bail!(
                "configuration: max_connections_per_address must be between 1 and max_connections ({}), not {n}",
                limits.max_connections
            ),
        };
        if let Some(c) = file.currency {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                bail!("configuration: currency must be an ISO 4217 code such as EUR");
            }
            services.currency = c;
        }
        if let Some(s) = file.prepaid_max_session_seconds {
            if !(60..=86_400).contains(&s) {
                bail!("configuration: prepaid_max_session_seconds must be between 60 and 86400");
            }
            services.prepaid_max_session_seconds = s;
        }
        if let Some(n) = file.prepaid_max_sessions {
            services.prepaid_max_sessions = n.max(1);
        }
        let rate_limits = match &file.rate_limits {
            Some(r) => r.resolve()?,
            None => Some(RateLimits::default()),
        };
        let mut sip = SipConfig {
            listen: match (&overrides.sip_listen, &file.sip_listen) {
                (Some(l), _) => l.clone(),
                (None, Some(l)) => parse_list("sip_listen", l)?,
                (None, None) => Vec::new(),
            },
            ..SipConfig::default()
        };
        match (&overrides.sip_trusted, &file.sip_trusted) {
            (Some(t), _) => sip.trusted = t.clone(),
            (None, Some(t)) => sip.trusted = parse_list("sip_trusted", t)?,
            (None, None) => {}
        }
        sip.voicemail_uri = match (&overrides.voicemail_uri, &file.voicemail_uri) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(v)) => Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("configuration: voicemail_uri: {e}"))?,
            ),
            (None, None) => None,
        };
        if let Some(n) = overrides.sip_max_diversions.or(file.sip_max_diversions) {
            if !(1..=100).contains(&n) {
                bail!("configuration: sip_max_diversions must be between 1 and 100, not {n}");
            }
            sip.max_diversions = n;
        }
        sip.registrations = match (overrides.sip_registrations, &file.sip_registrations) {
            (Some(r), _) => r,
            (None, Some(r)) => r
                .parse()
                .map_err(|e| anyhow::anyhow!("configuration: sip_registrations: {e}"))?,
            (None, None) => sip.registrations,
        };
        Ok(Self {
            data_dir,
            database_url,
            listen,
            ops_listen: overrides.ops_listen.or(file.ops_listen),
            services,
            limits,
            rate_limits,
            migrate: true,
            sip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_defaults_file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let d = Config::resolve(&Overrides::default()).unwrap();
        assert_eq!(d.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(
            d.database_url,
            "sqlite://./sip-settings-data/sip-settings.db"
        );
        assert_eq!(d.listen.to_string(), DEFAULT_LISTEN);

        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/x\"\nlisten = \"0.0.0.0:9443\"\ncert_days = 30\n\
             ops_listen = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let f = Config::resolve(&Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(f.data_dir, PathBuf::from("/srv/x"));
        assert_eq!(f.database_url, "sqlite:///srv/x/sip-settings.db");
        assert_eq!(f.listen.to_string(), "0.0.0.0:9443");
        assert_eq!(f.services.cert_days, 30);
        assert_eq!(f.ops_listen, Some("127.0.0.1:9100".parse().unwrap()));

        let o = Config::resolve(&Overrides {
            config: Some(file.clone()),
            data_dir: Some("/tmp/y".into()),
            listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(o.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(o.listen.to_string(), "127.0.0.1:1");
        let flag = Config::resolve(&Overrides {
            config: Some(file.clone()),
            ops_listen: Some("127.0.0.1:2".parse().unwrap()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(flag.ops_listen, Some("127.0.0.1:2".parse().unwrap()));
        assert_eq!(d.ops_listen, None, "off by default");

        assert_eq!(d.limits.first_request_timeout, Duration::from_secs(10));
        assert_eq!(d.limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(d.limits.max_connections_per_address, 1_000);
        std::fs::write(
            &file,
            "max_connections = 200\nfirst_request_timeout_secs = 5\nidle_timeout_secs = 30\n",
        )
        .unwrap();
        let c = Config::resolve(&Overrides {
            config: Some(file.clone()),
            idle_timeout_secs: Some(7),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.limits.first_request_timeout, Duration::from_secs(5));
        assert_eq!(
            c.limits.idle_timeout,
            Duration::from_secs(7),
            "the flag wins"
        );
        assert_eq!(
            c.limits.max_connections_per_address, 20,
            "a tenth by default"
        );
        for (key, value) in [
            ("first_request_timeout_secs", "0"),
            ("idle_timeout_secs", "100000"),
            ("max_connections_per_address", "201"),
            ("max_connections_per_address", "0"),
        ] {
            std::fs::write(&file, format!("max_connections = 200\n{key} = {value}\n")).unwrap();
            let err = Config::resolve(&Overrides {
                config: Some(file.clone()),
                ..Overrides::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains(key), "{key} = {value}: {err}");
        }

        // The SIP door: file keys, the flag over the file, bad values named.
        std::fs::write(
            &file,
            "sip_listen = [\"udp:127.0.0.1:5070\", \"tls:[::1]:5071\"]\nsip_trusted = [\"10.0.0.0/24\"]\nvoicemail_uri = \"sip:vm-{user}@vm.example.net\"\nsip_max_diversions = 3\n",
        )
        .unwrap();
        let s = Config::resolve(&Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.sip.listen.len(), 2);
        assert_eq!(s.sip.listen[1].to_string(), "tls:[::1]:5071");
        assert_eq!(s.sip.trusted.len(), 1);
        assert_eq!(
            s.sip.voicemail_uri.as_ref().unwrap().expand("bob", "x"),
            "sip:vm-bob@vm.example.net"
        );
        assert_eq!(s.sip.max_diversions, 3);
        assert!(d.sip.listen.is_empty(), "off by default");
        assert_eq!(d.sip.trusted.len(), 2, "loopback by default");
        let s = Config::resolve(&Overrides {
            config: Some(file.clone()),
            sip_listen: Some(vec!["tcp:127.0.0.1:1".parse().unwrap()]),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.sip.listen.len(), 1, "the flag wins");
        for (key, value) in [
            ("sip_listen", "[\"sctp:1.2.3.4:5\"]"),
            ("sip_trusted", "[\"10.0.0.0/99\"]"),
            ("voicemail_uri", "\"mailto:x\""),
            ("sip_max_diversions", "0"),
        ] {
            std::fs::write(&file, format!("{key} = {value}\n")).unwrap();
            let err = Config::resolve(&Overrides {
                config: Some(file.clone()),
                ..Overrides::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains(key), "{key} = {value}: {err}");
        }

        std::fs::write(&file, "nonsense = 1\n").unwrap();
        let err = Config::resolve(&Overrides {
            config: Some(file),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }
}
