//! The chat-journal actions of `settings.phtml` (`get_journal_entries`, `put_journal_entries`,
//! `delete_journal_entries`): Blink's chat-history replication between an account's devices,
//! with CDRTool's reply shapes as Blink reads them (`success`, `error_message`, `results`,
//! `rows`, `journal_id`, `summary`). Thin: parameters → [`sip_settings_core::chat_journal`] →
//! JSON. The rules and bounds live in core (docs/actions.md, "Chat-history replication").

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use sip_settings_core::chat_journal::{self, DeviceId};
use sip_settings_core::{AccountId, ServiceError, Services};

use crate::params::Params;

/// The body limit of `put_journal_entries` and `delete_journal_entries` when the query string
/// names the action (as Blink sends it): a batch of entries is larger than the endpoint's
/// usual [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
pub const MAX_CHAT_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Whether the raw query string names a chat-journal write action (decided before the body is
/// read, so only the query string counts).
fn names_chat_write(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair == "action=put_journal_entries" || pair == "action=delete_journal_entries"
        })
    })
}

/// The body limit for a request with this query string.
pub fn body_limit(query: Option<&str>) -> usize {
    if names_chat_write(query) {
        MAX_CHAT_BODY_BYTES
    } else {
        crate::MAX_BODY_BYTES
    }
}

/// The one parameter allowed past the usual value limit, with its limit, for a request with
/// this query string: `data` of a chat-journal write.
pub fn long_param(query: Option<&str>) -> Option<(&'static str, usize)> {
    names_chat_write(query).then_some(("data", MAX_CHAT_BODY_BYTES))
}

/// One entry of `results` of `get_journal_entries` (CDRTool's columns but `ip_address`,
/// which is not kept).
#[derive(Debug, Serialize)]
struct EntryObject<'a> {
    id: i64,
    source: &'static str,
    timestamp: i64,
    account: String,
    uuid: &'a str,
    data: &'a str,
}

/// One line of `summary`.
#[derive(Debug, Serialize)]
struct SummaryObject {
    journal_id: i64,
    timestamp: i64,
}

/// The reply of `get_journal_entries`.
#[derive(Debug, Serialize)]
struct GetReply<'a> {
    success: bool,
    rows: usize,
    results: Vec<EntryObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Vec<SummaryObject>>,
}

/// One entry of `results` of `put_journal_entries`: the client's id and the journal id.
#[derive(Debug, Serialize)]
struct PutResult {
    id: Value,
    journal_id: i64,
    source: &'static str,
}

/// The reply of `put_journal_entries`.
#[derive(Debug, Serialize)]
struct PutReply {
    success: bool,
    error_message: String,
    rows: usize,
    dropped: u64,
    results: Vec<PutResult>,
}

/// The reply of `delete_journal_entries`.
#[derive(Debug, Serialize)]
struct DeleteReply {
    success: bool,
    error_message: String,
    rows: u64,
}

fn entries(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 journal entry {what}")
    } else {
        format!("{n} journal entries {what}")
    }
}

/// `get_journal_entries`: the account's entries after `after_id` / from `after_timestamp`,
/// except those of `except_uuid`, at most `limit`, oldest first; with `summary=1` also every
/// entry's id and time.
pub async fn get(s: &Services, id: &AccountId, params: &Params) -> Result<Response, ServiceError> {
    let query = chat_journal::parse_query(
        params.get("after_id"),
        params.get("after_timestamp"),
        params.get("except_uuid"),
        params.get("limit"),
    )?;
    let summary = match params.get("summary") {
        None | Some("") | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(ServiceError::invalid("summary", "must be 1 or 0")),
    };
    let found = s.chat_entries(id, &query).await?;
    let summary = if summary {
        Some(
            s.chat_summary(id)
                .await?
                .iter()
                .map(|e| SummaryObject {
                    journal_id: e.id,
                    timestamp: e.timestamp.timestamp(),
                })
                .collect(),
        )
    } else {
        None
    };
    let results: Vec<EntryObject<'_>> = found
        .iter()
        .map(|e| EntryObject {
            id: e.id,
            source: "default",
            timestamp: e.timestamp.timestamp(),
            account: id.to_string(),
            uuid: e.device.as_str(),
            data: &e.data,
        })
        .collect();
    Ok(Json(GetReply {
        success: true,
        rows: results.len(),
        results,
        summary,
    })
    .into_response())
}

/// `put_journal_entries`: stores the entries of `data` sent by the device `uuid`.
pub async fn put(s: &Services, id: &AccountId, params: &Params) -> Result<Response, ServiceError> {
    let device = DeviceId::parse_for("uuid", params.get("uuid").unwrap_or_default())?;
    let rows = chat_journal::parse_put_rows(params.get("data").unwrap_or_default())?;
    let outcome = s.put_chat_entries(id, &device, rows).await?;
    let stored = outcome.rows.len();
    let mut text = entries(u64::try_from(stored).unwrap_or(u64::MAX), "stored");
    if outcome.dropped > 0 {
        text.push_str(&format!(
            "; the {} oldest dropped (an account keeps at most {} entries and {} bytes)",
            outcome.dropped,
            chat_journal::ChatBounds::DEFAULT.max_entries,
            chat_journal::ChatBounds::DEFAULT.max_bytes
        ));
    }
    Ok(Json(PutReply {
        success: true,
        error_message: text,
        rows: stored,
        dropped: outcome.dropped,
        results: outcome
            .rows
            .into_iter()
            .map(|(client_id, journal_id)| PutResult {
                id: client_id,
                journal_id,
                source: "default",
            })
            .collect(),
    })
    .into_response())
}

/// `delete_journal_entries`: deletes the account's own entries named by `data` (a JSON list
/// of ids) or `journal_id`.
pub async fn delete(
    s: &Services,
    id: &AccountId,
    params: &Params,
) -> Result<Response, ServiceError> {
    let ids = chat_journal::parse_delete_ids(params.get("data"), params.get("journal_id"))?;
    let deleted = s.delete_chat_entries(id, &ids).await?;
    Ok(Json(DeleteReply {
        success: true,
        error_message: entries(deleted, "deleted"),
        rows: deleted,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_query_string_raises_the_body_limit() {
        assert_eq!(
            body_limit(Some("action=put_journal_entries&realm=example.com")),
            MAX_CHAT_BODY_BYTES
        );
        assert_eq!(
            body_limit(Some("realm=x&action=delete_journal_entries")),
            MAX_CHAT_BODY_BYTES
        );
        assert_eq!(body_limit(Some("action=account")), crate::MAX_BODY_BYTES);
        assert_eq!(
            body_limit(Some("xaction=put_journal_entries")),
            crate::MAX_BODY_BYTES
        );
        assert_eq!(body_limit(None), crate::MAX_BODY_BYTES);
        assert_eq!(long_param(Some("action=get_journal_entries")), None);
    }
}
