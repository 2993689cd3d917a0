//! Prepaid cards on PostgreSQL. A redemption is one transaction that locks the account row
//! first (as every balance change does), then the card's row (`FOR UPDATE`), so two redemptions
//! of one card run one after another and the second finds it used; the card's update is also
//! conditional on `used_at IS NULL`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::ids::Domain;
use sip_settings_core::money::Money;
use sip_settings_core::store::Vouchers;
use sip_settings_core::voucher::{NewVoucher, Redeemed, Redemption, Voucher, VoucherRefusal};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::account_write::insert_journal;
use crate::billing::{History, insert_history};
use crate::error::{Fail, Res, corrupt, reading, retrying};
use crate::{PgStore, lock_account};

const SELECT: &str = "SELECT id, domain, value, number_hash, created_at, expires_at, created_by, \
                      disabled_at, used_by, used_at FROM vouchers";

fn voucher_from(r: &PgRow) -> Res<Voucher> {
    let domain: String = r.try_get("domain")?;
    Ok(Voucher {
        id: r.try_get("id")?,
        domain: Domain::parse(&domain).map_err(|e| corrupt("voucher domain", e))?,
        value: Money::from_units(r.try_get("value")?),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        created_by: r.try_get("created_by")?,
        disabled_at: r.try_get("disabled_at")?,
        used_by: r.try_get("used_by")?,
        used_at: r.try_get("used_at")?,
    })
}

#[async_trait]
impl Vouchers for PgStore {
    async fn create_vouchers(&self, batch: &[NewVoucher]) -> Result<Vec<i64>, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let mut ids = Vec::with_capacity(batch.len());
            for v in batch {
                let known: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM domains WHERE name = $1")
                        .bind(v.domain.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if known.is_none() {
                    return Err(Fail::Store(StoreError::NotFound(format!(
                        "domain {}",
                        v.domain
                    ))));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO vouchers (domain, value, number_hash, created_at, expires_at, \
                     created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(v.domain.as_str())
                .bind(v.value.units())
                .bind(&v.number_hash)
                .bind(v.created_at)
                .bind(v.expires_at)
                .bind(&v.created_by)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(ids)
        })
        .await
    }

    async fn list_vouchers(&self, domain: &Domain, limit: u32) -> Result<Vec<Voucher>, StoreError> {
        reading(|| async move {
            let rows = sqlx::query(&format!(
                "{SELECT} WHERE domain = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(domain.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(voucher_from).collect()
        })
        .await
    }

    async fn get_voucher(&self, id: i64) -> Result<Option<Voucher>, StoreError> {
        reading(|| async move {
            let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(voucher_from).transpose()
        })
        .await
    }

    async fn disable_voucher(&self, id: i64, at: DateTime<Utc>) -> Result<Voucher, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(&format!("{SELECT} WHERE id = $1 FOR UPDATE"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Fail::Store(StoreError::NotFound(format!("voucher {id}"))))?;
            let mut voucher = voucher_from(&row)?;
            if voucher.used_at.is_some() {
                return Err(Fail::Store(StoreError::Conflict(format!(
                    "prepaid card {id} has been used already"
                ))));
            }
            if voucher.disabled_at.is_none() {
                sqlx::query("UPDATE vouchers SET disabled_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                voucher.disabled_at = Some(at);
            }
            tx.commit().await?;
            Ok(voucher)
        })
        .await
    }

    async fn redeem_voucher(&self, r: &Redemption) -> Result<Redeemed, StoreError> {
        retrying(|| async move {
            let at = r.journal.at;
            let mut tx = self.pool.begin().await?;
            let (account_id, prepaid, balance) = lock_account(&mut tx, &r.account).await?;
            let row = sqlx::query(&format!("{SELECT} WHERE id = $1 FOR UPDATE"))
                .bind(r.id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Redeemed::Refused(VoucherRefusal::NoMatch));
            };
            let voucher = voucher_from(&row)?;
            let stored_hash: String = row.try_get("number_hash")?;
            if let Some(refusal) =
                voucher.refusal(&stored_hash, &r.number_hash, &r.account, prepaid, at)
            {
                return Ok(Redeemed::Refused(refusal));
            }
            let marked = sqlx::query(
                "UPDATE vouchers SET used_by = $1, used_at = $2 WHERE id = $3 \
                 AND used_at IS NULL AND disabled_at IS NULL",
            )
            .bind(r.account.to_string())
            .bind(at)
            .bind(r.id)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() != 1 {
                return Ok(Redeemed::Refused(VoucherRefusal::Used));
            }
            let old = Money::from_units(balance);
            let new = old.checked_add(voucher.value).ok_or_else(|| {
                Fail::Store(StoreError::Conflict("balance out of range".to_owned()))
            })?;
            sqlx::query("UPDATE accounts SET balance = $1 WHERE id = $2")
                .bind(new.units())
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            let description = format!("Prepaid card {}", r.id);
            let entry = History {
                at,
                action: "topup",
                description: &description,
                value: voucher.value,
                balance: new,
                session: None,
            };
            insert_history(&mut tx, account_id, entry).await?;
            insert_journal(
                &mut tx,
                &[
                    r.journal.balance_entry(&r.account, old, new),
                    r.journal.entry(
                        &r.account,
                        "voucher",
                        None,
                        Some(format!("prepaid card {} redeemed: {}", r.id, voucher.value)),
                    ),
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Redeemed::Credited {
                value: voucher.value,
                balance: new,
            })
        })
        .await
    }
}
