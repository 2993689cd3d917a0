//! Prepaid cards on SQLite. A redemption is one write of the account on the single writer
//! connection ([`crate::group`]), so two redemptions of one card run one after another and the
//! second finds it used; the card's update is also conditional on `used_at IS NULL`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::ids::Domain;
use sip_settings_core::money::Money;
use sip_settings_core::store::Vouchers;
use sip_settings_core::stored::corrupt;
use sip_settings_core::voucher::{NewVoucher, Redeemed, Redemption, Voucher};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::account_write::insert_journal;
use crate::billing::{account_row, insert_history};
use crate::rows::map_err;

const SELECT: &str = "SELECT id, domain, value, number_hash, created_at, expires_at, created_by, \
                      disabled_at, used_by, used_at FROM vouchers";

fn voucher_from(r: &SqliteRow) -> Result<Voucher, StoreError> {
    let domain: String = r.try_get("domain").map_err(map_err)?;
    Ok(Voucher {
        id: r.try_get("id").map_err(map_err)?,
        domain: Domain::parse(&domain).map_err(|e| corrupt("voucher domain", e))?,
        value: Money::from_units(r.try_get("value").map_err(map_err)?),
        created_at: r.try_get("created_at").map_err(map_err)?,
        expires_at: r.try_get("expires_at").map_err(map_err)?,
        created_by: r.try_get("created_by").map_err(map_err)?,
        disabled_at: r.try_get("disabled_at").map_err(map_err)?,
        used_by: r.try_get("used_by").map_err(map_err)?,
        used_at: r.try_get("used_at").map_err(map_err)?,
    })
}

#[async_trait]
impl Vouchers for SqliteStore {
    async fn create_vouchers(&self, batch: &[NewVoucher]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.group.write().await?;
        let mut ids = Vec::with_capacity(batch.len());
        for v in batch {
            let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM domains WHERE name = ?")
                .bind(v.domain.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if known.is_none() {
                return Err(StoreError::NotFound(format!("domain {}", v.domain)));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO vouchers (domain, value, number_hash, created_at, expires_at, \
                 created_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(v.domain.as_str())
            .bind(v.value.units())
            .bind(&v.number_hash)
            .bind(v.created_at)
            .bind(v.expires_at)
            .bind(&v.created_by)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn list_vouchers(&self, domain: &Domain, limit: u32) -> Result<Vec<Voucher>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE domain = ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(domain.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(voucher_from).collect()
    }

    async fn get_voucher(&self, id: i64) -> Result<Option<Voucher>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.as_ref().map(voucher_from).transpose()
    }

    async fn disable_voucher(&self, id: i64, at: DateTime<Utc>) -> Result<Voucher, StoreError> {
        let mut tx = self.group.write().await?;
        let row = sqlx::query(&format!("{SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::NotFound(format!("voucher {id}")))?;
        let mut voucher = voucher_from(&row)?;
        if voucher.used_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "prepaid card {id} has been used already"
            )));
        }
        if voucher.disabled_at.is_none() {
            sqlx::query("UPDATE vouchers SET disabled_at = ? WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            voucher.disabled_at = Some(at);
        }
        tx.commit().await?;
        Ok(voucher)
    }

    async fn redeem_voucher(&self, r: &Redemption) -> Result<Redeemed, StoreError> {
        let at = r.journal.at;
        let mut tx = self.group.write_for(&r.account).await?;
        let (account_id, prepaid, balance) = account_row(&mut tx, &r.account).await?;
        let row = sqlx::query(&format!("{SELECT} WHERE id = ?"))
            .bind(r.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(Redeemed::Refused(
                sip_settings_core::voucher::VoucherRefusal::NoMatch,
            ));
        };
        let voucher = voucher_from(&row)?;
        let stored_hash: String = row.try_get("number_hash").map_err(map_err)?;
        if let Some(refusal) =
            voucher.refusal(&stored_hash, &r.number_hash, &r.account, prepaid, at)
        {
            return Ok(Redeemed::Refused(refusal));
        }
        let marked = sqlx::query(
            "UPDATE vouchers SET used_by = ?, used_at = ? WHERE id = ? AND used_at IS NULL \
             AND disabled_at IS NULL",
        )
        .bind(r.account.to_string())
        .bind(at)
        .bind(r.id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if marked.rows_affected() != 1 {
            return Ok(Redeemed::Refused(
                sip_settings_core::voucher::VoucherRefusal::Used,
            ));
        }
        let old = Money::from_units(balance);
        let new = old
            .checked_add(voucher.value)
            .ok_or_else(|| StoreError::Conflict("balance out of range".to_owned()))?;
        sqlx::query("UPDATE accounts SET balance = ? WHERE id = ?")
            .bind(new.units())
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let description = format!("Prepaid card {}", r.id);
        insert_history(
            &mut tx,
            account_id,
            at,
            "topup",
            &description,
            voucher.value,
            new,
            None,
        )
        .await?;
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
    }
}
