//! The chat journal: per-account storage of opaque, client-encrypted chat-history entries that
//! Blink replicates between a user's devices (CDRTool's `client_journal`, the actions
//! `get_journal_entries`, `put_journal_entries`, `delete_journal_entries` of `settings.phtml`).
//!
//! Not to be confused with the change journal ([`crate::journal`]): a chat entry is not a
//! setting, and storing or deleting one writes no change-journal entry (Blink pushes every 80
//! seconds from every device; the audit trail of settings would drown in them). They are
//! counted instead (`sip_settings_chat_journal_entries_total{op}`).
//!
//! What this module owns: the types, the parsing of the request parameters (the `data` JSON is
//! read only as far as needed: a list or object of rows, each row's `data` string and `id`), the
//! bounds, and the [`Services`] functions. Entries are never parsed beyond that.
//!
//! Bounds (documented in docs/actions.md):
//! * an entry's `data` is at most [`MAX_ENTRY_BYTES`]; a put carries at most
//!   [`MAX_PUT_ENTRIES`] entries; a delete names at most [`MAX_DELETE_IDS`] ids — over these the
//!   request is refused (`400`) and nothing is stored;
//! * an account keeps at most [`ChatBounds::DEFAULT`] (entries and bytes of `data`): a put that
//!   goes over drops the account's **oldest** entries in the same transaction (a rolling window
//!   of the chat history) rather than refusing, because Blink discards what it pushed whatever
//!   the answer and disables replication for the account after a refusal.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::ServiceError;
use crate::ids::{AccountId, whole_number};
use crate::service::Services;

/// Most bytes of one entry's `data`.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Most entries one `put_journal_entries` may carry.
pub const MAX_PUT_ENTRIES: usize = 1_000;
/// Most ids one `delete_journal_entries` may name.
pub const MAX_DELETE_IDS: usize = 10_000;
/// Most bytes of a device identifier (`uuid`, `except_uuid`).
pub const MAX_DEVICE_BYTES: usize = 128;
/// Most bytes of the client's own `id` of a row (echoed back, never stored).
pub const MAX_CLIENT_ID_BYTES: usize = 1_024;
/// Most entries one `get_journal_entries` answers (also its default).
pub const MAX_LIMIT: u32 = 5_000;

/// How much one account may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatBounds {
    /// Most entries.
    pub max_entries: u32,
    /// Most bytes of `data`, summed over the entries.
    pub max_bytes: i64,
}

impl ChatBounds {
    /// 10 000 entries and 32 MiB per account.
    pub const DEFAULT: ChatBounds = ChatBounds {
        max_entries: 10_000,
        max_bytes: 32 * 1024 * 1024,
    };
}

/// The device that sent an entry (Blink's `instance_id`, a UUID, sent as `uuid`): 1 to
/// [`MAX_DEVICE_BYTES`] bytes of ASCII letters, digits and `-_.:{}`, so that a UUID, its
/// `urn:uuid:` form and its braced form all pass and nothing else does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        if input.is_empty() {
            return Err(ServiceError::invalid(field, "is missing"));
        }
        if input.len() > MAX_DEVICE_BYTES {
            return Err(ServiceError::invalid(
                field,
                format!("is longer than {MAX_DEVICE_BYTES} bytes"),
            ));
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:{}".contains(&b))
        {
            return Err(ServiceError::invalid(
                field,
                "must be a device identifier (a UUID: letters, digits and - _ . : { } only)",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// A stored identifier, as it was accepted.
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    /// The journal id (increasing with every entry stored, across accounts).
    pub id: i64,
    /// When it was stored (whole seconds).
    pub timestamp: DateTime<Utc>,
    /// The device that sent it.
    pub device: DeviceId,
    /// The opaque data, as sent.
    pub data: String,
}

/// One line of the summary: an entry's id and time, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatSummaryEntry {
    /// The journal id.
    pub id: i64,
    /// When it was stored.
    pub timestamp: DateTime<Utc>,
}

/// Which entries `get_journal_entries` asks for, oldest (lowest id) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatQuery {
    /// Only ids above this.
    pub after_id: i64,
    /// Only entries stored at or after this Unix second (`>=`: an entry stored in the same
    /// second as the last one a client saw is not lost; Blink drops the repeats by message id).
    pub since: i64,
    /// Not the entries of this device.
    pub except_device: Option<DeviceId>,
    /// At most this many.
    pub limit: u32,
}

/// What a put stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPut {
    /// The journal ids of the new entries, in the order they were given.
    pub ids: Vec<i64>,
    /// How many of the account's oldest entries were dropped to stay within its bounds.
    pub dropped: u64,
}

/// One row of a put as the client sent it: its own id (echoed back) and the opaque data.
#[derive(Debug, Clone, PartialEq)]
pub struct PutRow {
    /// The client's id of the row (Blink's message id), a string, number or null.
    pub client_id: Value,
    /// The opaque data.
    pub data: String,
}

