//! What each subcommand does. Each parses its input with core's parsers, calls the service
//! layer, and prints what it did; a failure is one line on stderr and a non-zero exit (in
//! `main`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sip_settings_core::account::{
    AccountUpdate, parse_language, parse_name, parse_no_answer_timeout,
};
use sip_settings_core::cert::{CertRecord, CertSubject, P12Variant, parse_holder_name};
use sip_settings_core::{AccountId, Domain, E164, Email, Password, Serial, Services, TimeZone};
use sip_settings_http::legacy::actions::AccountObject;

use crate::app::{RunningServer, open_default_services, open_store};
use crate::cli::{AccountCommand, CertCommand, DomainCommand, PasswordArgs, ProfileArgs};
use crate::config::Config;
use sip_settings_sip::Transport;

/// Reads the first line of a file, or of standard input for `-`.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let mut line = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?;
        line = text.lines().next().unwrap_or_default().to_owned();
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn password_from(args: &PasswordArgs) -> anyhow::Result<String> {
    match (&args.password, &args.password_file) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(f)) => read_secret_file(f),
        (None, None) => bail!("give --password or --password-file"),
    }
}

fn optional<T>(
    input: &Option<String>,
    parse: impl Fn(&str) -> Result<T, sip_settings_core::ServiceError>,
) -> anyhow::Result<Option<Option<T>>> {
    Ok(match input.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(s) => Some(Some(parse(s)?)),
    })
}

/// Parses the profile flags into an update, with the same rules as the APIs.
pub fn profile_update(args: &ProfileArgs) -> anyhow::Result<AccountUpdate> {
    Ok(AccountUpdate {
        first_name: args
            .first_name
            .as_deref()
            .map(|s| parse_name("first_name", s))
            .transpose()?,
        last_name: args
            .last_name
            .as_deref()
            .map(|s| parse_name("last_name", s))
            .transpose()?,
        email: optional(&args.email, |s| Email::parse_for("email", s))?,
        timezone: args
            .timezone
            .as_deref()
            .map(|s| TimeZone::parse_for("timezone", s))
            .transpose()?,
        mobile: optional(&args.mobile, |s| E164::parse_for("mobile", s))?,
        pstn_caller_id: optional(&args.pstn_caller_id, |s| {
            E164::parse_for("pstn_caller_id", s)
        })?,
        language: args.language.as_deref().map(parse_language).transpose()?,
        no_answer_timeout: args
            .no_answer_timeout
            .as_deref()
            .map(parse_no_answer_timeout)
            .transpose()?,
        prepaid: None,
    })
}

/// `init`: creates what is missing and says what it did.
pub async fn init(config: &Config, hostnames: &[String]) -> anyhow::Result<bool> {
    for h in hostnames {
        if h.parse::<std::net::IpAddr>().is_err() {
            Domain::parse(h).map_err(|e| {
                anyhow::anyhow!("--hostname {}", e.to_string().trim_start_matches("domain "))
            })?;
        }
    }
    let dir = &config.data_dir;
    let existed = dir.exists();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let report = sip_settings_pki::files::ensure(dir, hostnames)?;
    let db_existed = crate::app::sqlite_path(&config.database_url).is_some_and(Path::exists);
    let store = open_store(config, true).await?;
    drop(store);
    let mut changed = false;
    if !existed {
        println!("created data directory {}", dir.display());
        changed = true;
    }
    if report.created_ca {
        println!(
            "created client CA {}/ca.crt (key ca.key, owner-only)",
            dir.display()
        );
        changed = true;
    }
    if report.created_server {
        let mut names = vec!["localhost", "127.0.0.1", "::1"];
        names.extend(hostnames.iter().map(String::as_str));
        println!(
            "created server certificate {}/server.crt for {}",
            dir.display(),
            names.join(", ")
        );
        changed = true;
    } else if !hostnames.is_empty() {
        println!(
            "note: server.crt exists and was kept; delete server.crt and server.key and run init again to add host names"
        );
    }
    if sip_settings_pki::files::exists(dir)
        && !db_existed
        && crate::app::sqlite_path(&config.database_url).is_some()
    {
        println!(
            "created database {}",
            crate::app::redact_url(&config.database_url)
        );
        changed = true;
    }
    if !changed {
        println!("{} is already initialised; nothing changed", dir.display());
    }
    Ok(changed)
}

