//! `add_balance&id=N&number=DIGITS` (CDRTool's prepaid card top-up): redeems a prepaid card
//! for the calling account through [`Services::redeem_voucher`] and answers CDRTool's status
//! object, `"Added balance succeeded"`, with the card's `value`, the new `balance` (decimal
//! strings) and the `currency` beside it.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sip_settings_core::{AccountId, ServiceError, Services};

use crate::params::Params;

/// The success reply of `add_balance`: the status object and three extra keys.
#[derive(Debug, Serialize)]
struct AddBalanceReply {
    success: bool,
    error_message: &'static str,
    value: String,
    balance: String,
    currency: String,
}

/// `add_balance`: `id` and `number` of a prepaid card of the account's domain.
pub async fn add_balance(
    services: &Services,
    account: &AccountId,
    params: &Params,
) -> Result<Response, ServiceError> {
    let (value, balance) = services
        .redeem_voucher(account, params.get("id"), params.get("number"))
        .await?;
    Ok(Json(AddBalanceReply {
        success: true,
        error_message: "Added balance succeeded",
        value: value.to_string(),
        balance: balance.to_string(),
        currency: services.config().currency.clone(),
    })
    .into_response())
}
