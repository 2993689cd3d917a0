//! Operator commands for what subscribers cannot set through the seed API: aliases, ENUM
//! numbers, voicemail, reject and accept rules, the phonebook, forwarding rules. Parsed with the same core
//! parsers, applied through the same services, as the APIs.

use anyhow::Context;
use sip_settings_core::forwarding::Document;
use sip_settings_core::settings::{
    AcceptRule, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern, VoicemailDelivery,
    parse_contact_uri, parse_phonebook_groups,
};
use sip_settings_core::{AccountId, E164, Email};

use crate::app::open_default_services;
use crate::cli::{
    AcceptCommand, AliasCommand, EnumCommand, ForwardingCommand, PhonebookCommand, RejectCommand,
    VoicemailCommand,
};
use crate::config::Config;

/// `alias …`
pub async fn alias(config: &Config, cmd: &AliasCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        AliasCommand::Add { alias, account } => {
            let alias = AccountId::parse_for("alias", alias)?;
            let id = AccountId::parse(account)?;
            services.add_alias(&alias, &id).await?;
            println!("added alias {alias} for {id}");
        }
        AliasCommand::Remove { alias } => {
            let alias = AccountId::parse_for("alias", alias)?;
            services.remove_alias(&alias).await?;
            println!("removed alias {alias}");
        }
        AliasCommand::List { account } => {
            let id = account.as_deref().map(AccountId::parse).transpose()?;
            for (alias, owner) in services.list_aliases(id.as_ref()).await? {
                println!("{alias} {owner}");
            }
        }
    }
    Ok(())
}

/// `enum …`
pub async fn enum_numbers(config: &Config, cmd: &EnumCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        EnumCommand::Add { number, account } => {
            let number = E164::parse_for("number", number)?;
            let id = AccountId::parse(account)?;
            services.add_enum(&number, &id).await?;
            println!("mapped {number} to {id}");
        }
        EnumCommand::Remove { number } => {
            let number = E164::parse_for("number", number)?;
            services.remove_enum(&number).await?;
            println!("removed {number}");
        }
        EnumCommand::List { account } => {
            let id = account.as_deref().map(AccountId::parse).transpose()?;
            for (number, owner) in services.list_enum(id.as_ref()).await? {
                println!("{number} {owner}");
            }
        }
    }
    Ok(())
}

/// `voicemail …`
pub async fn voicemail(config: &Config, cmd: &VoicemailCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        VoicemailCommand::Enable {
            account,
            delivery,
            pin,
            email,
        } => {
            let id = AccountId::parse(account)?;
            let delivery = delivery
                .as_deref()
                .map(VoicemailDelivery::parse)
                .transpose()?;
            let email = email
                .as_deref()
                .map(|e| Email::parse_for("email", e))
                .transpose()?;
            let v = services
                .enable_voicemail(&id, delivery, pin.as_deref(), email)
                .await?;
            println!(
                "enabled voicemail of {id} (delivery {}{})",
                v.delivery.as_str(),
                if v.pin_hash.is_some() {
                    ", PIN set"
                } else {
                    ", no PIN"
                }
            );
        }
        VoicemailCommand::Disable { account } => {
            let id = AccountId::parse(account)?;
            services.disable_voicemail(&id).await?;
            println!("disabled voicemail of {id}");
        }
    }
    Ok(())
}

/// `reject …`
pub async fn reject(config: &Config, cmd: &RejectCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        RejectCommand::Add { account, pattern } => {
            let id = AccountId::parse(account)?;
            let pattern = RejectPattern::parse(pattern)?;
            services.add_reject(&id, &pattern).await?;
            println!("added reject rule {pattern} to {id}");
        }
        RejectCommand::Remove { account, pattern } => {
            let id = AccountId::parse(account)?;
            let pattern = RejectPattern::parse(pattern)?;
            services.remove_reject(&id, &pattern).await?;
            println!("removed reject rule {pattern} from {id}");
        }
        RejectCommand::List { account } => {
            let id = AccountId::parse(account)?;
            for p in services.reject_patterns(&id).await? {
                println!("{p}");
            }
        }
    }
    Ok(())
}

