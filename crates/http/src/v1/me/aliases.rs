//! `/v1/me/aliases` and `/v1/me/enum`: aliases and ENUM numbers (tag `aliases`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, not_found};
use crate::v1::extract::{JsonBody, PathParam};
use crate::v1::view::{created, encode_segment};

/// The aliases of the account (`GET /v1/me/aliases`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasesView {
    /// `alias@domain`, sorted.
    pub aliases: Vec<String>,
    /// How many aliases an account may have.
    pub limit: u32,
}

/// One alias.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasView {
    /// `alias@domain`.
    pub alias: String,
}

/// A new alias (`POST /v1/me/aliases`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasBody {
    /// The user part: `[a-z0-9][a-z0-9._-]{0,63}` (lower-cased); the alias is
    /// `username@<own domain>`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub username: String,
}

async fn aliases_view(s: &Services, id: &AccountId) -> Result<AliasesView, ServiceError> {
    s.account(id).await?;
    let mut aliases: Vec<String> = s
        .aliases(id)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    aliases.sort();
    Ok(AliasesView {
        aliases,
        limit: s.config().alias_limit,
    })
}

/// The alias named in the path: `name@domain`, or a bare `name` in the own domain.
fn alias_of(me: &Subscriber, path: String) -> Result<AccountId, ApiError> {
    let raw = path;
    let full = if raw.contains('@') {
        raw
    } else {
        format!("{raw}@{}", me.account.domain())
    };
    Ok(AccountId::parse_for("alias", &full)?)
}

async fn alias_view(
    s: &Services,
    id: &AccountId,
    alias: &AccountId,
) -> Result<Option<AliasView>, ServiceError> {
    Ok(s.aliases(id)
        .await?
        .iter()
        .find(|a| *a == alias)
        .map(|a| AliasView {
            alias: a.to_string(),
        }))
}

/// The aliases of the account.
#[utoipa::path(get, path = "/v1/me/aliases", tag = "aliases",
    responses((status = 200, description = "Aliases", body = AliasesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_aliases(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &aliases_view(&state.services, &me.account).await?,
    ))
}

/// Adds `username@<own domain>` as an alias (409 if taken or at the limit).
#[utoipa::path(post, path = "/v1/me/aliases", tag = "aliases",
    params(("If-Match" = Option<String>, Header, description = "ETag of the list read before; 412 if stale")),
    request_body(content = AliasBody, content_type = "application/json"),
    responses((status = 201, description = "Added", body = AliasView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The alias"))), WriteErrors))]
pub(super) async fn post_alias(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<AliasBody>,
) -> ApiResult {
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&aliases_view(&s, &me.account).await?))?;
    let alias = s.add_own_alias(&me.account, &b.username).await?;
    s.commit().await?;
    Ok(created(
        &format!("/v1/me/aliases/{}", encode_segment(&alias.to_string())),
        &AliasView {
            alias: alias.to_string(),
        },
    ))
}

/// One alias of the account.
#[utoipa::path(get, path = "/v1/me/aliases/{alias}", tag = "aliases",
    params(("alias" = String, Path, description = "`alias@domain` or the bare user part")),
    responses((status = 200, description = "The alias", body = AliasView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_alias(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let alias = alias_of(&me, path)?;
    match alias_view(&state.services, &me.account, &alias).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("{} has no alias {alias}", me.account))),
    }
}

/// Removes one of the account's own aliases (another account's alias is 404).
#[utoipa::path(delete, path = "/v1/me/aliases/{alias}", tag = "aliases",
    params(("alias" = String, Path, description = "`alias@domain` or the bare user part"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
pub(super) async fn delete_alias(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let alias = alias_of(&me, path)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    let current = alias_view(&s, &me.account, &alias).await?;
    if current.is_some() {
        etag::check(&headers, current.as_ref())?;
    }
    s.remove_own_alias(&me.account, &alias).await?;
    s.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The ENUM numbers of the account (`GET /v1/me/enum`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EnumView {
    /// `+E164` numbers mapped to the account by the operator, sorted.
    pub numbers: Vec<String>,
}

/// The ENUM numbers mapped to the account.
#[utoipa::path(get, path = "/v1/me/enum", tag = "aliases",
    responses((status = 200, description = "ENUM numbers", body = EnumView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_enum(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    let mut numbers: Vec<String> = state
        .services
        .enum_numbers(&me.account)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    numbers.sort();
    Ok(etag::read(&headers, &EnumView { numbers }))
}