/// The answer of [`Services::put_chat_entries`]: each row's client id with its journal id.
#[derive(Debug, Clone, PartialEq)]
pub struct PutOutcome {
    /// `(client id, journal id)` per row, in the order of the request.
    pub rows: Vec<(Value, i64)>,
    /// How many old entries were dropped.
    pub dropped: u64,
}

/// Parses the `data` of `put_journal_entries`: a JSON list of rows, or an object whose values
/// are the rows (Blink sends `{"<msgid>": {"id": "<msgid>", "data": "…"}}`). A row is an object
/// with a string `data` (1 to [`MAX_ENTRY_BYTES`] bytes, no NUL) and an optional `id` (string,
/// number or null, at most [`MAX_CLIENT_ID_BYTES`]); other keys (CDRTool's `action`) are
/// ignored. Anything else is refused naming `data` and the row.
pub fn parse_put_rows(input: &str) -> Result<Vec<PutRow>, ServiceError> {
    if input.trim().is_empty() {
        return Err(ServiceError::invalid("data", "is missing"));
    }
    let value: Value = serde_json::from_str(input)
        .map_err(|e| ServiceError::invalid("data", format!("is not valid JSON ({e})")))?;
    let rows: Vec<(String, Value)> = match value {
        Value::Array(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (format!("[{}]", Value::String(k)), v))
            .collect(),
        _ => {
            return Err(ServiceError::invalid(
                "data",
                "must be a JSON list (or object) of entries",
            ));
        }
    };
    if rows.is_empty() {
        return Err(ServiceError::invalid("data", "has no entries"));
    }
    if rows.len() > MAX_PUT_ENTRIES {
        return Err(ServiceError::invalid(
            "data",
            format!(
                "has {} entries, at most {MAX_PUT_ENTRIES} per request",
                rows.len()
            ),
        ));
    }
    rows.into_iter()
        .map(|(at, row)| put_row(&at, row))
        .collect()
}

fn put_row(at: &str, row: Value) -> Result<PutRow, ServiceError> {
    let field = format!("data{at}");
    let Value::Object(mut map) = row else {
        return Err(ServiceError::invalid(
            field,
            "must be an object with a data string",
        ));
    };
    let data = match map.remove("data") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(ServiceError::invalid(
                field,
                "has a data that is not a string",
            ));
        }
        None => return Err(ServiceError::invalid(field, "has no data")),
    };
    if data.is_empty() {
        return Err(ServiceError::invalid(field, "has an empty data"));
    }
    if data.len() > MAX_ENTRY_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!(
                "has a data of {} bytes, at most {MAX_ENTRY_BYTES} per entry",
                data.len()
            ),
        ));
    }
    if data.contains('\0') {
        return Err(ServiceError::invalid(
            field,
            "has a data with a NUL character",
        ));
    }
    let client_id = match map.remove("id") {
        None => Value::Null,
        Some(v @ (Value::Null | Value::Number(_))) => v,
        Some(Value::String(s)) if s.len() <= MAX_CLIENT_ID_BYTES => Value::String(s),
        Some(Value::String(_)) => {
            return Err(ServiceError::invalid(
                field,
                format!("has an id longer than {MAX_CLIENT_ID_BYTES} bytes"),
            ));
        }
        Some(_) => {
            return Err(ServiceError::invalid(
                field,
                "has an id that is not a string or number",
            ));
        }
    };
    Ok(PutRow { client_id, data })
}

/// A journal id as a client may send it: a JSON number or a string of digits, above 0.
fn journal_id(field: &str, value: &Value) -> Result<i64, ServiceError> {
    let id = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => whole_number::<i64>(s),
        _ => None,
    };
    id.filter(|id| *id > 0).ok_or_else(|| {
        ServiceError::invalid(field, "must be a journal id (a whole number above 0)")
    })
}

