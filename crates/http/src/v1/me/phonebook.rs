//! `/v1/me/phonebook`: contacts and their groups (tag `phonebook`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sip_settings_core::account::parse_name;
use sip_settings_core::settings::{PhonebookEntry, parse_contact_uri, parse_phonebook_groups};
use sip_settings_core::sip::SipUri;
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

/// A phonebook entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhonebookEntryView {
    /// The contact's SIP URI.
    pub uri: String,
    /// Display name.
    pub name: String,
    /// Phonebook groups (accept rules name them).
    pub groups: Vec<String>,
}

/// The phonebook (`GET /v1/me/phonebook`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PhonebookView {
    /// Entries, by URI.
    pub entries: Vec<PhonebookEntryView>,
    /// All groups used, sorted.
    pub groups: Vec<String>,
}

/// A new entry (`POST /v1/me/phonebook`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhonebookPost {
    /// `sip:user@host` or `user@host`.
    pub uri: String,
    /// Display name (at most 64 characters).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub name: Option<String>,
    /// At least one named group (`[a-z0-9][a-z0-9_.-]{0,31}`).
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
}

/// An entry (`PUT /v1/me/phonebook/{uri}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhonebookPut {
    /// Display name (at most 64 characters).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub name: Option<String>,
    /// At least one named group.
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
}

fn entry_view(e: &PhonebookEntry) -> PhonebookEntryView {
    PhonebookEntryView {
        uri: e.uri.to_string(),
        name: e.name.clone(),
        groups: e.groups.clone(),
    }
}

async fn phonebook_view(s: &Services, id: &AccountId) -> Result<PhonebookView, ServiceError> {
    s.account(id).await?;
    let mut entries: Vec<PhonebookEntryView> =
        s.phonebook(id).await?.iter().map(entry_view).collect();
    entries.sort_by(|a, b| a.uri.cmp(&b.uri));
    Ok(PhonebookView {
        entries,
        groups: s.phonebook_groups(id).await?,
    })
}

async fn entry_of(
    s: &Services,
    id: &AccountId,
    uri: &SipUri,
) -> Result<Option<PhonebookEntryView>, ServiceError> {
    Ok(s.phonebook(id)
        .await?
        .iter()
        .find(|e| &e.uri == uri)
        .map(entry_view))
}

fn make_entry(
    uri: SipUri,
    name: Option<&str>,
    groups: &[String],
) -> Result<PhonebookEntry, ServiceError> {
    Ok(PhonebookEntry {
        uri,
        name: parse_name("name", name.unwrap_or_default())?,
        groups: parse_phonebook_groups(groups).map_err(|e| e.renamed("groups"))?,
    })
}

fn contact_of(path: String) -> Result<SipUri, ApiError> {
    let raw = path;
    Ok(parse_contact_uri(&raw)?)
}

/// The phonebook.
#[utoipa::path(get, path = "/v1/me/phonebook", tag = "phonebook",
    responses((status = 200, description = "Phonebook", body = PhonebookView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_phonebook(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &phonebook_view(&state.services, &me.account).await?,
    ))
}

/// Adds an entry (409 if the URI is listed already; use PUT on the entry to replace it).
#[utoipa::path(post, path = "/v1/me/phonebook", tag = "phonebook",
    params(("If-Match" = Option<String>, Header, description = "ETag of the phonebook read before; 412 if stale")),
    request_body(content = PhonebookPost, content_type = "application/json"),
    responses((status = 201, description = "Added", body = PhonebookEntryView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The entry"))), WriteErrors))]
pub(super) async fn post_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<PhonebookPost>,
) -> ApiResult {
    let entry = make_entry(parse_contact_uri(&b.uri)?, b.name.as_deref(), &b.groups)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&phonebook_view(&s, &me.account).await?))?;
    if entry_of(&s, &me.account, &entry.uri).await?.is_some() {
        return Err(ApiError::from(ServiceError::Conflict(format!(
            "uri {} is in the phonebook already",
            entry.uri
        ))));
    }
    s.put_phonebook_entry(&me.account, &entry).await?;
    s.commit().await?;
    Ok(created(
        &format!(
            "/v1/me/phonebook/{}",
            encode_segment(&entry.uri.to_string())
        ),
        &entry_view(&entry),
    ))
}

/// One phonebook entry.
#[utoipa::path(get, path = "/v1/me/phonebook/{uri}", tag = "phonebook",
    params(("uri" = String, Path, description = "The contact's URI (`sip:user@host` or `user@host`), percent-encoded")),
    responses((status = 200, description = "The entry", body = PhonebookEntryView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let uri = contact_of(path)?;
    match entry_of(&state.services, &me.account, &uri).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("no phonebook entry {uri}"))),
    }
}

/// Creates (201) or replaces (200) a phonebook entry.
#[utoipa::path(put, path = "/v1/me/phonebook/{uri}", tag = "phonebook",
    params(("uri" = String, Path, description = "The contact's URI, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = PhonebookPut, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = PhonebookEntryView,
            headers(("ETag" = String, description = "Entity tag of the new representation"))),
        (status = 201, description = "Created", body = PhonebookEntryView,
            headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The entry"))),
        WriteErrors))]
pub(super) async fn put_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<PhonebookPut>,
) -> ApiResult {
    let uri = contact_of(path)?;
    let entry = make_entry(uri, b.name.as_deref(), &b.groups)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    let current = entry_of(&s, &me.account, &entry.uri).await?;
    etag::check(&headers, current.as_ref())?;
    s.put_phonebook_entry(&me.account, &entry).await?;
    s.commit().await?;
    Ok(if current.is_some() {
        etag::reply(StatusCode::OK, &entry_view(&entry))
    } else {
        created(
            &format!(
                "/v1/me/phonebook/{}",
                encode_segment(&entry.uri.to_string())
            ),
            &entry_view(&entry),
        )
    })
}

/// Removes a phonebook entry.
#[utoipa::path(delete, path = "/v1/me/phonebook/{uri}", tag = "phonebook",
    params(("uri" = String, Path, description = "The contact's URI, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
pub(super) async fn delete_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let uri = contact_of(path)?;
    remove_item(
        &state,
        &me,
        &headers,
        format!("phonebook entry {uri}"),
        async |s, id| entry_of(s, id, &uri).await,
        async |s, id| s.remove_phonebook_entry(id, &uri).await,
    )
    .await
}