/// `domain …`
pub async fn domain(config: &Config, cmd: &DomainCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        DomainCommand::Add { domain } => {
            let d = services.add_domain(domain).await?;
            println!("added domain {d}");
        }
        DomainCommand::List => {
            for d in services.list_domains().await? {
                println!("{d}");
            }
        }
        DomainCommand::Digest { domain, state } => {
            let on = *state == crate::cli::OnOff::On;
            let d = services.set_domain_digest(domain, on).await?;
            let word = if on { "on" } else { "off" };
            println!("HTTP Digest on settings.phtml is {word} for {d}");
        }
    }
    Ok(())
}

/// `account …`
pub async fn account(config: &Config, cmd: &AccountCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        AccountCommand::Add {
            account,
            password,
            profile,
            prepaid,
        } => {
            let id = AccountId::parse(account)?;
            let mut update = profile_update(profile)?;
            update.prepaid = Some(*prepaid);
            let pw = Password::parse_for("password", &password_from(password)?)?;
            let created = services.add_account(&id, &pw, &update).await?;
            println!("added account {}", created.id);
        }
        AccountCommand::List { domain, json } => {
            let domain = domain.as_deref().map(Domain::parse).transpose()?;
            let accounts = services.list_accounts(domain.as_ref()).await?;
            if *json {
                let objects: Vec<AccountObject> = accounts
                    .iter()
                    .map(|a| AccountObject::new(a, false))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&objects)?);
            } else {
                for a in accounts {
                    println!("{}", a.id);
                }
            }
        }
        AccountCommand::Show { account, json } => {
            let id = AccountId::parse(account)?;
            let a = services.account(&id).await?;
            let object = AccountObject::new(&a, services.dnd_active(&id).await?);
            if *json {
                println!("{}", serde_json::to_string_pretty(&object)?);
            } else {
                let value = serde_json::to_value(&object)?;
                if let serde_json::Value::Object(map) = value {
                    for (k, v) in map {
                        let shown = match v {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Null => "-".to_owned(),
                            other => other.to_string(),
                        };
                        println!("{k:<18} {shown}");
                    }
                }
            }
        }
        AccountCommand::Set {
            account,
            profile,
            prepaid,
        } => {
            let id = AccountId::parse(account)?;
            let mut update = profile_update(profile)?;
            update.prepaid = match prepaid.as_deref() {
                None => None,
                Some("true") | Some("yes") | Some("1") => Some(true),
                Some("false") | Some("no") | Some("0") => Some(false),
                Some(other) => bail!("--prepaid must be true or false, not '{other}'"),
            };
            let updated = services.update_account(&id, &update).await?;
            println!(
                "updated account {}{}",
                updated.id,
                if updated.prepaid { " (prepaid)" } else { "" }
            );
        }
        AccountCommand::Passwd { account, password } => {
            let id = AccountId::parse(account)?;
            let pw = Password::parse_for("password", &password_from(password)?)?;
            services.set_password(&id, &pw).await?;
            println!("changed the password of {id}");
        }
        AccountCommand::Delete { account } => {
            let id = AccountId::parse(account)?;
            let revoked = services.delete_account(&id).await?;
            println!("deleted account {id} and revoked {revoked} certificate(s)");
        }
    }
    Ok(())
}

/// Writes a file durably; private-key files owner-only.
fn write_out(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    sip_settings_pki::files::write_file(path, contents, secret)?;
    Ok(())
}

