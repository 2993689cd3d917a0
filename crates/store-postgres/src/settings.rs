//! [`Settings`] for [`PgStore`]: call settings.

use std::sync::Arc;

use async_trait::async_trait;
use sip_settings_core::StoreError;
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::AccountId;
use sip_settings_core::settings::{
    AcceptRule, AcceptRules, DaysMask, Diversions, PhonebookEntry, RejectPattern, TemporaryRule,
    Voicemail,
};
use sip_settings_core::sip::SipUri;
use sip_settings_core::store::Settings;
use sip_settings_core::stored;
use sqlx::Row;

use crate::ACCOUNT_ID;
use crate::PgStore;
use crate::error::{Res, corrupt, reading};
use crate::read_cache::Cached;
use crate::rows::{diversions_from, temporary_from, voicemail_from};

#[async_trait]
impl Settings for PgStore {
    async fn get_diversions(&self, account: &AccountId) -> Result<Diversions, StoreError> {
        let ticket = match self.cache.diversions(account) {
            Cached::Hit(diversions) => return Ok(diversions),
            Cached::Miss(ticket) => ticket,
        };
        self.note_hot_read();
        let diversions = reading(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT condition, target FROM diversions WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            let pairs = rows
                .iter()
                .map(|r| Ok((r.try_get("condition")?, r.try_get("target")?)))
                .collect::<Res<Vec<(String, String)>>>()?;
            diversions_from(pairs)
        })
        .await?;
        self.cache.keep_diversions(ticket, account, &diversions);
        Ok(diversions)
    }

    async fn get_forwarding(&self, account: &AccountId) -> Result<Arc<Forwarding>, StoreError> {
        let ticket = match self.cache.forwarding(account) {
            Cached::Hit(forwarding) => return Ok(forwarding),
            Cached::Miss(ticket) => ticket,
        };
        self.note_hot_read();
        let forwarding = reading(|| async move {
            // One statement: the document and the seed view as of one snapshot.
            let row = sqlx::query(&format!(
                "SELECT (SELECT document FROM forwarding_documents \
                 WHERE account_id = {ACCOUNT_ID}) AS document, \
                 ARRAY(SELECT condition FROM diversions WHERE account_id = {ACCOUNT_ID} \
                 ORDER BY condition) AS conditions, \
                 ARRAY(SELECT target FROM diversions WHERE account_id = {ACCOUNT_ID} \
                 ORDER BY condition) AS targets"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_one(&self.pool)
            .await?;
            let document: Option<String> = row.try_get("document")?;
            match document {
                Some(text) => {
                    Forwarding::from_stored(&text).map_err(|e| corrupt("forwarding document", e))
                }
                None => {
                    let conditions: Vec<String> = row.try_get("conditions")?;
                    let targets: Vec<String> = row.try_get("targets")?;
                    Ok(Forwarding::of_diversions(&diversions_from(
                        conditions.into_iter().zip(targets),
                    )?))
                }
            }
        })
        .await?;
        let forwarding = Arc::new(forwarding);
        self.cache.keep_forwarding(ticket, account, &forwarding);
        Ok(forwarding)
    }

    async fn get_accept_rules(&self, account: &AccountId) -> Result<AcceptRules, StoreError> {
        reading(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT days, start_minute, stop_minute, groups FROM accept_rules \
                 WHERE account_id = {ACCOUNT_ID} ORDER BY days"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            let mut persistent = Vec::with_capacity(rows.len());
            for r in rows {
                let days: i32 = r.try_get("days")?;
                let groups: String = r.try_get("groups")?;
                persistent.push(AcceptRule {
                    days: u32::try_from(days)
                        .ok()
                        .and_then(|d| DaysMask::new(d).ok())
                        .ok_or_else(|| corrupt("days mask", days))?,
                    start: stored::minute(r.try_get::<i32, _>("start_minute")?.into())?,
                    stop: stored::minute(r.try_get::<i32, _>("stop_minute")?.into())?,
                    groups: stored::groups(&groups)?,
                });
            }
            let temp = sqlx::query(&format!(
                "SELECT groups, until FROM accept_temporary WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            let temporary = match temp {
                Some(r) => {
                    let groups: String = r.try_get("groups")?;
                    Some(TemporaryRule {
                        groups: stored::groups(&groups)?,
                        until: r.try_get("until")?,
                    })
                }
                None => None,
            };
            Ok(AcceptRules {
                persistent,
                temporary,
            })
        })
        .await
    }

    async fn get_temporary_rule(
        &self,
        account: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        let ticket = match self.cache.temporary(account) {
            Cached::Hit(rule) => return Ok(rule),
            Cached::Miss(ticket) => ticket,
        };
        self.note_hot_read();
        let rule = reading(|| async move {
            let row = sqlx::query(&format!(
                "SELECT groups, until FROM accept_temporary WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some(r) => {
                    let groups: String = r.try_get("groups")?;
                    Ok(Some(temporary_from(&groups, r.try_get("until")?)?))
                }
                None => Ok(None),
            }
        })
        .await?;
        self.cache.keep_temporary(ticket, account, &rule);
        Ok(rule)
    }

    async fn list_reject(&self, account: &AccountId) -> Result<Vec<RejectPattern>, StoreError> {
        reading(|| async move {
            let patterns: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT pattern FROM reject_rules WHERE account_id = {ACCOUNT_ID} ORDER BY pattern"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            patterns
                .iter()
                .map(|p| RejectPattern::parse(p).map_err(|e| corrupt("reject pattern", e)))
                .collect()
        })
        .await
    }

    async fn get_voicemail(&self, account: &AccountId) -> Result<Option<Voicemail>, StoreError> {
        let ticket = match self.cache.voicemail(account) {
            Cached::Hit(voicemail) => return Ok(voicemail),
            Cached::Miss(ticket) => ticket,
        };
        let voicemail = reading(|| async move {
            let row = sqlx::query(&format!(
                "SELECT enabled, delivery, email, pin_hash FROM voicemail \
                 WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let delivery: String = r.try_get("delivery")?;
            Ok(Some(voicemail_from(
                r.try_get("enabled")?,
                &delivery,
                r.try_get("email")?,
                r.try_get("pin_hash")?,
            )?))
        })
        .await?;
        self.cache.keep_voicemail(ticket, account, &voicemail);
        Ok(voicemail)
    }

    async fn list_phonebook(&self, account: &AccountId) -> Result<Vec<PhonebookEntry>, StoreError> {
        reading(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT uri, name, groups FROM phonebook WHERE account_id = {ACCOUNT_ID} \
                 ORDER BY uri"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let uri: String = r.try_get("uri")?;
                    let groups: String = r.try_get("groups")?;
                    Ok(PhonebookEntry {
                        uri: SipUri::parse_for("uri", &uri)
                            .map_err(|e| corrupt("phonebook uri", e))?,
                        name: r.try_get("name")?,
                        groups: stored::phonebook_groups(&groups)?,
                    })
                })
                .collect()
        })
        .await
    }
}
