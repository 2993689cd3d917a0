//! `POST /v1/service/calls` and `/v1/service/calls/batch`: finished calls from a proxy's
//! accounting.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::ServiceError;
use sip_settings_core::calls::CallInput;
use utoipa::ToSchema;

use crate::AppState;
use crate::v1::doc::ServiceErrors;
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::JsonBody;
use crate::v1::service::client::ServiceClient;

/// A finished call as a proxy's accounting sends it (`POST /v1/service/calls`). The optional
/// fields may be absent or `null` (none); a required field that is absent is reported by
/// core's `CallInput::parse`, which names any missing or malformed field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRecordBody {
    /// SIP Call-ID.
    #[serde(default)]
    #[schema(required = true)]
    call_id: String,
    /// From tag.
    from_tag: Option<String>,
    /// To tag.
    to_tag: Option<String>,
    /// Caller SIP URI.
    #[serde(default)]
    #[schema(required = true)]
    caller: String,
    /// Callee SIP URI.
    #[serde(default)]
    #[schema(required = true)]
    callee: String,
    /// Start, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime, required = true)]
    start: String,
    /// Stop, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime, required = true)]
    stop: String,
    /// Seconds talked.
    #[schema(value_type = i64, required = true)]
    duration: Option<i64>,
    /// SIP final status code.
    #[schema(value_type = i64, required = true)]
    status: Option<i64>,
    /// Media types, e.g. `["audio"]`.
    media: Option<Vec<String>>,
    /// Address of the proxy.
    proxy_ip: Option<String>,
    /// Price, a decimal string.
    price: Option<String>,
}

impl From<CallRecordBody> for CallInput {
    fn from(b: CallRecordBody) -> Self {
        Self {
            call_id: b.call_id,
            from_tag: b.from_tag.unwrap_or_default(),
            to_tag: b.to_tag.unwrap_or_default(),
            caller: b.caller,
            callee: b.callee,
            start: b.start,
            stop: b.stop,
            duration: b.duration,
            status: b.status,
            media: b.media.unwrap_or_default(),
            proxy_ip: b.proxy_ip.unwrap_or_default(),
            price: b.price,
        }
    }
}

/// The answer to a recorded call.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// Whether the record was new.
    pub recorded: bool,
    /// Present and true when the record was a replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<bool>,
    /// The Call-ID.
    pub call_id: String,
}

/// Records a finished call for its local parties (idempotent on Call-ID and tags).
#[utoipa::path(post, path = "/v1/service/calls", tag = "service",
    request_body(content = CallRecordBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = Recorded),
        (status = 200, description = "A replay: nothing stored", body = Recorded),
        ServiceErrors
    ))]
pub(super) async fn record_call(
    State(state): State<AppState>,
    client: ServiceClient,
    JsonBody(body): JsonBody<CallRecordBody>,
) -> ApiResult {
    let input = CallInput::from(body);
    let new = client.services(&state).record_call(&input).await?;
    let (status, replay) = if new {
        (StatusCode::CREATED, None)
    } else {
        (StatusCode::OK, Some(true))
    };
    Ok((
        status,
        Json(Recorded {
            recorded: new,
            replay,
            call_id: input.call_id,
        }),
    )
        .into_response())
}

/// Most records in one batch.
pub const MAX_BATCH: usize = 1000;

/// Most bytes of a batch's body: 1 000 records of about 330 bytes each as a proxy sends them,
/// with room for long URIs and Call-IDs (every other body is at most
/// [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES)).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Finished calls in one batch (`POST /v1/service/calls/batch`): what a proxy's accounting
/// queued, stored in one transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBatchBody {
    /// 1 to 1000 call records, each as `POST /v1/service/calls` takes it.
    #[serde(default)]
    #[schema(required = true)]
    calls: Vec<CallRecordBody>,
}

/// The answer to a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRecorded {
    /// Records stored.
    pub recorded: usize,
    /// Records already stored before (replays): nothing stored for them.
    pub replays: usize,
}

/// Records many finished calls at once, all or none: one transaction, one durable commit (a
/// proxy's accounting queue drains at thousands of calls a second this way, where one commit
/// per call is bound by the disk's flush time). A malformed record refuses the whole batch,
/// naming it (`calls[3].caller`); replays are counted, not stored again. The body may hold up
/// to 1 MiB (other bodies: 64 KiB).
#[utoipa::path(post, path = "/v1/service/calls/batch", tag = "service",
    request_body(content = CallBatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded", body = BatchRecorded),
        ServiceErrors
    ))]
pub(super) async fn record_calls(
    State(state): State<AppState>,
    client: ServiceClient,
    JsonBody(batch): JsonBody<CallBatchBody, MAX_BATCH_BYTES>,
) -> ApiResult {
    if batch.calls.is_empty() || batch.calls.len() > MAX_BATCH {
        return Err(invalid(
            "calls",
            format!("must hold 1 to {MAX_BATCH} call records"),
        ));
    }
    let services = client.services(&state);
    let mut calls = Vec::with_capacity(batch.calls.len());
    for (i, body) in batch.calls.into_iter().enumerate() {
        match services.prepare_call(&body.into()).await {
            Ok(call) => calls.push(call),
            Err(ServiceError::Invalid { field, reason }) => {
                return Err(invalid(&format!("calls[{i}].{field}"), reason));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let total = calls.len();
    let recorded = services.record_calls(&calls).await?;
    Ok(Json(BatchRecorded {
        recorded,
        replays: total - recorded,
    })
    .into_response())
}
