//! The compatibility endpoint `settings.phtml?action=NAME` (also `/settings`): the seed's action
//! names and their later aliases, each a thin adapter over a [`sip_settings_core::Services`]
//! function.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use sip_settings_core::account::{Account, same_account};
use sip_settings_core::cert::{CertSubject, P12Variant};
use sip_settings_core::ids::whole_number;
use sip_settings_core::journal::{Door, Origin};
use sip_settings_core::sip::Condition;
use sip_settings_core::{AccountId, Password, ServiceError, Services};

use crate::AppState;
use crate::identity::Subscriber;
use crate::legacy::chat;
use crate::legacy::digest;
use crate::legacy::history;
use crate::legacy::objects;
use crate::legacy::reply;
use crate::legacy::vouchers;
use crate::params::Params;
use crate::ratelimit::Kind;
use crate::serve::Peer;

/// The actions of the compatibility endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `account`: object A.
    Account,
    /// `aliases`: the account's aliases.
    Aliases,
    /// `enum`: the account's ENUM numbers.
    Enum,
    /// `diversions`: object D.
    Diversions,
    /// `accept`: object R.
    Accept,
    /// `reject`: reject patterns.
    Reject,
    /// `voicemail`: object V or null.
    Voicemail,
    /// `dnd_on`.
    DndOn,
    /// `dnd_off`.
    DndOff,
    /// `privacy_on`.
    PrivacyOn,
    /// `privacy_off`.
    PrivacyOff,
    /// `add_alias`.
    AddAlias,
    /// `set_diversions`.
    SetDiversions,
    /// `crt`: a new certificate and key.
    Crt,
    /// `p12`: a new certificate as PKCS#12.
    P12,
    /// `calls`: object C.
    Calls,
    /// `get_history`: object C's calls as Blink Cocoa imports them ([`crate::legacy::history`]).
    History,
    /// `prepaid`: object P.
    Prepaid,
    /// `balance_history`: array H or CSV.
    BalanceHistory,
    /// `monthly_usage`: object U.
    MonthlyUsage,
    /// `get_devices`: the registered devices (array of object Dv).
    Devices,
    /// `add_balance`: redeems a prepaid card ([`crate::legacy::vouchers`]).
    AddBalance,
    /// `get_journal_entries`: the chat journal's entries ([`chat`]).
    GetJournalEntries,
    /// `put_journal_entries`: stores chat-journal entries.
    PutJournalEntries,
    /// `delete_journal_entries`: deletes chat-journal entries.
    DeleteJournalEntries,
}