/// `accept …`
pub async fn accept(config: &Config, cmd: &AcceptCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        AcceptCommand::Add {
            account,
            days,
            start,
            stop,
            groups,
        } => {
            let id = AccountId::parse(account)?;
            let rule = AcceptRule {
                days: DaysMask::parse(days)?,
                start: ClockTime::parse_for("start", start)?,
                stop: ClockTime::parse_for("stop", stop)?,
                groups: Group::parse_list(groups)?,
            };
            let replaced = services.put_accept_rule(&id, &rule).await?;
            println!(
                "{} accept rule of {id} for days {}: {}–{} {}",
                if replaced { "replaced" } else { "added" },
                rule.days,
                rule.start,
                rule.stop,
                rule.groups
                    .iter()
                    .map(Group::name)
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        AcceptCommand::Remove { account, days } => {
            let id = AccountId::parse(account)?;
            let days = DaysMask::parse(days)?;
            services.remove_accept_rule(&id, days).await?;
            println!("removed accept rule of {id} for days {days}");
        }
        AcceptCommand::List { account } => {
            let id = AccountId::parse(account)?;
            let rules = services.accept_rules(&id).await?;
            for r in &rules.persistent {
                println!(
                    "days {:<3} {}–{} {}",
                    r.days,
                    r.start,
                    r.stop,
                    r.groups
                        .iter()
                        .map(Group::name)
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            if let Some(t) = rules.active_temporary(services.clock().now()) {
                println!(
                    "temporary {} until {}",
                    t.groups
                        .iter()
                        .map(Group::name)
                        .collect::<Vec<_>>()
                        .join(","),
                    t.until
                        .map(|u| u.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "turned off".to_owned())
                );
            }
        }
    }
    Ok(())
}

/// `forwarding …`
pub async fn forwarding(config: &Config, cmd: &ForwardingCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        ForwardingCommand::Show { account } => {
            let id = AccountId::parse(account)?;
            let forwarding = services.forwarding(&id).await?;
            println!("{}", serde_json::to_string_pretty(&forwarding.document())?);
        }
        ForwardingCommand::Set { account, file } => {
            let id = AccountId::parse(account)?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let forwarding = Document::parse(value)?.forwarding_of(&id)?;
            let rules = forwarding.rules.len();
            let warnings = services.set_forwarding(&id, forwarding).await?;
            println!("set {rules} forwarding rule(s) of {id}");
            for (_, warning) in warnings {
                println!("warning: {warning}");
            }
        }
    }
    Ok(())
}

/// `phonebook …`
pub async fn phonebook(config: &Config, cmd: &PhonebookCommand) -> anyhow::Result<()> {
    let services = open_default_services(config).await?;
    match cmd {
        PhonebookCommand::Add {
            account,
            uri,
            groups,
            name,
        } => {
            let id = AccountId::parse(account)?;
            let entry = PhonebookEntry {
                uri: parse_contact_uri(uri)?,
                name: sip_settings_core::account::parse_name("name", name)?,
                groups: parse_phonebook_groups(groups)?,
            };
            services.put_phonebook_entry(&id, &entry).await?;
            println!(
                "added {} to the phonebook of {id} in {}",
                entry.uri,
                entry.groups.join(",")
            );
        }
        PhonebookCommand::Remove { account, uri } => {
            let id = AccountId::parse(account)?;
            let uri = parse_contact_uri(uri)?;
            services.remove_phonebook_entry(&id, &uri).await?;
            println!("removed {uri} from the phonebook of {id}");
        }
        PhonebookCommand::List { account } => {
            let id = AccountId::parse(account)?;
            for e in services.phonebook(&id).await? {
                println!("{} {} {}", e.uri, e.groups.join(","), e.name);
            }
        }
    }
    Ok(())
}