/// Issues an account's `.crt` (and `.p12` when a password is given) into `out`, named `name`
/// (by default what it is issued as, `from the command line`).
pub async fn issue_account_files(
    services: &Services,
    id: &AccountId,
    out: &Path,
    p12_password: Option<&str>,
    variant: P12Variant,
    days: Option<u32>,
    name: Option<&str>,
) -> anyhow::Result<(CertRecord, Vec<PathBuf>)> {
    let form = if p12_password.is_some() {
        ".p12"
    } else {
        ".crt"
    };
    let name = name.map_or_else(|| format!("{form} from the command line"), str::to_owned);
    let name = Some(name.as_str());
    let crt_path = out.join(format!("{id}.crt"));
    let p12_path = out.join(format!("{id}.p12"));
    let (issued, p12) = match p12_password {
        Some(pw) => {
            let (issued, p12) = services
                .issue_pkcs12(id, &Password::offered(pw), variant, days, name)
                .await?;
            (issued, Some(p12))
        }
        None => (
            services
                .issue_certificate(CertSubject::Account(id.clone()), days, name)
                .await?,
            None,
        ),
    };
    // Created only once the certificate is issued, so that a refusal leaves nothing behind.
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_out(&crt_path, issued.crt_bundle().as_bytes(), true)?;
    let mut written = vec![crt_path];
    if let Some(p12) = p12 {
        write_out(&p12_path, &p12, true)?;
        written.push(p12_path);
    }
    Ok((issued.record, written))
}

/// `cert …`
pub async fn cert(config: &Config, cmd: &CertCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        CertCommand::Issue {
            account,
            admin,
            service,
            out,
            p12_password,
            p12_password_file,
            legacy_p12,
            days,
            name,
        } => {
            let p12_password = match (p12_password, p12_password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(read_secret_file(f)?),
                (None, None) => None,
            };
            let variant = if *legacy_p12 {
                P12Variant::Legacy
            } else {
                P12Variant::Modern
            };
            if let Some(account) = account {
                let id = AccountId::parse(account)?;
                let (record, files) = issue_account_files(
                    &services,
                    &id,
                    out,
                    p12_password.as_deref(),
                    variant,
                    *days,
                    name.as_deref(),
                )
                .await?;
                print_issued(&record, &files);
            } else {
                if p12_password.is_some() || *legacy_p12 || name.is_some() {
                    bail!(
                        "--p12-password, --legacy-p12 and --name are for account certificates \
                         only (an operator's or service's certificate is named by its holder)"
                    );
                }
                let subject = match (admin, service) {
                    (Some(name), _) => CertSubject::Admin(parse_holder_name(name)?),
                    (None, Some(name)) => CertSubject::Service(parse_holder_name(name)?),
                    (None, None) => bail!("give USER@DOMAIN, --admin NAME or --service NAME"),
                };
                let issued = services.issue_certificate(subject, *days, None).await?;
                std::fs::create_dir_all(out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let path = out.join(format!("{}.crt", issued.record.subject));
                write_out(&path, issued.crt_bundle().as_bytes(), true)?;
                print_issued(&issued.record, &[path]);
            }
        }
        CertCommand::List { account } => {
            let id = account.as_deref().map(AccountId::parse).transpose()?;
            let records = services.list_certificates(id.as_ref()).await?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<34} {:<32} {:<10} {:<20} {:<20} {:<17} NAME",
                "SERIAL", "SUBJECT", "ROLE", "NOT-AFTER", "REVOKED-AT", "LAST-USED"
            )?;
            for r in records {
                writeln!(
                    out,
                    "{:<34} {:<32} {:<10} {:<20} {:<20} {:<17} {}",
                    r.serial,
                    r.subject,
                    r.role,
                    r.not_after.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.revoked_at
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".to_owned()),
                    r.last_used
                        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
                        .unwrap_or_else(|| "-".to_owned()),
                    r.name.as_deref().unwrap_or("-")
                )?;
            }
        }
        CertCommand::Revoke { serial, account } => match (serial, account) {
            (Some(s), None) => {
                let serial = Serial::parse(s)?;
                let record = services.revoke_certificate(&serial).await?;
                println!("revoked certificate {} ({})", record.serial, record.subject);
            }
            (None, Some(a)) => {
                let id = AccountId::parse(a)?;
                let n = services.revoke_account_certificates(&id).await?;
                println!("revoked {n} certificate(s) of {id}");
            }
            _ => bail!("give a SERIAL or --account USER@DOMAIN"),
        },
    }
    Ok(())
}

