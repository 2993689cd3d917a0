//! [`Addresses`] for [`PgStore`]: aliases and ENUM numbers.

use async_trait::async_trait;
use sip_settings_core::StoreError;
use sip_settings_core::ids::{AccountId, E164};
use sip_settings_core::store::Addresses;
use sqlx::Row;

use crate::PgStore;
use crate::error::{corrupt, reading, retrying};
use crate::read_cache::Cached;
use crate::rows::account_id_from;

#[async_trait]
impl Addresses for PgStore {
    async fn resolve_address(&self, address: &AccountId) -> Result<Option<AccountId>, StoreError> {
        let ticket = match self.cache.address(address) {
            Cached::Hit(owner) => return Ok(owner),
            Cached::Miss(ticket) => ticket,
        };
        let owner = reading(|| async move {
            let row = sqlx::query(
                "SELECT a.username, a.domain FROM sip_addresses s \
                 JOIN accounts a ON a.id = s.account_id WHERE s.domain = $1 AND s.username = $2",
            )
            .bind(address.domain().as_str())
            .bind(address.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| account_id_from(&r, "username", "domain"))
                .transpose()
        })
        .await?;
        self.cache.keep_address(ticket, address, &owner);
        Ok(owner)
    }

    async fn list_aliases(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(AccountId, AccountId)>, StoreError> {
        let base = "SELECT s.username AS alias_user, s.domain AS alias_domain, a.username, \
                    a.domain FROM sip_addresses s JOIN accounts a ON a.id = s.account_id \
                    WHERE s.is_alias";
        retrying(|| async move {
            let rows = match account {
                Some(id) => {
                    sqlx::query(&format!(
                        "{base} AND a.domain = $1 AND a.username = $2 \
                         ORDER BY s.domain, s.username"
                    ))
                    .bind(id.domain().as_str())
                    .bind(id.user().as_str())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!("{base} ORDER BY s.domain, s.username"))
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            rows.iter()
                .map(|r| {
                    Ok((
                        account_id_from(r, "alias_user", "alias_domain")?,
                        account_id_from(r, "username", "domain")?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn list_enum(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(E164, AccountId)>, StoreError> {
        let base = "SELECT e.number, a.username, a.domain FROM enum_numbers e \
                    JOIN accounts a ON a.id = e.account_id";
        retrying(|| async move {
            let rows = match account {
                Some(id) => {
                    sqlx::query(&format!(
                        "{base} WHERE a.domain = $1 AND a.username = $2 ORDER BY e.number"
                    ))
                    .bind(id.domain().as_str())
                    .bind(id.user().as_str())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!("{base} ORDER BY e.number"))
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            rows.iter()
                .map(|r| {
                    let n: String = r.try_get("number")?;
                    Ok((
                        E164::parse_for("number", &n).map_err(|e| corrupt("ENUM number", e))?,
                        account_id_from(r, "username", "domain")?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn resolve_enum(&self, number: &E164) -> Result<Option<AccountId>, StoreError> {
        let ticket = match self.cache.number(number) {
            Cached::Hit(owner) => return Ok(owner),
            Cached::Miss(ticket) => ticket,
        };
        let owner = reading(|| async move {
            let row = sqlx::query(
                "SELECT a.username, a.domain FROM enum_numbers e \
                 JOIN accounts a ON a.id = e.account_id WHERE e.number = $1",
            )
            .bind(number.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| account_id_from(&r, "username", "domain"))
                .transpose()
        })
        .await?;
        self.cache.keep_number(ticket, number, &owner);
        Ok(owner)
    }
}
