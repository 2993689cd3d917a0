//! The `sip-settings` binary as a library: configuration, command line, startup. The binary's
//! `main` only parses arguments and calls [`run`]; tests start servers through [`app`].

pub mod app;
pub mod billing_commands;
pub mod cli;
pub mod commands;
pub mod config;
pub mod copy;
pub mod settings_commands;

use cli::{Cli, Command};
use config::{Config, Overrides};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen, .. } | Command::Quickstart { listen, .. } => *listen,
        _ => None,
    };
    let sip = match &cli.command {
        Command::Serve { sip, .. } | Command::Quickstart { sip, .. } => sip.clone(),
        _ => cli::SipFlags::default(),
    };
    let connections = match &cli.command {
        Command::Serve { connections, .. } => connections.clone(),
        _ => cli::ConnectionFlags::default(),
    };
    let mut config = Config::resolve(&Overrides {
        data_dir: cli.data_dir.clone(),
        database: cli.database.clone(),
        config: cli.config.clone(),
        listen,
        first_request_timeout_secs: connections.first_request_timeout_secs,
        idle_timeout_secs: connections.idle_timeout_secs,
        max_connections_per_address: connections.max_connections_per_address,
        shutdown_grace_secs: connections.shutdown_grace_secs,
        ops_listen: connections.ops_listen,
        sip_listen: (!sip.sip_listen.is_empty()).then_some(sip.sip_listen),
        sip_trusted: (!sip.sip_trusted.is_empty()).then_some(sip.sip_trusted),
        voicemail_uri: sip.voicemail_uri,
        sip_max_diversions: sip.sip_max_diversions,
        sip_registrations: sip.sip_registrations,
    })?;
    match &cli.command {
        Command::Init { hostnames } => {
            commands::init(&config, hostnames).await?;
        }
        Command::Quickstart { .. } => commands::quickstart(&config).await?,
        Command::Serve { no_migrate, .. } => {
            config.migrate = !no_migrate;
            commands::serve(&config).await?;
        }
        Command::Copy { from, to } => {
            let source = app::open_store_url(from, false, true).await?;
            let target = app::open_store_url(to, true, true).await?;
            let report = copy::copy_all(&source, &target, chrono::Utc::now()).await?;
            println!(
                "copied {} domain(s), {} account(s), {} certificate(s), {} alias(es), {} ENUM number(s), {} rate(s), {} call(s), {} balance history entries, {} chat journal entries from {} to {}",
                report.domains,
                report.accounts,
                report.certificates,
                report.aliases,
                report.enum_numbers,
                report.rates,
                report.calls,
                report.history,
                report.chat_entries,
                app::redact_url(from),
                app::redact_url(to)
            );
        }
        Command::Journal { account, limit } => {
            let services = app::open_default_services(&config).await?;
            let id = sip_settings_core::AccountId::parse(account)?;
            services
                .account(&id)
                .await
                .map(|_| ())
                .or_else(|e| match e {
                    // The journal outlives a deleted account.
                    sip_settings_core::ServiceError::NotFound(_) => Ok(()),
                    other => Err(other),
                })?;
            for e in services
                .journal_entries(&id, None, (*limit).clamp(1, 10_000))
                .await?
            {
                let j = &e.entry;
                println!(
                    "{} {:<14} {:<40} {:<16} {:<20} {} -> {}",
                    j.at.format("%Y-%m-%dT%H:%M:%SZ"),
                    j.door,
                    j.actor,
                    j.source.as_deref().unwrap_or("-"),
                    j.resource,
                    j.old.as_deref().unwrap_or("-"),
                    j.new.as_deref().unwrap_or("-")
                );
            }
        }
        Command::Backup { out } => {
            let app::Backend::Sqlite(path) = app::backend_of(&config.database_url)? else {
                anyhow::bail!(
                    "backup is for the embedded SQLite store; back up PostgreSQL with pg_dump (see docs/deployment.md)"
                );
            };
            if !path.exists() {
                anyhow::bail!(
                    "database {} not found: run `sip-settings init` first",
                    path.display()
                );
            }
            if out.exists() {
                anyhow::bail!("{} exists already; choose a new file", out.display());
            }
            let store =
                sip_settings_store_sqlite::SqliteStore::open(&config.database_url, false).await?;
            store.backup_to(out).await?;
            store.close().await;
            println!(
                "wrote a consistent copy of {} to {}",
                path.display(),
                out.display()
            );
        }
        Command::Migrate => {
            let store = app::open_store(&config, false).await?;
            drop(store);
            println!(
                "database {} is migrated to the latest version",
                app::redact_url(&config.database_url)
            );
        }
        Command::Domain(cmd) => commands::domain(&config, cmd).await?,
        Command::Account(cmd) => commands::account(&config, cmd).await?,
        Command::Cert(cmd) => commands::cert(&config, cmd).await?,
        Command::Sip(cmd) => commands::sip(&config, cmd).await?,
        Command::Alias(cmd) => settings_commands::alias(&config, cmd).await?,
        Command::Enum(cmd) => settings_commands::enum_numbers(&config, cmd).await?,
        Command::Voicemail(cmd) => settings_commands::voicemail(&config, cmd).await?,
        Command::Reject(cmd) => settings_commands::reject(&config, cmd).await?,
        Command::Accept(cmd) => settings_commands::accept(&config, cmd).await?,
        Command::Phonebook(cmd) => settings_commands::phonebook(&config, cmd).await?,
        Command::Forwarding(cmd) => settings_commands::forwarding(&config, cmd).await?,
        Command::Balance(cmd) => billing_commands::balance(&config, cmd).await?,
        Command::Voucher(cmd) => billing_commands::voucher(&config, cmd).await?,
        Command::Rates(cmd) => billing_commands::rates(&config, cmd).await?,
        Command::Calls(cmd) => billing_commands::calls(&config, cmd).await?,
    }
    Ok(())
}
