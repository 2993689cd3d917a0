//! The subscriber's web settings page (to be built): server-side rendered, no client
//! certificate needed, login with the SIP account.

use axum::Router;

use crate::AppState;

/// The web page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