impl Action {
    /// Every accepted name (seed name first) with its action.
    pub const NAMES: &'static [(&'static str, Action)] = &[
        ("account", Action::Account),
        ("get_identity", Action::Account),
        ("get_account", Action::Account),
        ("aliases", Action::Aliases),
        ("get_aliases", Action::Aliases),
        ("enum", Action::Enum),
        ("get_enum", Action::Enum),
        ("diversions", Action::Diversions),
        ("get_call_forwarding", Action::Diversions),
        ("get_diversions", Action::Diversions),
        ("accept", Action::Accept),
        ("get_accept_rules", Action::Accept),
        ("get_accept", Action::Accept),
        ("reject", Action::Reject),
        ("get_reject_rules", Action::Reject),
        ("get_reject", Action::Reject),
        ("voicemail", Action::Voicemail),
        ("get_voicemail", Action::Voicemail),
        ("dnd_on", Action::DndOn),
        ("set_dnd_on", Action::DndOn),
        ("dnd_off", Action::DndOff),
        ("set_dnd_off", Action::DndOff),
        ("privacy_on", Action::PrivacyOn),
        ("set_privacy_on", Action::PrivacyOn),
        ("privacy_off", Action::PrivacyOff),
        ("set_privacy_off", Action::PrivacyOff),
        ("add_alias", Action::AddAlias),
        ("set_diversions", Action::SetDiversions),
        ("set_call_forwarding", Action::SetDiversions),
        ("crt", Action::Crt),
        ("get_crt", Action::Crt),
        ("p12", Action::P12),
        ("get_p12", Action::P12),
        ("calls", Action::Calls),
        ("get_history", Action::History),
        ("get_calls", Action::Calls),
        ("prepaid", Action::Prepaid),
        ("get_prepaid", Action::Prepaid),
        ("balance_history", Action::BalanceHistory),
        ("get_balance_history", Action::BalanceHistory),
        ("monthly_usage", Action::MonthlyUsage),
        ("get_monthly_usage", Action::MonthlyUsage),
        ("get_devices", Action::Devices),
        ("devices", Action::Devices),
        ("add_balance", Action::AddBalance),
        ("get_journal_entries", Action::GetJournalEntries),
        ("put_journal_entries", Action::PutJournalEntries),
        ("delete_journal_entries", Action::DeleteJournalEntries),
    ];

    /// Whether the action changes something (for the write rate budget).
    pub fn is_change(self) -> bool {
        matches!(
            self,
            Action::DndOn
                | Action::DndOff
                | Action::PrivacyOn
                | Action::PrivacyOff
                | Action::AddAlias
                | Action::SetDiversions
                | Action::Crt
                | Action::P12
                | Action::AddBalance
                | Action::PutJournalEntries
                | Action::DeleteJournalEntries
        )
    }

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

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            // The rest of the body is not read: the connection ends with this reply.
            let mut response = reply::failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Error: request body larger than {limit} bytes"),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(response)
        }
        Err(_) => Err(reply::failure(
            StatusCode::BAD_REQUEST,
            "Error: could not read the request body",
        )),
    }
}

