//! `/v1/me/forwarding-rules` and `/v1/me/forwarding-sets`: forwarding rules with conditions
//! (issue 19, tag `forwarding`). The rules are ordered — the first that applies to a call
//! decides it — and name shared sets (time, caller, called). Every write is checked whole by
//! `Services::set_forwarding` (references, bounds, every destination, loops) while the
//! account's lock is held from the `If-Match` check to the commit; a rule that can never apply
//! is kept and carries its `warnings`.
//!
//! The seed's five conditions (`/v1/me/diversions`, `action=diversions`) are the simple rules
//! among these: changing a condition there changes its simple rule here, and the rules here
//! show there as the first simple rule of each condition.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::forwarding::{
    CalledSetDoc, CallerSetDoc, DOCUMENT_VERSION, Document, Forwarding, RuleDoc, TimeSetDoc,
    shadowed,
};
use sip_settings_core::write::Holding;
use sip_settings_core::{AccountId, ServiceError};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, invalid, not_found};
use crate::v1::extract::{JsonBody, PathParam, query};
use crate::v1::view::created;

/// The account's rules, first to last (`GET /v1/me/forwarding-rules`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesView {
    /// The rules: the first that applies to a call decides it. Each carries `warnings` when
    /// it can never apply.
    pub rules: Vec<RuleDoc>,
}

/// All rules at once, in their new order (`PUT /v1/me/forwarding-rules`): a rule with the `id`
/// of an existing rule replaces it, one without gets a new id, an existing rule left out is
/// removed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesPut {
    /// The rules, first to last.
    pub rules: Vec<RuleDoc>,
}

/// The account's named sets (`GET`/`PUT /v1/me/forwarding-sets`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetsView {
    /// Time sets by name.
    #[serde(default)]
    pub time_sets: BTreeMap<String, TimeSetDoc>,
    /// Caller sets by name.
    #[serde(default)]
    pub caller_sets: BTreeMap<String, CallerSetDoc>,
    /// Called sets by name.
    #[serde(default)]
    pub called_sets: BTreeMap<String, CalledSetDoc>,
}

fn rules_view(f: &Forwarding) -> RulesView {
    let warnings = shadowed(&f.rules);
    RulesView {
        rules: f
            .document()
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| RuleDoc {
                warnings: warnings
                    .iter()
                    .filter(|(at, _)| *at == i)
                    .map(|(_, w)| w.clone())
                    .collect(),
                ..rule
            })
            .collect(),
    }
}

fn sets_view(f: &Forwarding) -> SetsView {
    let doc = f.document();
    SetsView {
        time_sets: doc.time_sets,
        caller_sets: doc.caller_sets,
        called_sets: doc.called_sets,
    }
}

/// The forwarding of these rules and sets, for `id` (every field checked; targets as the seed's
/// conditions take them).
fn forwarding_of(
    id: &AccountId,
    rules: Vec<RuleDoc>,
    sets: SetsView,
) -> Result<Forwarding, ServiceError> {
    Document {
        v: DOCUMENT_VERSION,
        rules,
        time_sets: sets.time_sets,
        caller_sets: sets.caller_sets,
        called_sets: sets.called_sets,
    }
    .forwarding_of(id)
}

/// The view of the rule `rule` of `f`, if there is one.
fn rule_view(f: &Forwarding, rule: u32) -> Option<RuleDoc> {
    rules_view(f).rules.into_iter().find(|r| r.id == Some(rule))
}

/// The rule id of a path segment.
fn rule_id(path: &str) -> Result<u32, ServiceError> {
    sip_settings_core::ids::whole_number(path)
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ServiceError::invalid(
                "id",
                format!(
                    "'{}' is not a rule id (a whole number from 1)",
                    sip_settings_core::ids::printable(path)
                ),
            )
        })
}

/// Holds the account (its lock, until [`write`] commits), reads its forwarding and checks
/// `If-Match` against `view` of it (which may refuse: a rule that is not there).
async fn hold_checked<V: Serialize>(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    view: impl FnOnce(&Forwarding) -> Result<V, ApiError>,
) -> Result<(Holding, Arc<Forwarding>), ApiError> {
    let s = me.services(state).hold(&me.account).await?;
    let current = s.forwarding(&me.account).await?;
    etag::check(headers, Some(&view(&current)?))?;
    Ok((s, current))
}

/// The view of the rule `id` of `f`, or 404.
fn existing_rule(f: &Forwarding, id: u32) -> Result<RuleDoc, ApiError> {
    rule_view(f, id).ok_or_else(|| not_found(format!("no forwarding rule {id}")))
}

/// Checks, writes and commits `new` for the held account; the view of the result.
async fn write(s: &Holding, id: &AccountId, new: Forwarding) -> Result<Forwarding, ServiceError> {
    s.set_forwarding(id, new.clone()).await?;
    s.commit().await?;
    Ok(new)
}