fn print_issued(record: &CertRecord, files: &[PathBuf]) {
    println!(
        "issued {} certificate {} for {}, valid until {}",
        record.role,
        record.serial,
        record.subject,
        record.not_after.format("%Y-%m-%dT%H:%M:%SZ")
    );
    for f in files {
        println!("wrote {}", f.display());
    }
}

/// `serve`: runs until SIGTERM or SIGINT, then drains and exits 0; SIGHUP reloads the server
/// certificate and key from the data directory.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    let server = RunningServer::start(config, services.clone()).await?;
    tracing::info!(addr = %server.addr(), "serving");
    println!("listening on https://{}", server.addr());
    for (transport, addr) in server.sip_listeners() {
        println!("SIP redirect server on {transport}:{addr}");
    }
    if let Some(addr) = server.ops_addr() {
        println!("ops listener on http://{addr} (/metrics, /healthz, /readyz)");
    }
    run_until_stopped(&server).await;
    println!("shutting down");
    tracing::info!(
        grace = ?config.limits.shutdown_grace,
        "stopping: finishing the requests in flight"
    );
    server.stop().await;
    services.store().shut_down().await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT, reloading the server certificate on every SIGHUP meanwhile.
async fn run_until_stopped(server: &RunningServer) {
    let mut signals = Signals::new();
    while signals.next().await == Signal::Reload {
        reload_certificate(server);
    }
}

/// SIGHUP: the server certificate and key are read again; a failure keeps the old ones.
fn reload_certificate(server: &RunningServer) {
    match server.reload_certificate() {
        Ok(fingerprint) => {
            count_reload("ok");
            tracing::info!(%fingerprint, "server certificate reloaded");
            println!("server certificate reloaded (SHA-256 {fingerprint})");
        }
        Err(error) => {
            count_reload("error");
            tracing::error!(error = %format!("{error:#}"), "server certificate not reloaded; the old one stays");
        }
    }
}

/// Counts a certificate reload by outcome.
fn count_reload(outcome: &str) {
    sip_settings_core::metrics::global().add(
        "sip_settings_tls_certificate_reloads_total",
        "Reloads of the server certificate (SIGHUP), by outcome (ok, error).",
        &["outcome"],
        &[outcome],
        1,
    );
}

/// What a signal asks of `serve`.
#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
}

