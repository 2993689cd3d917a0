//! Operator commands for money and calls: balances, the rate table, and CSV imports that are
//! checked line by line before anything is written.

use std::path::Path;

use anyhow::{Context, bail};
use sip_settings_core::calls::NewCall;
pub use sip_settings_core::import::{CALLS_HEADER, RATES_HEADER, parse_calls_csv, parse_rates_csv};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::voucher;
use sip_settings_core::{AccountId, Domain, E164};

use crate::app::open_default_services;
use crate::cli::{BalanceCommand, CallsCommand, RatesCommand, VoucherCommand};
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

/// `voucher …`
pub async fn voucher(config: &Config, cmd: &VoucherCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        VoucherCommand::Create {
            domain,
            value,
            count,
            expires,
        } => {
            let domain = Domain::parse(domain)?;
            let value = Money::parse_for("value", value)?;
            let expires = expires.as_deref().map(voucher::parse_expiry).transpose()?;
            let made = services
                .create_vouchers(&domain, value, *count, expires)
                .await?;
            let expires = expires.map(|e| e.to_rfc3339()).unwrap_or_default();
            println!("id,number,domain,value,expires");
            for v in &made {
                println!("{},{},{domain},{value},{expires}", v.id, v.number.expose());
            }
            eprintln!(
                "made {} prepaid card(s) of {value} {} for {domain}; their numbers are not stored \
                 and cannot be shown again",
                made.len(),
                services.config().currency
            );
        }
        VoucherCommand::List { domain, limit } => {
            let domain = Domain::parse(domain)?;
            let now = services.clock().now();
            println!("id,value,state,created,expires,used_by,used_at");
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.to_rfc3339()).unwrap_or_default()
            };
            for v in services.vouchers(&domain, *limit).await? {
                println!(
                    "{},{},{},{},{},{},{}",
                    v.id,
                    v.value,
                    v.state(now).as_str(),
                    v.created_at.to_rfc3339(),
                    time(v.expires_at),
                    v.used_by.as_deref().unwrap_or_default(),
                    time(v.used_at)
                );
            }
        }
        VoucherCommand::Disable { id } => {
            let id = voucher::parse_id(id)?;
            let v = services.disable_voucher(id).await?;
            println!("prepaid card {} of {} is disabled", v.id, v.domain);
        }
    }
    Ok(())
}

/// Reads a file for an importer; `source` names it in messages.
fn read_file(file: &Path) -> anyhow::Result<(Vec<u8>, String)> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok((text, file.display().to_string()))
}

/// Parses a rates CSV file; every malformed line is reported, and then nothing is returned.
pub fn parse_rates(file: &Path) -> anyhow::Result<Vec<Rate>> {
    let (text, source) = read_file(file)?;
    Ok(parse_rates_csv(&text, &source)?)
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
