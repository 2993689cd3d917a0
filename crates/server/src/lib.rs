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
        Command::Serve { listen } | Command::Quickstart { listen } => *listen,
        _ => None,
    };
    let config = Config::resolve(&Overrides {
        data_dir: cli.data_dir.clone(),
        database: cli.database.clone(),
        config: cli.config.clone(),
        listen,
    })?;
    match &cli.command {
        Command::Init { hostnames } => {
            commands::init(&config, hostnames).await?;
        }
        Command::Quickstart { .. } => commands::quickstart(&config).await?,
        Command::Serve { .. } => commands::serve(&config).await?,
        Command::Migrate => {
            let store = app::open_store(&config, false).await?;
            drop(store);
            println!(
                "database {} is migrated to the latest version",
                config.database_url
            );
        }
        Command::Domain(cmd) => commands::domain(&config, cmd).await?,
        Command::Account(cmd) => commands::account(&config, cmd).await?,
        Command::Cert(cmd) => commands::cert(&config, cmd).await?,
        Command::Alias(cmd) => settings_commands::alias(&config, cmd).await?,
        Command::Enum(cmd) => settings_commands::enum_numbers(&config, cmd).await?,
        Command::Voicemail(cmd) => settings_commands::voicemail(&config, cmd).await?,
        Command::Reject(cmd) => settings_commands::reject(&config, cmd).await?,
        Command::Accept(cmd) => settings_commands::accept(&config, cmd).await?,
        Command::Phonebook(cmd) => settings_commands::phonebook(&config, cmd).await?,
        Command::Balance(cmd) => billing_commands::balance(&config, cmd).await?,
        Command::Rates(cmd) => billing_commands::rates(&config, cmd).await?,
        Command::Calls(cmd) => billing_commands::calls(&config, cmd).await?,
    }
    Ok(())
}
