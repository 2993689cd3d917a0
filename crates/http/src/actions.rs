//! The compatibility endpoint `settings.phtml?action=NAME` (also `/settings`): the seed's action
//! names and their later aliases, each a thin adapter over a [`sip_settings_core::Services`]
//! function.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use sip_settings_core::account::{Account, same_account};

use crate::identity::Subscriber;
use crate::params::Params;
use crate::{AppState, MAX_BODY_BYTES, reply};

/// The actions of the compatibility endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `account`: object A.
    Account,
}

impl Action {
    /// Every accepted name (seed name first) with its action.
    pub const NAMES: &'static [(&'static str, Action)] = &[
        ("account", Action::Account),
        ("get_identity", Action::Account),
        ("get_account", Action::Account),
    ];

    /// The action for a name, seed name or alias.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, action)| *action)
    }
}

/// Object A of the specification, keys in the specified order.
#[derive(Debug, Serialize)]
pub struct AccountObject {
    sip_address: String,
    email: String,
    first: String,
    lastname: String,
    pstn_caller_id: Option<String>,
    mobile_number: String,
    timezone: String,
    no_answer_timeout: u32,
    quick_dial: Option<String>,
    language: String,
    privacy: bool,
    dnd: bool,
    prepaid: bool,
}

impl AccountObject {
    /// Object A for an account.
    pub fn new(account: &Account, dnd: bool) -> Self {
        let p = &account.profile;
        Self {
            sip_address: account.id.to_string(),
            email: p.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            first: p.first_name.clone(),
            lastname: p.last_name.clone(),
            pstn_caller_id: p.pstn_caller_id.as_ref().map(ToString::to_string),
            mobile_number: p
                .mobile
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            timezone: p.timezone.name().to_owned(),
            no_answer_timeout: p.no_answer_timeout,
            quick_dial: p.quick_dial.clone(),
            language: p.language.clone(),
            privacy: account.privacy,
            dnd,
            prepaid: account.prepaid,
        }
    }
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(reply::failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Error: request body larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(_) => Err(reply::failure(
            StatusCode::BAD_REQUEST,
            "Error: could not read the request body",
        )),
    }
}

/// Handles `settings.phtml` for GET and POST.
pub async fn handle(
    State(state): State<AppState>,
    subscriber: Subscriber,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let params = match Params::parse(uri.query(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return reply::service_error(&e),
    };
    if let Some(Err(e)) = params
        .get("account")
        .map(|named| same_account(&subscriber.account, named))
    {
        return reply::service_error(&e);
    }
    let Some(name) = params.get("action") else {
        return reply::failure(StatusCode::BAD_REQUEST, "Error: missing action");
    };
    let Some(action) = Action::from_name(name) else {
        return reply::failure(StatusCode::NOT_FOUND, "Error: invalid action");
    };
    let services = &state.services;
    match action {
        Action::Account => match services.account(&subscriber.account).await {
            Ok(account) => Json(AccountObject::new(&account, false)).into_response(),
            Err(e) => reply::service_error(&e),
        },
    }
}