/// A refusal given before the request's body was read (no certificate or Digest credentials
/// yet, a wrong method): the body is read and dropped, up to the usual limit, so that the
/// connection can carry the client's next request — an HTTP Digest client (Blink, curl,
/// urllib) sends its answer to the challenge on the same connection, and a POST's body left
/// unread would make the server close it under that answer. A body past the request's limit
/// (or one that cannot be read) is not read further: the reply says `Connection: close`.
/// Nothing is done with what was read.
async fn refused_unread(body: Body, limit: usize, mut response: Response) -> Response {
    if Limited::new(body, limit).collect().await.is_err() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The `405` of the action endpoint: the status object naming the method, `Allow: GET, POST`.
fn method_not_allowed(text: String) -> Response {
    let mut response = reply::failure(StatusCode::METHOD_NOT_ALLOWED, text);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

/// Handles `settings.phtml` for GET and POST; HEAD is answered as GET (without the body) for
/// the actions that change nothing; any other method is `405` before anything is read.
pub async fn handle(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Identified first (a client certificate when one is presented, else HTTP Digest); the
    // request budget is spent once the action (a read or a change) is known.
    let has_certificate = peer.as_deref().is_some_and(|p| p.certificate.is_some());
    // A chat-journal write named in the query string may bring a larger body ([`chat`]).
    let body_limit = chat::body_limit(uri.query());
    let caller = if has_certificate {
        match Subscriber::identify(&state, peer.as_deref()).await {
            Ok(s) => Caller::Certificate(s),
            Err(e) => {
                return refused_unread(body, body_limit, reply::service_error(&e)).await;
            }
        }
    } else {
        let addr = peer
            .as_deref()
            .map_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.addr);
        match digest::authenticate(&state, addr, &method, &uri, &headers).await {
            Ok(account) => Caller::Digest { account, addr },
            Err(response) => {
                return refused_unread(body, body_limit, response).await;
            }
        }
    };
    if !matches!(method, Method::GET | Method::POST | Method::HEAD) {
        let response = method_not_allowed(format!(
            "Error: method {} is not allowed; use GET or POST",
            sip_settings_core::ids::printable(method.as_str())
        ));
        return refused_unread(body, body_limit, response).await;
    }
    let body = match read_body(body, body_limit).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let params =
        match Params::parse_allowing(uri.query(), &headers, &body, chat::long_param(uri.query())) {
            Ok(p) => p,
            Err(e) => return reply::service_error(&e),
        };
    if let Some(Err(e)) = params
        .get("account")
        .map(|named| same_account(caller.account(), named))
    {
        return reply::service_error(&e);
    }
    let Some(name) = params.get("action") else {
        if let Some(tab) = params.get("tab") {
            return web_view(&state, &caller, &method, uri, headers, tab).await;
        }
        return reply::failure(StatusCode::BAD_REQUEST, "Error: missing action");
    };
    let Some(action) = Action::from_name(name) else {
        return reply::failure(StatusCode::NOT_FOUND, "Error: invalid action");
    };
    if method == Method::HEAD && action.is_change() {
        return method_not_allowed(format!(
            "Error: method HEAD is not allowed for {name}, which changes something; use GET or POST"
        ));
    }
    let kind = if action.is_change() {
        Kind::Write
    } else {
        Kind::Read
    };
    if let Err(wait) = caller.spend(&state, kind) {
        return reply::too_many(wait);
    }
    let services = match &caller {
        Caller::Certificate(s) => s.services_through(&state, Door::ActionApi),
        Caller::Digest { account, addr } => state.services.with_origin(Origin {
            door: Door::ActionApi,
            actor: format!("digest {account}"),
            source: Some(addr.ip().to_string()),
        }),
    };
    let request = ActionRequest {
        services: &services,
        account: caller.account(),
        params: &params,
        method: &method,
        query_has_password: query_has(uri.query(), "password"),
        user_agent: crate::user_agent(&headers),
    };
    match request.run(action).await {
        Ok(response) => response,
        Err(e) => reply::service_error(&e),
    }
}

/// Blink's web view, `settings.phtml?realm=…&tab=NAME` without `action`: the web page's tab
/// for the caller's account ([`crate::web::blink_tab`]), a read of the request budget. `GET`
/// (and `HEAD`) only: the page's forms post to `/web/…`.
async fn web_view(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    uri: Uri,
    headers: HeaderMap,
    tab: &str,
) -> Response {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return method_not_allowed(format!(
            "Error: method {} is not allowed for the web view (tab); use GET",
            sip_settings_core::ids::printable(method.as_str())
        ));
    }
    if let Err(wait) = caller.spend(state, Kind::Read) {
        return reply::too_many(wait);
    }
    crate::web::blink_tab(
        state.clone(),
        headers,
        uri,
        caller.addr(),
        caller.account().clone(),
        tab,
    )
    .await
}

/// Who is calling the action endpoint.
enum Caller {
    /// A subscriber certificate.
    Certificate(Subscriber),
    /// HTTP Digest credentials of an account ([`digest`]).
    Digest {
        /// The account.
        account: AccountId,
        /// The client's address.
        addr: std::net::SocketAddr,
    },
}

impl Caller {
    fn account(&self) -> &AccountId {
        match self {
            Self::Certificate(s) => &s.account,
            Self::Digest { account, .. } => account,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Self::Certificate(s) => s.addr,
            Self::Digest { addr, .. } => *addr,
        }
    }

    /// Spends one request of the caller's budget of `kind` (the certificate's, or the
    /// account's for Digest, and the client address's); the wait when it is spent.
    fn spend(&self, state: &AppState, kind: Kind) -> Result<(), u64> {
        let now = state.services.clock().now();
        match self {
            Self::Certificate(s) => state.limiter.check(Some(&s.serial), s.addr.ip(), kind, now),
            Self::Digest { account, addr } => {
                state
                    .limiter
                    .check_account(Some(account), addr.ip(), kind, now)
            }
        }
    }
}

fn query_has(query: Option<&str>, key: &str) -> bool {
    query.is_some_and(|q| q.split('&').any(|pair| pair.split('=').next() == Some(key)))
}