/// Parses what `delete_journal_entries` deletes: `data`, a JSON list of journal ids (numbers
/// or strings of digits, as Blink sends them), or `journal_id`, one id; not both.
pub fn parse_delete_ids(
    data: Option<&str>,
    journal: Option<&str>,
) -> Result<Vec<i64>, ServiceError> {
    match (data, journal) {
        (Some(_), Some(_)) => Err(ServiceError::invalid(
            "journal_id",
            "cannot be given together with data; give one of them",
        )),
        (None, None) => Err(ServiceError::invalid(
            "data",
            "is missing (a JSON list of journal ids, or journal_id)",
        )),
        (None, Some(one)) => {
            journal_id("journal_id", &Value::String(one.to_owned())).map(|id| vec![id])
        }
        (Some(list), None) => {
            let value: Value = serde_json::from_str(list)
                .map_err(|e| ServiceError::invalid("data", format!("is not valid JSON ({e})")))?;
            let Value::Array(items) = value else {
                return Err(ServiceError::invalid(
                    "data",
                    "must be a JSON list of journal ids",
                ));
            };
            if items.is_empty() {
                return Err(ServiceError::invalid("data", "has no journal ids"));
            }
            if items.len() > MAX_DELETE_IDS {
                return Err(ServiceError::invalid(
                    "data",
                    format!(
                        "has {} journal ids, at most {MAX_DELETE_IDS} per request",
                        items.len()
                    ),
                ));
            }
            let mut ids = items
                .iter()
                .enumerate()
                .map(|(i, v)| journal_id(&format!("data[{i}]"), v))
                .collect::<Result<Vec<_>, _>>()?;
            ids.sort_unstable();
            ids.dedup();
            Ok(ids)
        }
    }
}

/// The parameters of `get_journal_entries`, parsed: `after_id` (whole number, default 0),
/// `after_timestamp` (Unix seconds, whole number, default 0), `except_uuid` (a device id),
/// `limit` (1 to [`MAX_LIMIT`], default [`MAX_LIMIT`]).
pub fn parse_query(
    after_id: Option<&str>,
    after_timestamp: Option<&str>,
    except_uuid: Option<&str>,
    limit: Option<&str>,
) -> Result<ChatQuery, ServiceError> {
    let after_id = match after_id {
        None | Some("") => 0,
        Some(v) => whole_number::<i64>(v).ok_or_else(|| {
            ServiceError::invalid("after_id", "must be a whole number (a journal id)")
        })?,
    };
    let since = match after_timestamp {
        None | Some("") => 0,
        Some(v) => whole_number::<i64>(v).ok_or_else(|| {
            ServiceError::invalid(
                "after_timestamp",
                "must be a whole number of seconds since 1970 (a timestamp of an entry)",
            )
        })?,
    };
    let except_device = match except_uuid {
        None | Some("") => None,
        Some(v) => Some(DeviceId::parse_for("except_uuid", v)?),
    };
    let limit = match limit {
        None | Some("") => MAX_LIMIT,
        Some(v) => whole_number::<u32>(v)
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ServiceError::invalid(
                    "limit",
                    format!("must be a whole number between 1 and {MAX_LIMIT}"),
                )
            })?,
    };
    Ok(ChatQuery {
        after_id,
        since,
        except_device,
        limit,
    })
}

impl Services {
    /// The account's entries that `query` asks for, oldest first.
    pub async fn chat_entries(
        &self,
        id: &AccountId,
        query: &ChatQuery,
    ) -> Result<Vec<ChatEntry>, ServiceError> {
        Ok(self.store().chat_entries(id, query).await?)
    }

    /// Every entry the account keeps (id and time), oldest first: complete, whatever a query
    /// filters, since Blink deletes the local messages whose journal id is not in it.
    pub async fn chat_summary(
        &self,
        id: &AccountId,
    ) -> Result<Vec<ChatSummaryEntry>, ServiceError> {
        Ok(self.store().chat_summary(id).await?)
    }

    /// Stores the rows from `device` at the clock's time (whole seconds), dropping the
    /// account's oldest entries beyond [`ChatBounds::DEFAULT`].
    pub async fn put_chat_entries(
        &self,
        id: &AccountId,
        device: &DeviceId,
        rows: Vec<PutRow>,
    ) -> Result<PutOutcome, ServiceError> {
        self.put_chat_entries_within(id, device, rows, ChatBounds::DEFAULT)
            .await
    }

    /// [`Services::put_chat_entries`] with other bounds (for tests).
    pub async fn put_chat_entries_within(
        &self,
        id: &AccountId,
        device: &DeviceId,
        rows: Vec<PutRow>,
        bounds: ChatBounds,
    ) -> Result<PutOutcome, ServiceError> {
        let now = self.clock().now();
        let at = DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let (client_ids, data): (Vec<Value>, Vec<String>) =
            rows.into_iter().map(|r| (r.client_id, r.data)).unzip();
        let put = self
            .store()
            .put_chat_entries(id, device, &data, at, bounds)
            .await?;
        count("stored", u64::try_from(put.ids.len()).unwrap_or(u64::MAX));
        count("dropped", put.dropped);
        Ok(PutOutcome {
            rows: client_ids.into_iter().zip(put.ids).collect(),
            dropped: put.dropped,
        })
    }

    /// Deletes those of `ids` that are the account's own; answers how many were deleted (ids
    /// of other accounts or already gone are left alone and not counted).
    pub async fn delete_chat_entries(
        &self,
        id: &AccountId,
        ids: &[i64],
    ) -> Result<u64, ServiceError> {
        let deleted = self.store().delete_chat_entries(id, ids).await?;
        count("deleted", deleted);
        Ok(deleted)
    }
}

