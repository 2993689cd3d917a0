//! `/v1/admin/aliases` and `/v1/admin/enum`: aliases and ENUM numbers of every account (tag
//! `admin aliases`). Twins of `alias add|remove|list` and `enum add|remove|list`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::{AccountId, E164};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors};
use crate::v1::error::{ApiError, ApiResult};
use crate::v1::extract::{JsonBody, PathParam, query};
use crate::v1::view::{created, encode_segment};

/// An alias and the account it reaches.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasEntryView {
    /// `alias@domain`.
    pub alias: String,
    /// `user@domain` of the account.
    pub account: String,
}

/// Aliases (`GET /v1/admin/aliases`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAliasesView {
    /// The aliases, sorted by alias.
    pub aliases: Vec<AliasEntryView>,
}

/// A new alias (`POST /v1/admin/aliases`): it must be in the account's domain and free.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminAliasBody {
    /// `alias@domain`.
    #[schema(
        max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub alias: String,
    /// `user@domain` of the account it reaches.
    #[schema(
        max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub account: String,
}

/// A number and the account it reaches.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnumEntryView {
    /// `+E164`.
    pub number: String,
    /// `user@domain` of the account.
    pub account: String,
}

/// ENUM numbers (`GET /v1/admin/enum`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminEnumView {
    /// The numbers, sorted.
    pub numbers: Vec<EnumEntryView>,
}

/// A new ENUM number (`POST /v1/admin/enum`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminEnumBody {
    /// `+E164`: `+`, then 2 to 15 digits, the first not 0.
    #[schema(pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub number: String,
    /// `user@domain` of the account it reaches.
    #[schema(
        max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub account: String,
}

/// The `account` query parameter, if given.
fn account_filter(raw: Option<&str>) -> Result<Option<AccountId>, ApiError> {
    let q = query(raw, &["account"])?;
    Ok(q.get("account")
        .map(|a| AccountId::parse_for("account", a))
        .transpose()?)
}

/// Every alias, or one account's. Twin of `alias list [USER@DOMAIN]`.
#[utoipa::path(get, path = "/v1/admin/aliases", tag = "admin aliases",
    params(("account" = Option<String>, Query, description = "Only this account's (`user@domain`)", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Aliases", body = AdminAliasesView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_aliases(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let account = account_filter(raw.as_deref())?;
    let mut aliases: Vec<AliasEntryView> = admin
        .services(&state)
        .list_aliases(account.as_ref())
        .await?
        .iter()
        .map(|(alias, owner)| AliasEntryView {
            alias: alias.to_string(),
            account: owner.to_string(),
        })
        .collect();
    aliases.sort_by(|a, b| a.alias.cmp(&b.alias));
    Ok(etag::read(&headers, &AdminAliasesView { aliases }))
}

/// Adds an alias to an account (same domain; 409 when taken or at the account's limit). Twin
/// of `alias add ALIAS USER@DOMAIN`.
#[utoipa::path(post, path = "/v1/admin/aliases", tag = "admin aliases",
    request_body(content = AdminAliasBody, content_type = "application/json"),
    responses((status = 201, description = "Added", body = AliasEntryView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The alias"))), AdminWriteErrors))]
pub(super) async fn admin_add_alias(
    State(state): State<AppState>,
    admin: AdminClient,
    JsonBody(b): JsonBody<AdminAliasBody>,
) -> ApiResult {
    let alias = AccountId::parse_for("alias", &b.alias)?;
    let id = AccountId::parse_for("account", &b.account)?;
    admin.services(&state).add_alias(&alias, &id).await?;
    Ok(created(
        &format!("/v1/admin/aliases/{}", encode_segment(&alias.to_string())),
        &AliasEntryView {
            alias: alias.to_string(),
            account: id.to_string(),
        },
    ))
}

/// Removes an alias. Twin of `alias remove ALIAS`.
#[utoipa::path(delete, path = "/v1/admin/aliases/{alias}", tag = "admin aliases",
    params(("alias" = String, Path, description = "`alias@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 204, description = "Removed"), AdminWriteErrors))]
pub(super) async fn admin_remove_alias(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let alias = AccountId::parse_for("alias", &path)?;
    admin.services(&state).remove_alias(&alias).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every ENUM number, or one account's. Twin of `enum list [USER@DOMAIN]`.
#[utoipa::path(get, path = "/v1/admin/enum", tag = "admin aliases",
    params(("account" = Option<String>, Query, description = "Only this account's (`user@domain`)", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "ENUM numbers", body = AdminEnumView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_enum(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let account = account_filter(raw.as_deref())?;
    let mut numbers: Vec<EnumEntryView> = admin
        .services(&state)
        .list_enum(account.as_ref())
        .await?
        .iter()
        .map(|(number, owner)| EnumEntryView {
            number: number.to_string(),
            account: owner.to_string(),
        })
        .collect();
    numbers.sort_by(|a, b| a.number.cmp(&b.number));
    Ok(etag::read(&headers, &AdminEnumView { numbers }))
}

/// Maps a number to an account (409 when it is mapped already). Twin of
/// `enum add +E164 USER@DOMAIN`.
#[utoipa::path(post, path = "/v1/admin/enum", tag = "admin aliases",
    request_body(content = AdminEnumBody, content_type = "application/json"),
    responses((status = 201, description = "Mapped", body = EnumEntryView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The number"))), AdminWriteErrors))]
pub(super) async fn admin_add_enum(
    State(state): State<AppState>,
    admin: AdminClient,
    JsonBody(b): JsonBody<AdminEnumBody>,
) -> ApiResult {
    let number = E164::parse_for("number", &b.number)?;
    let id = AccountId::parse_for("account", &b.account)?;
    admin.services(&state).add_enum(&number, &id).await?;
    Ok(created(
        &format!("/v1/admin/enum/{}", encode_segment(&number.to_string())),
        &EnumEntryView {
            number: number.to_string(),
            account: id.to_string(),
        },
    ))
}

/// Removes a number's mapping. Twin of `enum remove +E164`.
#[utoipa::path(delete, path = "/v1/admin/enum/{number}", tag = "admin aliases",
    params(("number" = String, Path, description = "`+E164`", pattern = "^\\+[1-9][0-9]{1,14}$")),
    responses((status = 204, description = "Removed"), AdminWriteErrors))]
pub(super) async fn admin_remove_enum(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let number = E164::parse_for("number", &path)?;
    admin.services(&state).remove_enum(&number).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
