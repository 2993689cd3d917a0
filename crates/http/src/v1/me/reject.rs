//! `/v1/me/reject-rules`: callers that are refused (tag `reject rules`).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sip_settings_core::settings::RejectPattern;
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, not_found};
use crate::v1::extract::{JsonBody, PathParam};
use crate::v1::view::{created, encode_segment};
use crate::v1::write::remove_item;

/// The reject rules (`GET /v1/me/reject-rules`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectRulesView {
    /// Patterns `sip:user@domain` where `%` matches any run of characters, sorted.
    pub patterns: Vec<String>,
}

/// One reject rule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRuleView {
    /// The pattern, e.g. `sip:%0900@%` or `sip:spam@example.net`, or `anonymous` (refuses
    /// anonymous callers with 433).
    #[schema(pattern = "^[Ss][Ii][Pp]:[^@]+@.+$", max_length = 255)]
    pub pattern: String,
}

async fn reject_view(s: &Services, id: &AccountId) -> Result<RejectRulesView, ServiceError> {
    s.account(id).await?;
    let mut patterns: Vec<String> = s
        .reject_patterns(id)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    patterns.sort();
    Ok(RejectRulesView { patterns })
}

async fn reject_of(
    s: &Services,
    id: &AccountId,
    pattern: &RejectPattern,
) -> Result<Option<RejectRuleView>, ServiceError> {
    Ok(s.reject_patterns(id)
        .await?
        .iter()
        .find(|p| *p == pattern)
        .map(|p| RejectRuleView {
            pattern: p.to_string(),
        }))
}

fn pattern_of(path: String) -> Result<RejectPattern, ApiError> {
    Ok(RejectPattern::parse(&path)?)
}

/// The reject rules.
#[utoipa::path(get, path = "/v1/me/reject-rules", tag = "reject rules",
    responses((status = 200, description = "Reject rules", body = RejectRulesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_reject_rules(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &reject_view(&state.services, &me.account).await?,
    ))
}

/// Adds a reject rule (409 if it exists).
#[utoipa::path(post, path = "/v1/me/reject-rules", tag = "reject rules",
    params(("If-Match" = Option<String>, Header, description = "ETag of the list read before; 412 if stale")),
    request_body(content = RejectRuleView, content_type = "application/json"),
    responses((status = 201, description = "Added", body = RejectRuleView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The rule"))), WriteErrors))]
pub(super) async fn post_reject_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<RejectRuleView>,
) -> ApiResult {
    let pattern = RejectPattern::parse(&b.pattern)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&reject_view(&s, &me.account).await?))?;
    s.add_reject(&me.account, &pattern).await?;
    s.commit().await?;
    Ok(created(
        &format!("/v1/me/reject-rules/{}", encode_segment(pattern.as_str())),
        &RejectRuleView {
            pattern: pattern.to_string(),
        },
    ))
}

/// One reject rule (the pattern percent-encoded in the path: `%` is `%25`).
#[utoipa::path(get, path = "/v1/me/reject-rules/{pattern}", tag = "reject rules",
    params(("pattern" = String, Path, description = "The pattern, percent-encoded")),
    responses((status = 200, description = "The rule", body = RejectRuleView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_reject_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let pattern = pattern_of(path)?;
    match reject_of(&state.services, &me.account, &pattern).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("no reject rule {pattern}"))),
    }
}

/// Removes a reject rule.
#[utoipa::path(delete, path = "/v1/me/reject-rules/{pattern}", tag = "reject rules",
    params(("pattern" = String, Path, description = "The pattern, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
pub(super) async fn delete_reject_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let pattern = pattern_of(path)?;
    remove_item(
        &state,
        &me,
        &headers,
        format!("reject rule {pattern}"),
        async |s, id| reject_of(s, id, &pattern).await,
        async |s, id| s.remove_reject(id, &pattern).await,
    )
    .await
}