/// The signals `serve` listens to.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(hup)) => Some((term, hup)),
                _ => {
                    tracing::warn!("cannot listen for SIGTERM and SIGHUP; stopping on Ctrl-C only");
                    None
                }
            };
            Self { unix }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if let Some((term, hup)) = &mut self.unix {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

/// The demo domain and account of `quickstart`.
pub const DEMO_DOMAIN: &str = "example.com";
/// The demo account of `quickstart`.
pub const DEMO_ACCOUNT: &str = "alice@example.com";

/// `quickstart`: init, demo domain and account, her files, the server, the curl line.
pub async fn quickstart(config: &Config) -> anyhow::Result<()> {
    init(config, &[]).await?;
    let services = open_default_services(config).await?;
    let domain = Domain::parse(DEMO_DOMAIN)?;
    if !services.list_domains().await?.contains(&domain) {
        services.add_domain(DEMO_DOMAIN).await?;
        println!("added domain {DEMO_DOMAIN}");
    }
    let id = AccountId::parse(DEMO_ACCOUNT)?;
    let dir = &config.data_dir;
    let crt = dir.join(format!("{id}.crt"));
    if services.store().get_account(&id).await?.is_none() {
        let password = Password::generate();
        services
            .add_account(&id, &password, &AccountUpdate::default())
            .await?;
        println!("added account {id}");
        println!(
            "SIP password of {id}: {}  (shown once; it also unlocks the .p12)",
            password.expose()
        );
        let (_, files) = issue_account_files(
            &services,
            &id,
            dir,
            Some(password.expose()),
            P12Variant::Modern,
            None,
            Some("quickstart"),
        )
        .await?;
        for f in files {
            println!("wrote {}", f.display());
        }
    } else if crt.exists() {
        println!("reusing account {id} and {}", crt.display());
    } else {
        let (_, files) = issue_account_files(
            &services,
            &id,
            dir,
            None,
            P12Variant::Modern,
            None,
            Some("quickstart"),
        )
        .await?;
        for f in files {
            println!("wrote {}", f.display());
        }
        println!(
            "(no new .p12: its password is the SIP password, which is not stored; use `cert issue --p12-password`)"
        );
    }
    let mut config = config.clone();
    if config.sip.listen.is_empty() {
        // 5070 when it is free (UDP and TCP alike), else any free port: a demo must start.
        let free = std::net::UdpSocket::bind("127.0.0.1:5070").is_ok()
            && std::net::TcpListener::bind("127.0.0.1:5070").is_ok();
        let port = if free { 5070 } else { 0 };
        config.sip.listen = [
            format!("udp:127.0.0.1:{port}"),
            format!("tcp:127.0.0.1:{port}"),
        ]
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect();
    }
    let server = RunningServer::start(&config, services).await?;
    let addr = server.addr();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    println!();
    println!(
        "sip-settings is listening on https://{}:{}",
        host,
        addr.port()
    );
    println!("try:");
    println!(
        "  curl --cacert {} -E {} 'https://{}:{}/settings.phtml?action=account'",
        shell_path(&dir.join("ca.crt")),
        shell_path(&crt),
        host,
        addr.port()
    );
    if let Some(sip) = server.sip_addr(Transport::Udp) {
        println!();
        println!(
            "the SIP redirect server answers proxies on this machine (udp:{sip}, tcp); ask it as one \
             that knows the callee's phone is registered (a proxy running contrib/kamailio feeds \
             registrations instead):"
        );
        println!(
            "  sip-settings --data-dir {} sip ask sip:{DEMO_ACCOUNT} --server udp:{sip} --header X-Registered:yes",
            shell_path(&config.data_dir)
        );
    }
    println!("stop with Ctrl-C");
    run_until_stopped(&server).await;
    server.stop().await;
    Ok(())
}

fn shell_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `sip ask`: one INVITE to the redirect server, its answer printed as received.
pub async fn sip(config: &Config, cmd: &crate::cli::SipCommand) -> anyhow::Result<()> {
    let crate::cli::SipCommand::Ask {
        uri,
        server,
        from,
        headers,
        cert,
        server_name,
    } = cmd;
    let from = if from.eq_ignore_ascii_case("anonymous") {
        "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_owned()
    } else {
        from.clone()
    };
    let tls = match (server.transport, cert) {
        (sip_settings_sip::Transport::Tls, Some(path)) => {
            let bundle = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let ca =
                std::fs::read_to_string(config.data_dir.join("ca.crt")).with_context(|| {
                    format!(
                        "cannot read the CA certificate of {}",
                        config.data_dir.display()
                    )
                })?;
            let client = sip_settings_pki::tls::client_config(&ca, &bundle)
                .map_err(|e| anyhow::anyhow!(e))?;
            Some((std::sync::Arc::new(client), server_name.clone()))
        }
        (sip_settings_sip::Transport::Tls, None) => {
            bail!("a tls: server answers only service certificates: give --cert FILE")
        }
        _ => None,
    };
    let answer = sip_settings_sip::client::ask(
        *server,
        &sip_settings_sip::client::Question {
            uri: uri.clone(),
            from,
            headers: headers.clone(),
        },
        tls,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{server}: {e}"))?;
    print!("{}", answer.text.replace("\r\n", "\n"));
    Ok(())
}
