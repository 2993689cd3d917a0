//! Operator commands for money and calls: balances, the rate table, and CSV imports that are
//! checked line by line before anything is written.

use std::path::Path;

use anyhow::{Context, bail};
use sip_settings_core::calls::{CallInput, NewCall};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::{AccountId, E164, ServiceError};

use crate::app::open_default_services;
use crate::cli::{BalanceCommand, CallsCommand, RatesCommand};
use crate::config::Config;

/// `balance …`
pub async fn balance(config: &Config, cmd: &BalanceCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    let currency = services.config().currency.clone();
    match cmd {
        BalanceCommand::Topup {
            account,
            amount,
            description,
        } => {
            let id = AccountId::parse(account)?;
            let amount = Money::parse_for("amount", amount)?;
            let balance = services.topup(&id, amount, description).await?;
            println!("added {amount} {currency} to {id}; balance {balance} {currency}");
        }
        BalanceCommand::Set {
            account,
            amount,
            description,
        } => {
            let id = AccountId::parse(account)?;
            let amount = Money::parse_for("amount", amount)?;
            let balance = services.set_balance(&id, amount, description).await?;
            println!("set the balance of {id} to {balance} {currency}");
        }
        BalanceCommand::Show { account } => {
            let id = AccountId::parse(account)?;
            let acc = services.account(&id).await?;
            let (balance, sessions) = services.prepaid(&id).await?;
            println!(
                "{id}: balance {balance} {currency}{}",
                if acc.prepaid {
                    " (prepaid)"
                } else {
                    " (postpaid)"
                }
            );
            for s in sessions {
                println!(
                    "open call {} to {}: up to {} s, {} reserved",
                    s.call_id, s.destination, s.max_session_time, s.reserved
                );
            }
            for h in services.balance_history(&id, 10).await? {
                println!(
                    "{} {:<7} {:>12} {:>12} {}",
                    h.at.format("%Y-%m-%dT%H:%M:%SZ"),
                    h.action,
                    h.value.signed(),
                    h.balance,
                    h.description
                );
            }
        }
    }
    Ok(())
}

/// Reads a file for an importer; `source` names it in messages.
fn read_file(file: &Path) -> anyhow::Result<(Vec<u8>, String)> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok((text, file.display().to_string()))
}

