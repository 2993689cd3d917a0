//! `sip-settings copy --from URL --to URL`: moves a whole installation between stores (e.g.
//! from the embedded SQLite file to PostgreSQL) through the `Store` trait alone, so any pair of
//! back ends works. The target must be empty. Certificates keep their serials, so issued
//! certificates stay valid; passwords move as their stored hashes.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sip_settings_core::calls::{Direction, NewCall};
use sip_settings_core::chat_journal::{self, ChatQuery};
use sip_settings_core::{AccountId, Store};

/// What was copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Domains.
    pub domains: usize,
    /// Accounts.
    pub accounts: usize,
    /// Certificate records.
    pub certificates: usize,
    /// Aliases.
    pub aliases: usize,
    /// ENUM numbers.
    pub enum_numbers: usize,
    /// Rates.
    pub rates: usize,
    /// Call records.
    pub calls: usize,
    /// Balance history entries.
    pub history: usize,
    /// Chat-journal entries (their journal ids kept: Blink holds them).
    pub chat_entries: usize,
}

/// Copies everything from `from` into the empty `to`.
pub async fn copy_all(
    from: &Arc<dyn Store>,
    to: &Arc<dyn Store>,
    now: DateTime<Utc>,
) -> anyhow::Result<CopyReport> {
    if !to.list_domains().await?.is_empty() || !to.list_accounts(None).await?.is_empty() {
        bail!("the target database is not empty; copy only into a new database");
    }
    let mut report = CopyReport::default();
    for d in from.list_domains().await? {
        to.add_domain(&d, now)
            .await
            .with_context(|| format!("domain {d}"))?;
        report.domains += 1;
    }
    let rates = from.list_rates().await?;
    report.rates = usize::try_from(to.import_rates(&rates, true).await?).unwrap_or_default();
    let accounts = from.list_accounts(None).await?;
    for a in &accounts {
        let credentials = from
            .get_credentials(&a.id)
            .await?
            .with_context(|| format!("account {} has no credentials", a.id))?;
        to.insert_account(a, &credentials, &[])
            .await
            .with_context(|| format!("account {}", a.id))?;
        report.accounts += 1;
    }
    for c in from.list_certificates(None).await? {
        to.insert_certificate(&c)
            .await
            .with_context(|| format!("certificate {}", c.serial))?;
        report.certificates += 1;
    }
    for (alias, owner) in from.list_aliases(None).await? {
        to.add_alias(&alias, &owner, u32::MAX)
            .await
            .with_context(|| format!("alias {alias}"))?;
        report.aliases += 1;
    }
    for (number, owner) in from.list_enum(None).await? {
        to.add_enum(&number, &owner)
            .await
            .with_context(|| format!("ENUM {number}"))?;
        report.enum_numbers += 1;
    }
    for a in &accounts {
        copy_settings(from, to, &a.id)
            .await
            .with_context(|| format!("settings of {}", a.id))?;
        let billing = from.export_billing(&a.id).await?;
        report.history += billing.history.len();
        to.import_billing(&a.id, &billing)
            .await
            .with_context(|| format!("balance of {}", a.id))?;
        report.chat_entries += copy_chat_journal(from, to, &a.id)
            .await
            .with_context(|| format!("chat journal of {}", a.id))?;
    }
    // Calls: gathered per account and direction, merged per (Call-ID, tags) so that a call
    // between two local accounts is one record with both parties.
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut calls: BTreeMap<(String, String, String), NewCall> = BTreeMap::new();
    for a in &accounts {
        for direction in [Direction::Placed, Direction::Received] {
            for record in from.list_calls(&a.id, direction, epoch, u32::MAX).await? {
                let key = (
                    record.call_id.clone(),
                    record.from_tag.clone(),
                    record.to_tag.clone(),
                );
                calls
                    .entry(key)
                    .or_insert_with(|| NewCall {
                        record,
                        parties: Vec::new(),
                    })
                    .parties
                    .push((a.id.clone(), direction));
            }
        }
    }
    let all: Vec<NewCall> = calls.into_values().collect();
    for chunk in all.chunks(1000) {
        report.calls += to
            .record_calls(chunk)
            .await?
            .into_iter()
            .filter(|n| *n)
            .count();
    }
    Ok(report)
}

/// Copies an account's chat journal, its journal ids kept, a page at a time.
async fn copy_chat_journal(
    from: &Arc<dyn Store>,
    to: &Arc<dyn Store>,
    account: &AccountId,
) -> anyhow::Result<usize> {
    let mut copied = 0;
    let mut after_id = 0;
    loop {
        let page = from
            .chat_entries(
                account,
                &ChatQuery {
                    after_id,
                    since: 0,
                    except_device: None,
                    limit: chat_journal::MAX_LIMIT,
                },
            )
            .await?;
        let Some(last) = page.last() else {
            return Ok(copied);
        };
        after_id = last.id;
        to.import_chat_entries(account, &page).await?;
        copied += page.len();
    }
}

async fn copy_settings(
    from: &Arc<dyn Store>,
    to: &Arc<dyn Store>,
    id: &AccountId,
) -> anyhow::Result<()> {
    // The rules and sets, and with them the seed view (their projection).
    let forwarding = from.get_forwarding(id).await?;
    if !forwarding.rules.is_empty() || !forwarding.is_plain() {
        to.set_forwarding(id, &forwarding).await?;
    }
    let accept = from.get_accept_rules(id).await?;
    for rule in &accept.persistent {
        to.put_accept_rule(id, rule).await?;
    }
    if let Some(t) = &accept.temporary {
        to.set_temporary_rule(id, Some(t)).await?;
    }
    for p in from.list_reject(id).await? {
        to.add_reject(id, &p).await?;
    }
    if let Some(v) = from.get_voicemail(id).await? {
        to.put_voicemail(id, &v).await?;
    }
    for e in from.list_phonebook(id).await? {
        to.put_phonebook_entry(id, &e).await?;
    }
    Ok(())
}