/// Counts chat-journal entries by what happened to them: the audit a chat entry gets (not a
/// change-journal entry, see the module header).
fn count(op: &str, n: u64) {
    if n > 0 {
        crate::metrics::global().add(
            "sip_settings_chat_journal_entries_total",
            "Chat-journal entries (settings.phtml put/delete_journal_entries) by what happened: \
             stored, dropped (the oldest, beyond an account's bounds), deleted.",
            &["op"],
            &[op],
            n,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_rows_list_or_object() {
        let rows =
            parse_put_rows(r#"[{"id":"m1","data":"AAA","action":"add"},{"data":"B"}]"#).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].client_id, Value::String("m1".into()));
        assert_eq!(rows[1].client_id, Value::Null);
        let rows = parse_put_rows(r#"{"m2":{"id":"m2","data":"x"}}"#).unwrap();
        assert_eq!(rows[0].data, "x");
    }

    #[test]
    fn put_rows_refused() {
        for (input, needle) in [
            ("", "data is missing"),
            ("nope", "not valid JSON"),
            ("3", "JSON list"),
            ("[]", "no entries"),
            ("[1]", "data[0] must be an object"),
            (r#"[{"data":1}]"#, "data[0] has a data that is not a string"),
            (r#"[{"id":"a"}]"#, "data[0] has no data"),
            (r#"[{"data":""}]"#, "empty data"),
            (r#"[{"data":"a\u0000"}]"#, "NUL"),
            (r#"[{"data":"a","id":[1]}]"#, "id that is not"),
            (r#"{"k":{"data":2}}"#, r#"data["k"]"#),
        ] {
            let e = parse_put_rows(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
        let big = format!(r#"[{{"data":"{}"}}]"#, "a".repeat(MAX_ENTRY_BYTES + 1));
        assert!(
            parse_put_rows(&big)
                .unwrap_err()
                .to_string()
                .contains("at most 65536")
        );
        let many = format!(
            "[{}]",
            vec![r#"{"data":"a"}"#; MAX_PUT_ENTRIES + 1].join(",")
        );
        assert!(
            parse_put_rows(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 1000")
        );
    }

    #[test]
    fn delete_ids() {
        assert_eq!(
            parse_delete_ids(Some(r#"["3",1,"3"]"#), None).unwrap(),
            vec![1, 3]
        );
        assert_eq!(parse_delete_ids(None, Some("7")).unwrap(), vec![7]);
        for (data, one, needle) in [
            (None, None, "data is missing"),
            (Some("[1]"), Some("1"), "journal_id cannot"),
            (Some("[]"), None, "no journal ids"),
            (Some("{}"), None, "JSON list"),
            (Some(r#"["x"]"#), None, "data[0] must be a journal id"),
            (Some("[0]"), None, "data[0]"),
            (Some("[-1]"), None, "data[0]"),
            (Some("[1.5]"), None, "data[0]"),
            (None, Some("1 OR 1=1"), "journal_id must be"),
        ] {
            let e = parse_delete_ids(data, one).unwrap_err().to_string();
            assert!(e.contains(needle), "{data:?} {one:?}: {e}");
        }
    }

    #[test]
    fn query_parameters() {
        let q = parse_query(None, Some("0"), Some("9b1c-uuid"), None).unwrap();
        assert_eq!((q.after_id, q.since, q.limit), (0, 0, MAX_LIMIT));
        assert_eq!(q.except_device.unwrap().as_str(), "9b1c-uuid");
        let q = parse_query(Some("12"), Some("1790000000"), None, Some("10")).unwrap();
        assert_eq!((q.after_id, q.since, q.limit), (12, 1_790_000_000, 10));
        for (args, needle) in [
            ((Some("x"), None, None, None), "after_id"),
            (
                (None, Some("2026-01-01 00:00:00"), None, None),
                "after_timestamp",
            ),
            ((None, None, Some("a b"), None), "except_uuid"),
            ((None, None, None, Some("0")), "limit"),
            ((None, None, None, Some("5001")), "limit"),
        ] {
            let e = parse_query(args.0, args.1, args.2, args.3)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn device_ids() {
        for ok in [
            "2f1a6d2e-8f0b-4a57-9c7e-1d2b3c4d5e6f",
            "urn:uuid:2f1a6d2e-8f0b-4a57-9c7e-1d2b3c4d5e6f",
            "{2f1a6d2e-8f0b-4a57-9c7e-1d2b3c4d5e6f}",
        ] {
            assert!(DeviceId::parse_for("uuid", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "x'--", &"a".repeat(MAX_DEVICE_BYTES + 1)] {
            assert!(DeviceId::parse_for("uuid", bad).is_err(), "{bad}");
        }
    }
}