/// Reads a CSV with a header; gives `(line number, fields)` per record. `source` names the
/// input in messages.
fn read_csv(
    text: &[u8],
    source: &str,
    expected_header: &[&str],
) -> anyhow::Result<Vec<(u64, Vec<String>)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("{source} line 1: {e}"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if header != expected_header {
        bail!(
            "{source} line 1: the header must be {}",
            expected_header.join(",")
        );
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow::anyhow!("{source} line {line}: {e}")
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != expected_header.len() {
            bail!(
                "{source} line {line}: {} fields, expected {}",
                record.len(),
                expected_header.len()
            );
        }
        out.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, ServiceError> {
    v.parse()
        .map_err(|_| ServiceError::invalid(field, format!("'{v}' is not a whole number")))
}

/// The header of a rates CSV.
pub const RATES_HEADER: [&str; 6] = [
    "prefix",
    "description",
    "connect_fee",
    "rate_per_minute",
    "increment_seconds",
    "minimum_seconds",
];

/// Parses a rates CSV file; every malformed line is reported, and then nothing is returned.
pub fn parse_rates(file: &Path) -> anyhow::Result<Vec<Rate>> {
    let (text, source) = read_file(file)?;
    parse_rates_csv(&text, &source)
}

/// Parses the text of a rates CSV (`source` names it in messages); every malformed line is
/// reported, and then nothing is returned.
pub fn parse_rates_csv(text: &[u8], source: &str) -> anyhow::Result<Vec<Rate>> {
    let mut rates = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, f) in read_csv(text, source, &RATES_HEADER)? {
        let parsed = (|| -> Result<Rate, ServiceError> {
            Rate::new(
                &f[0],
                &f[1],
                Money::parse_for("connect_fee", &f[2])?,
                Money::parse_for("rate_per_minute", &f[3])?,
                number("increment_seconds", &f[4])?,
                number("minimum_seconds", &f[5])?,
            )
        })();
        match parsed {
            Ok(r) if !seen.insert(r.prefix.clone()) => {
                errors.push(format!("line {line}: prefix {} appears twice", r.prefix));
            }
            Ok(r) => rates.push(r),
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("{source}: nothing imported: {}", errors.join("; "));
    }
    Ok(rates)
}

/// `rates …`
pub async fn rates(config: &Config, cmd: &RatesCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        RatesCommand::Import { file, replace } => {
            let rates = parse_rates(file)?;
            let n = services.import_rates(&rates, *replace).await?;
            println!(
                "imported {n} rate(s) from {}{}",
                file.display(),
                if *replace { " (table replaced)" } else { "" }
            );
        }
        RatesCommand::List => {
            for r in services.rates().await? {
                print_rate(&r);
            }
        }
        RatesCommand::Lookup { number } => {
            let n = E164::parse_for("number", number)?;
            match services.lookup_rate(&n).await? {
                Some(r) => print_rate(&r),
                None => bail!("no rate matches {n}"),
            }
        }
    }
    Ok(())
}

fn print_rate(r: &Rate) {
    println!(
        "{:<15} {:<30} connect {} per minute {} increment {} s minimum {} s",
        r.prefix,
        r.description,
        r.connect_fee,
        r.rate_per_minute,
        r.increment_seconds,
        r.minimum_seconds
    );
}

/// The header of a calls CSV.
pub const CALLS_HEADER: [&str; 12] = [
    "call_id", "from_tag", "to_tag", "caller", "callee", "start", "stop", "duration", "status",
    "media", "proxy_ip", "price",
];

/// Reads the text of a calls CSV (`source` names it in messages) into one call per line, or
/// what is wrong with the line's numbers; the fields are checked by [`CallInput::parse`] when
/// the call is prepared.
pub fn parse_calls_csv(
    text: &[u8],
    source: &str,
) -> anyhow::Result<Vec<(u64, Result<CallInput, ServiceError>)>> {
    Ok(read_csv(text, source, &CALLS_HEADER)?
        .into_iter()
        .map(|(line, f)| {
            let input = (|| -> Result<CallInput, ServiceError> {
                Ok(CallInput {
                    call_id: f[0].clone(),
                    from_tag: f[1].clone(),
                    to_tag: f[2].clone(),
                    caller: f[3].clone(),
                    callee: f[4].clone(),
                    start: f[5].clone(),
                    stop: f[6].clone(),
                    duration: Some(number("duration", &f[7])?),
                    status: Some(number("status", &f[8])?),
                    media: f[9].split_whitespace().map(str::to_owned).collect(),
                    proxy_ip: f[10].clone(),
                    price: Some(f[11].clone()).filter(|p| !p.is_empty()),
                })
            })();
            (line, input)
        })
        .collect())
}

/// `calls …`
pub async fn calls(config: &Config, cmd: &CallsCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        CallsCommand::Import { file } => {
            let mut calls: Vec<NewCall> = Vec::new();
            let mut errors = Vec::new();
            let (text, source) = read_file(file)?;
            for (line, input) in parse_calls_csv(&text, &source)? {
                let prepared = match input {
                    Ok(i) => services.prepare_call(&i).await,
                    Err(e) => Err(e),
                };
                match prepared {
                    Ok(c) => calls.push(c),
                    Err(e) => errors.push(format!("line {line}: {e}")),
                }
            }
            if !errors.is_empty() {
                bail!(
                    "{}: nothing imported: {}",
                    file.display(),
                    errors.join("; ")
                );
            }
            let new = services.record_calls(&calls).await?;
            println!(
                "imported {new} call(s) from {} ({} already recorded)",
                file.display(),
                calls.len() - new
            );
        }
    }
    Ok(())
}