/// One decoded action request.
struct ActionRequest<'a> {
    services: &'a Services,
    account: &'a AccountId,
    params: &'a Params,
    method: &'a Method,
    query_has_password: bool,
    /// The request's `User-Agent`, which names a certificate issued without `name=`.
    user_agent: Option<&'a str>,
}

impl ActionRequest<'_> {
    /// `name=` if given, else what the certificate is issued as and for which client
    /// ([`sip_settings_core::cert_use::default_name`]).
    fn certificate_name(&self, form: &str) -> String {
        sip_settings_core::cert_use::given_or_default(
            self.params.get("name"),
            form,
            self.user_agent,
        )
    }

    async fn run(&self, action: Action) -> Result<Response, ServiceError> {
        let s = self.services;
        let id = self.account;
        Ok(match action {
            Action::Account => {
                let account = s.account(id).await?;
                let dnd = s.dnd_active(id).await?;
                Json(AccountObject::new(&account, dnd)).into_response()
            }
            Action::Aliases => {
                let aliases: Vec<String> = s
                    .aliases(id)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                Json(aliases).into_response()
            }
            Action::Enum => {
                let numbers: Vec<String> = s
                    .enum_numbers(id)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                Json(numbers).into_response()
            }
            Action::Diversions => {
                let account = s.account(id).await?;
                let forwarding = s.forwarding_of(id).await?;
                Json(objects::diversions(
                    &forwarding.diversions(),
                    account.profile.no_answer_timeout,
                    forwarding.richer(),
                ))
                .into_response()
            }
            Action::Accept => {
                let rules = s.accept_rules(id).await?;
                let groups = s.phonebook_groups(id).await?;
                Json(objects::accept(&rules, &groups, s.clock().now())).into_response()
            }
            Action::Reject => {
                let patterns: Vec<String> = s
                    .reject_patterns(id)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                Json(patterns).into_response()
            }
            Action::Voicemail => {
                let account = s.account(id).await?;
                let voicemail = s.voicemail(id).await?;
                Json(voicemail.map(|v| objects::voicemail(&account, &v))).into_response()
            }
            Action::DndOn => reply::success(s.dnd_on(id, self.params.get("duration")).await?),
            Action::DndOff => reply::success(s.dnd_off(id).await?),
            Action::PrivacyOn => reply::success(s.set_privacy(id, true).await?),
            Action::PrivacyOff => reply::success(s.set_privacy(id, false).await?),
            Action::AddAlias => {
                let username = self.params.get("username").unwrap_or_default();
                let alias = s.add_own_alias(id, username).await?;
                reply::success(format!("Alias {alias} added"))
            }
            Action::SetDiversions => {
                let present: Vec<(Condition, String)> = Condition::ALL
                    .into_iter()
                    .filter_map(|c| self.params.get(c.code()).map(|v| (c, v.to_owned())))
                    .collect();
                reply::success(s.set_diversions(id, &present).await?)
            }
            Action::Crt => {
                let days = self.days()?;
                let name = self.certificate_name(".crt");
                let issued = s
                    .issue_certificate(CertSubject::Account(id.clone()), days, Some(&name))
                    .await?;
                reply::attachment(
                    "application/x-pem-file",
                    &format!("{id}.crt"),
                    issued.crt_bundle().into_bytes(),
                )
            }
            Action::P12 => self.p12().await?,
            Action::Calls => {
                let days = self.number("days", 1..=90, 14)?;
                let limit = self.number("limit", 1..=500, 50)?;
                let account = s.account(id).await?;
                let (placed, received) = s.calls(id, days, limit).await?;
                Json(objects::calls(&account, &placed, &received)).into_response()
            }
            Action::History => {
                let days = self.number("days", 1..=90, 14)?;
                let limit = self.number("limit", 1..=500, 50)?;
                let account = s.account(id).await?;
                let (placed, received) = s.calls(id, days, limit).await?;
                Json(history::history(&account, &placed, &received)).into_response()
            }
            Action::Devices => {
                let account = s.account(id).await?;
                let devices = s.devices(id).await?;
                Json(objects::devices(&account, &devices, s.clock().now())).into_response()
            }
            Action::Prepaid => {
                let account = s.account(id).await?;
                let (balance, sessions) = s.prepaid(id).await?;
                Json(objects::prepaid(
                    &account,
                    balance,
                    &sessions,
                    &s.config().currency,
                    s.clock().now(),
                ))
                .into_response()
            }
            Action::BalanceHistory => self.balance_history().await?,
            Action::AddBalance => vouchers::add_balance(s, id, self.params).await?,
            Action::GetJournalEntries => chat::get(s, id, self.params).await?,
            Action::PutJournalEntries => chat::put(s, id, self.params).await?,
            Action::DeleteJournalEntries => chat::delete(s, id, self.params).await?,
            Action::MonthlyUsage => {
                let (month, usage) = s.monthly_usage(id, self.params.get("month")).await?;
                Json(serde_json::json!({
                    "month": month,
                    "calls": usage.calls,
                    "duration": usage.duration,
                    "price": usage.price.to_string(),
                }))
                .into_response()
            }
        })
    }

    /// `p12`: a client certificate and its key as PKCS#12, only by POST and only with the SIP
    /// password in the body (it encrypts the file).
    async fn p12(&self) -> Result<Response, ServiceError> {
        let s = self.services;
        let id = self.account;
        if self.method != Method::POST {
            return Ok(reply::failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "Error: p12 must be requested with POST, with the SIP password as password in the body",
            ));
        }
        if self.query_has_password {
            return Err(ServiceError::invalid(
                "password",
                "must be sent in the POST body, never in the URL",
            ));
        }
        let password = match self.params.get("password") {
            Some(p) if !p.is_empty() => Password::offered(p),
            _ => return Err(ServiceError::invalid("password", "is missing")),
        };
        let variant = match self.params.get("legacy") {
            Some("1") | Some("true") => P12Variant::Legacy,
            None | Some("") | Some("0") | Some("false") => P12Variant::Modern,
            Some(_) => return Err(ServiceError::invalid("legacy", "must be 1 or 0")),
        };
        let days = self.days()?;
        let name = self.certificate_name(".p12");
        let (_, p12) = s
            .issue_pkcs12(id, &password, variant, days, Some(&name))
            .await?;
        Ok(reply::attachment(
            "application/x-pkcs12",
            &format!("{id}.p12"),
            p12,
        ))
    }

    /// `balance_history`: the latest balance changes, as JSON or (`csv=1`) as a CSV attachment.
    async fn balance_history(&self) -> Result<Response, ServiceError> {
        let s = self.services;
        let id = self.account;
        let limit = self.number("limit", 1..=1000, 200)?;
        let csv = match self.params.get("csv") {
            None | Some("") | Some("0") => false,
            Some("1") => true,
            Some(_) => return Err(ServiceError::invalid("csv", "must be 1 or 0")),
        };
        let account = s.account(id).await?;
        let history = s.balance_history(id, limit).await?;
        Ok(if csv {
            let text = objects::history_csv(&account, &history)
                .map_err(|e| ServiceError::Internal(format!("csv: {e}")))?;
            reply::attachment(
                "text/csv; charset=utf-8",
                &format!("{id}-balance.csv"),
                text.into_bytes(),
            )
        } else {
            Json(objects::history(&account, &history)).into_response()
        })
    }

    /// An optional whole-number parameter within `range`, or its default.
    fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, ServiceError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(v) => whole_number::<u32>(v)
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ServiceError::invalid(
                        name,
                        format!(
                            "must be a whole number between {} and {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    fn days(&self) -> Result<Option<u32>, ServiceError> {
        match self.params.get("days") {
            None | Some("") => Ok(None),
            Some(d) => whole_number::<u32>(d)
                .map(Some)
                .ok_or_else(|| ServiceError::invalid("days", "must be a whole number of days")),
        }
    }
}
