//! The writes of `/v1/me`: under the account's write lock, `If-Match` against the current
//! representation, then the change, committed.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use sip_settings_core::{AccountId, ServiceError, Services};

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::error::{ApiResult, not_found};

/// The write of a resource read as one view: under the account's write lock the current view
/// must match `If-Match` (412 otherwise), then `change` runs, and the reply is the new view
/// with its ETag.
pub async fn change_view<V: Serialize, R>(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    view: impl AsyncFn(&Services, &AccountId) -> Result<V, ServiceError>,
    change: impl AsyncFnOnce(&Services, &AccountId) -> Result<R, ServiceError>,
) -> ApiResult {
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    etag::check(headers, Some(&view(&s, &me.account).await?))?;
    change(&s, &me.account).await?;
    s.commit().await?;
    Ok(etag::reply(StatusCode::OK, &view(&s, &me.account).await?))
}

/// The removal of one item of a collection: under the account's write lock the item must exist
/// (404 naming `what` otherwise) and match `If-Match` (412), then `remove` runs: 204.
pub async fn remove_item<V: Serialize, R>(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    what: String,
    current: impl AsyncFnOnce(&Services, &AccountId) -> Result<Option<V>, ServiceError>,
    remove: impl AsyncFnOnce(&Services, &AccountId) -> Result<R, ServiceError>,
) -> ApiResult {
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    let Some(current) = current(&s, &me.account).await? else {
        return Err(not_found(format!("no {what}")));
    };
    etag::check(headers, Some(&current))?;
    remove(&s, &me.account).await?;
    s.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