/// The account's forwarding rules, first to last.
#[utoipa::path(get, path = "/v1/me/forwarding-rules", tag = "forwarding",
    responses((status = 200, description = "The rules", body = RulesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_rules(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    let f = state.services.forwarding(&me.account).await?;
    Ok(etag::read(&headers, &rules_view(&f)))
}

/// Replaces all rules at once, in the order given (reordering is this): checked whole; a rule
/// that can never apply is kept and carries `warnings`.
#[utoipa::path(put, path = "/v1/me/forwarding-rules", tag = "forwarding",
    params(("If-Match" = Option<String>, Header, description = "ETag of the rules read before; 412 if stale")),
    request_body(content = RulesPut, content_type = "application/json"),
    responses((status = 200, description = "The rules now", body = RulesView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_rules(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<RulesPut>,
) -> ApiResult {
    let (s, current) = hold_checked(&state, &me, &headers, |f| Ok(rules_view(f))).await?;
    let new = forwarding_of(&me.account, b.rules, sets_view(&current))?;
    let new = write(&s, &me.account, new).await?;
    Ok(etag::reply(StatusCode::OK, &rules_view(&new)))
}

/// Adds a rule, last or at `position` (0 first): it gets a new id.
#[utoipa::path(post, path = "/v1/me/forwarding-rules", tag = "forwarding",
    params(("position" = Option<u32>, Query, minimum = 0, description = "Where the rule goes: 0 first, the number of rules (the default) last"),
        ("If-Match" = Option<String>, Header, description = "ETag of the rules read before; 412 if stale")),
    request_body(content = RuleDoc, content_type = "application/json"),
    responses((status = 201, description = "Added", body = RuleDoc,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The rule"))), WriteErrors))]
pub(super) async fn post_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    JsonBody(rule): JsonBody<RuleDoc>,
) -> ApiResult {
    let q = query(raw.as_deref(), &["position"])?;
    if rule.id.is_some() {
        return Err(invalid("id", "is given by the server; leave it out"));
    }
    let (s, current) = hold_checked(&state, &me, &headers, |f| Ok(rules_view(f))).await?;
    let mut rules = current.document().rules;
    let position = match q.get("position") {
        Some(p) => sip_settings_core::ids::whole_number::<usize>(p)
            .filter(|p| *p <= rules.len())
            .ok_or_else(|| {
                invalid(
                    "position",
                    format!("must be a whole number from 0 to {}", rules.len()),
                )
            })?,
        None => rules.len(),
    };
    rules.insert(position, rule);
    let new = forwarding_of(&me.account, rules, sets_view(&current))?;
    let new = write(&s, &me.account, new).await?;
    let id = new.rules.get(position).map_or(0, |r| r.id);
    let view = rule_view(&new, id)
        .ok_or_else(|| ServiceError::Internal("the rule added is not there".to_owned()))?;
    Ok(created(&format!("/v1/me/forwarding-rules/{id}"), &view))
}

/// One rule.
#[utoipa::path(get, path = "/v1/me/forwarding-rules/{id}", tag = "forwarding",
    params(("id" = u32, Path, minimum = 1, maximum = 4294967295_u64, description = "The rule's id")),
    responses((status = 200, description = "The rule", body = RuleDoc,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = rule_id(&path)?;
    let f = state.services.forwarding(&me.account).await?;
    Ok(etag::read(&headers, &existing_rule(&f, id)?))
}

/// Replaces a rule, keeping its place.
#[utoipa::path(put, path = "/v1/me/forwarding-rules/{id}", tag = "forwarding",
    params(("id" = u32, Path, minimum = 1, maximum = 4294967295_u64, description = "The rule's id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the rule read before; 412 if stale")),
    request_body(content = RuleDoc, content_type = "application/json"),
    responses((status = 200, description = "Replaced", body = RuleDoc,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(mut rule): JsonBody<RuleDoc>,
) -> ApiResult {
    let id = rule_id(&path)?;
    if rule.id.is_some_and(|given| given != id) {
        return Err(invalid(
            "id",
            format!("differs from the rule's id {id} in the path"),
        ));
    }
    rule.id = Some(id);
    rule.warnings.clear();
    let (s, current) = hold_checked(&state, &me, &headers, |f| existing_rule(f, id)).await?;
    let mut rules = current.document().rules;
    for r in &mut rules {
        if r.id == Some(id) {
            *r = rule.clone();
        }
    }
    let new = forwarding_of(&me.account, rules, sets_view(&current))?;
    let new = write(&s, &me.account, new).await?;
    let view = rule_view(&new, id)
        .ok_or_else(|| ServiceError::Internal("the rule replaced is not there".to_owned()))?;
    Ok(etag::reply(StatusCode::OK, &view))
}

/// Removes a rule.
#[utoipa::path(delete, path = "/v1/me/forwarding-rules/{id}", tag = "forwarding",
    params(("id" = u32, Path, minimum = 1, maximum = 4294967295_u64, description = "The rule's id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the rule read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
pub(super) async fn delete_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = rule_id(&path)?;
    let (s, current) = hold_checked(&state, &me, &headers, |f| existing_rule(f, id)).await?;
    let mut new = Forwarding::clone(&current);
    new.rules.retain(|r| r.id != id);
    write(&s, &me.account, new).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The account's named sets.
#[utoipa::path(get, path = "/v1/me/forwarding-sets", tag = "forwarding",
    responses((status = 200, description = "The sets", body = SetsView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_sets(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    let f = state.services.forwarding(&me.account).await?;
    Ok(etag::read(&headers, &sets_view(&f)))
}

/// Replaces all sets at once (adding, changing and removing sets): a set a rule names cannot
/// be removed (400 naming the rule).
#[utoipa::path(put, path = "/v1/me/forwarding-sets", tag = "forwarding",
    params(("If-Match" = Option<String>, Header, description = "ETag of the sets read before; 412 if stale")),
    request_body(content = SetsView, content_type = "application/json"),
    responses((status = 200, description = "The sets now", body = SetsView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_sets(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(sets): JsonBody<SetsView>,
) -> ApiResult {
    let (s, current) = hold_checked(&state, &me, &headers, |f| Ok(sets_view(f))).await?;
    let new = forwarding_of(&me.account, current.document().rules, sets)?;
    let new = write(&s, &me.account, new).await?;
    Ok(etag::reply(StatusCode::OK, &sets_view(&new)))
}
