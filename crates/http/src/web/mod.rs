//! The subscriber's web settings page: server-side rendered (askama templates compiled into the
//! binary), usable without JavaScript, no client certificate needed — login with the SIP address
//! and password.
//!
//! * `GET /` is the login page, or the Info tab once logged in; the other tabs are `/web/<tab>`.
//! * Sessions are stateless signed cookies ([`session`]): idle expiry 30 minutes, absolute 12
//!   hours, accepted by every server that shares the data directory's `web.key`.
//! * Every form carries a CSRF token tied to the session; every POST is also refused when its
//!   `Origin` or `Sec-Fetch-Site` says it came from another site.
//! * Password checks — the login and the `.p12` download — are counted and throttled in `core`
//!   ([`sip_settings_core::throttle`]) per account, whatever the spelling of the address, and per
//!   client address; the same counters as the action endpoint's `p12`.
//! * Every POST (the login included) spends the client address's write budget of the API's
//!   rate limits ([`crate::ratelimit`]), and once logged in the account's.
//! * Every change goes through the same `core` service functions as the APIs, journaled with
//!   the origin `web` / `login user@domain` / the client's address.

pub mod charts;
pub mod forms;
pub mod pages;
pub mod session;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Limited};
use sip_settings_core::journal::{Door, Origin};
use sip_settings_core::{AccountId, Domain, Password, ServiceError, Services};

use crate::legacy::reply;
use crate::params::Params;
use crate::ratelimit::Kind;
use crate::serve::Peer;
use crate::status::{Cause, Code, classify};
use crate::{AppState, MAX_BODY_BYTES};
use forms::{Outcome, Submission};
use pages::{Refusal, Tab, View};
pub use session::WebKey;
use session::{
    FLASH_COOKIE, LOGIN_COOKIE, SESSION_COOKIE, Session, clear_cookie, cookie, flash_text,
    flash_value, random_hex, short_cookie,
};

/// The web page's state: the signing key.
#[derive(Debug)]
pub struct WebState {
    key: WebKey,
}

impl WebState {
    /// State with the given signing key.
    pub fn new(key: WebKey) -> Self {
        Self { key }
    }
}

/// The forms, each a POST to its own path.
const FORM_PATHS: [&str; 30] = [
    "/web/certificates/crt",
    "/web/certificates/p12",
    "/web/certificates/revoke",
    "/web/certificates/revoke-older",
    "/web/certificates/name",
    "/web/forwarding",
    "/web/rules/save",
    "/web/rules/move",
    "/web/rules/toggle",
    "/web/rules/remove",
    "/web/rules/sets/time",
    "/web/rules/sets/callers",
    "/web/rules/sets/called",
    "/web/rules/sets/remove",
    "/web/dnd/on",
    "/web/dnd/off",
    "/web/accept/temporary",
    "/web/accept/temporary/clear",
    "/web/accept/rule",
    "/web/accept/rule/remove",
    "/web/reject/add",
    "/web/reject/remove",
    "/web/privacy",
    "/web/aliases/add",
    "/web/aliases/remove",
    "/web/voicemail/enable",
    "/web/voicemail/disable",
    "/web/phonebook/put",
    "/web/phonebook/remove",
    "/web/logout",
];

/// The web page's routes.
pub fn routes() -> Router<AppState> {
    let mut paths: Vec<&str> = Tab::ALL.iter().map(|t| t.href()).collect();
    paths.push("/web/info");
    paths.extend(FORM_PATHS);
    paths.sort_unstable();
    paths.dedup();
    let mut router = Router::new()
        .route("/web/login", post(login))
        .route("/web/static/style.css", get(style))
        .route("/web/static/web.js", get(script))
        .route("/web/ca.crt", get(ca_crt))
        .route("/web/balance.csv", get(balance_csv));
    for path in paths {
        let mut method: MethodRouter<AppState> = MethodRouter::new();
        if path == "/" || Tab::from_path(path).is_some() {
            method = method.get(tab_page);
        }
        if path == "/web/logout" {
            method = method.post(logout);
        } else if FORM_PATHS.contains(&path) {
            method = method.post(form_post);
        }
        router = router.route(path, method);
    }
    router
}

/// Headers of every page: no caching, no framing, no inline scripts.
fn protect(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    protect(&mut response);
    response
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, pages::message_page(title, text))
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    protect(&mut response);
    response
}

fn set_cookie(response: &mut Response, value: Option<HeaderValue>) {
    if let Some(v) = value {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// What the handlers need of a request.
struct Req {
    state: AppState,
    headers: HeaderMap,
    uri: Uri,
    addr: SocketAddr,
    now: DateTime<Utc>,
    /// The domain named by `?realm=` (or the login form's `realm`), if it is a domain name.
    realm: Option<Domain>,
}

/// The domain of a `realm` parameter (`x@domain` counts as `domain`, as CDRTool and Blink use
/// it), if it is a domain name.
pub(crate) fn realm_domain(text: &str) -> Option<Domain> {
    Domain::parse(text.rsplit('@').next().unwrap_or_default()).ok()
}

/// The `realm` parameter of a query string, as sent.
pub(crate) fn realm_param(query: Option<&str>) -> Option<String> {
    query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.into_owned())
    })
}

fn query_realm(uri: &Uri) -> Option<Domain> {
    realm_param(uri.query()).and_then(|r| realm_domain(&r))
}

impl Req {
    fn new(state: AppState, request: &Request) -> Self {
        let addr = request
            .extensions()
            .get::<Peer>()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.addr);
        Self::from_parts(
            state,
            request.headers().clone(),
            request.uri().clone(),
            addr,
        )
    }

    fn from_parts(state: AppState, headers: HeaderMap, uri: Uri, addr: SocketAddr) -> Self {
        let now = state.services.clock().now();
        Self {
            state,
            headers,
            realm: query_realm(&uri),
            uri,
            addr,
            now,
        }
    }

    fn key(&self) -> &WebKey {
        &self.state.web.key
    }

    fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    /// The host the browser addressed (`Host`, or the HTTP/2 authority).
    fn host(&self) -> Option<String> {
        self.headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| self.uri.authority().map(|a| a.as_str().to_owned()))
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
    }

    /// Whether a POST says it came from another site: `Sec-Fetch-Site` other than
    /// `same-origin` (or `none`, a user's own action), or an `Origin` other than this host.
    fn cross_site(&self) -> bool {
        let foreign_site = self
            .headers
            .get("sec-fetch-site")
            .is_some_and(|site| !matches!(site.to_str(), Ok("same-origin" | "none")));
        if foreign_site {
            return true;
        }
        if let Some(origin) = self.headers.get(header::ORIGIN) {
            let Some(host) = self.host() else {
                return true;
            };
            let ok = origin
                .to_str()
                .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("https://{host}")));
            if !ok {
                return true;
            }
        }
        false
    }

    fn session(&self) -> Option<Session> {
        cookie(&self.headers, SESSION_COOKIE)
            .and_then(|v| Session::from_cookie(v, self.key(), self.now))
    }

    fn has_session_cookie(&self) -> bool {
        cookie(&self.headers, SESSION_COOKIE).is_some_and(|v| !v.is_empty())
    }

    fn services(&self, session: &Session) -> Services {
        self.state.services.with_origin(Origin {
            door: Door::WebPage,
            actor: format!("login {}", session.account),
            source: Some(self.ip().to_string()),
        })
    }

    fn flash(&self) -> Option<String> {
        cookie(&self.headers, FLASH_COOKIE).and_then(|v| flash_text(self.key(), v))
    }

    /// Re-issues the session cookie (sliding idle expiry).
    fn refresh(&self, response: &mut Response, session: &Session) {
        set_cookie(response, session.set_cookie(self.key(), self.now));
    }

    /// The page of a failure: a throttled check (`429`), the database unavailable (`503`), or
    /// anything else (`500`, its cause attached for [`crate::status::log_causes`]).
    fn failure(&self, e: &ServiceError) -> Response {
        let c = classify(e);
        match c.code {
            Code::RateLimited => {
                tracing::info!(ip = %self.ip(), error = %e, "web: throttled");
                let wait_seconds = c.retry_after.unwrap_or(1);
                let what = if let ServiceError::Throttled { what, .. } = e {
                    what.as_str()
                } else {
                    "too many requests"
                };
                reply::retry_after(
                    message(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many requests",
                        &format!(
                            "{}. Nothing was changed.",
                            forms::throttled_text(what, wait_seconds)
                        ),
                    ),
                    wait_seconds,
                )
            }
            Code::Unavailable => {
                let mut r = message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again",
                    "The service is temporarily unavailable. Nothing was changed; please try again in a moment.",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                if let Some(cause) = c.cause {
                    cause.attach(&mut r);
                }
                r
            }
            Code::InvalidField
            | Code::NotFound
            | Code::Conflict
            | Code::Unauthenticated
            | Code::Forbidden
            | Code::Internal => {
                let mut r = message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Please try again later.",
                );
                c.cause
                    .unwrap_or_else(|| Cause::new("web page error", format!("{e:?}")))
                    .attach(&mut r);
                r
            }
        }
    }

    /// The login page, with the login form's CSRF nonce cookie.
    fn login_page(
        &self,
        status: StatusCode,
        address: &str,
        error: Option<String>,
        flash: Option<String>,
    ) -> Response {
        let nonce = cookie(&self.headers, LOGIN_COOKIE)
            .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(random_hex, str::to_owned);
        let token = self.key().csrf_token("login", &nonce);
        let flash_cookie = self.flash();
        let had_flash = flash_cookie.is_some();
        let flash = flash.or(flash_cookie);
        let realm = self.realm.as_ref().map(Domain::as_str);
        let mut response = match pages::login_page(&token, realm, address, error, flash) {
            Ok(body) => html(status, body),
            Err(e) => return self.failure(&e),
        };
        set_cookie(&mut response, short_cookie(LOGIN_COOKIE, &nonce, 3600));
        if self.has_session_cookie() {
            set_cookie(&mut response, clear_cookie(SESSION_COOKIE));
        }
        if had_flash {
            set_cookie(&mut response, clear_cookie(FLASH_COOKIE));
        }
        response
    }

    /// A tab of a logged-in session, possibly with a refused form.
    async fn tab(
        &self,
        tab: Tab,
        session: &Session,
        refusal: Option<&Refusal>,
        status: StatusCode,
    ) -> Response {
        let svc = self.services(session);
        let account = match svc.account(&session.account).await {
            Ok(a) => a,
            Err(ServiceError::NotFound(_)) => {
                return self.login_page(
                    StatusCode::UNAUTHORIZED,
                    "",
                    None,
                    Some("This account no longer exists.".to_owned()),
                );
            }
            Err(e) => return self.failure(&e),
        };
        let flash = if refusal.is_none() {
            self.flash()
        } else {
            None
        };
        let had_flash = flash.is_some();
        let query = Params::parse(self.uri.query(), &HeaderMap::new(), b"").unwrap_or_default();
        let view = View {
            svc: &svc,
            account: &account,
            csrf: session.csrf(self.key()),
            flash,
            refusal,
            query: &query,
            host: self.host(),
        };
        match pages::page(tab, &view).await {
            Ok(body) => {
                let mut response = html(status, body);
                self.refresh(&mut response, session);
                if had_flash {
                    set_cookie(&mut response, clear_cookie(FLASH_COOKIE));
                }
                response
            }
            Err(e) => self.failure(&e),
        }
    }

    /// The login page for a request without a valid session.
    fn logged_out(&self) -> Response {
        let note = self
            .has_session_cookie()
            .then(|| "Your session has ended. Please log in again.".to_owned());
        self.login_page(StatusCode::OK, "", None, note)
    }
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            "The form was too large. Nothing was changed.",
        )),
        Err(_) => Err(message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The form could not be read. Nothing was changed.",
        )),
    }
}

/// Reads a POST's form after the cross-site check.
async fn posted_form(r: &Req, request: Request) -> Result<Params, Response> {
    if r.cross_site() {
        tracing::info!(ip = %r.ip(), path = %r.uri.path(), "web: cross-site POST refused");
        return Err(message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request came from another site and was refused. Nothing was changed.",
        ));
    }
    let account = r.session().map(|s| s.account);
    if let Err(wait) = r
        .state
        .limiter
        .check_account(account.as_ref(), r.ip(), Kind::Write, r.now)
    {
        tracing::info!(ip = %r.ip(), path = %r.uri.path(), "web: POST over the rate limit");
        return Err(too_many_page(
            "Too many changes in a short time. Nothing was changed.",
            wait,
        ));
    }
    let body = read_body(request.into_body()).await?;
    Params::parse(None, &r.headers, &body).map_err(|e| {
        message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!("The form could not be read: {e}. Nothing was changed."),
        )
    })
}

/// Blink's web view: `settings.phtml?realm=…&tab=NAME` (no `action`), for an account the
/// action endpoint authenticated (HTTP Digest, or a client certificate). The names Blink sends
/// and the tab each shows.
pub const BLINK_TABS: [(&str, Tab); 4] = [
    ("settings", Tab::Forwarding),
    ("calls", Tab::Calls),
    ("payments", Tab::Balance),
    ("contacts", Tab::Phonebook),
];

/// The web page's tab for Blink's `tab=NAME`: a session for `account` starts (its cookie is
/// set, so the page's links and forms — under `/web/…`, with the same CSRF tokens and
/// cross-site checks as after a login — work in the web view without a login), and the tab is
/// answered. An unknown name is `400` naming the tabs.
pub(crate) async fn blink_tab(
    state: AppState,
    headers: HeaderMap,
    uri: Uri,
    addr: SocketAddr,
    account: AccountId,
    name: &str,
) -> Response {
    let r = Req::from_parts(state, headers, uri, addr);
    let Some((_, tab)) = BLINK_TABS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = BLINK_TABS.iter().map(|(n, _)| *n).collect();
        return message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!(
                "tab must be one of {}; {:?} is not a tab of this page.",
                names.join(", "),
                sip_settings_core::ids::printable(name)
            ),
        );
    };
    let session = match r.session() {
        // The web view's own session goes on (its CSRF token stays valid).
        Some(s) if s.account == account => s,
        _ => {
            tracing::info!(%account, ip = %r.ip(), "web view session (settings.phtml tab)");
            Session::start(account, r.now)
        }
    };
    r.tab(*tab, &session, None, StatusCode::OK).await
}

async fn tab_page(State(state): State<AppState>, request: Request) -> Response {
    let r = Req::new(state, &request);
    let tab = Tab::from_path(r.uri.path()).unwrap_or(Tab::Info);
    match r.session() {
        Some(session) => r.tab(tab, &session, None, StatusCode::OK).await,
        None if tab == Tab::Info && r.uri.path() == "/" => r.logged_out(),
        None => redirect("/"),
    }
}

/// The address a login names: as typed when it has a domain (`alice@example.com`,
/// `sip:alice@example.com`), else the user part with the form's realm (Blink's web view, a
/// login page asked for with `?realm=`), else with the only domain served. Anything else is
/// left as typed (and is then a wrong login).
async fn qualify(
    svc: &Services,
    address: &str,
    realm: Option<&Domain>,
) -> Result<String, ServiceError> {
    if address.is_empty() || address.contains('@') {
        return Ok(address.to_owned());
    }
    let domain = match realm {
        Some(d) => Some(d.clone()),
        None => {
            let mut domains = svc.list_domains().await?;
            if domains.len() == 1 {
                domains.pop()
            } else {
                None
            }
        }
    };
    Ok(match domain {
        Some(d) => format!("{address}@{d}"),
        None => address.to_owned(),
    })
}

/// Wrong address and wrong password get the same answer.
const WRONG_LOGIN: &str = "Wrong SIP address or password";

async fn login(State(state): State<AppState>, request: Request) -> Response {
    let mut r = Req::new(state, &request);
    let params = match posted_form(&r, request).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    if let Some(realm) = params.get("realm").and_then(realm_domain) {
        r.realm = Some(realm);
    }
    let address = params.get("address").unwrap_or_default().trim().to_owned();
    let token_ok = cookie(&r.headers, LOGIN_COOKIE).is_some_and(|nonce| {
        r.key()
            .verify(&["login", nonce], params.get("csrf").unwrap_or_default())
    });
    if !token_ok {
        return r.login_page(
            StatusCode::FORBIDDEN,
            &address,
            Some(
                "The login form had expired or did not come from this page. Please try again \
                 (cookies must be allowed for this site)."
                    .to_owned(),
            ),
            None,
        );
    }
    let password = Password::offered(params.get("password").unwrap_or_default());
    let svc = r.state.services.with_origin(Origin {
        door: Door::WebPage,
        actor: "login".to_owned(),
        source: Some(r.ip().to_string()),
    });
    let qualified = match qualify(&svc, &address, r.realm.as_ref()).await {
        Ok(a) => a,
        Err(e) => return r.failure(&e),
    };
    match svc.log_in(&qualified, &password).await {
        Ok(Some(id)) => {
            tracing::info!(account = %id, ip = %r.ip(), "web login");
            let session = Session::start(id, r.now);
            let mut response = redirect("/");
            r.refresh(&mut response, &session);
            set_cookie(&mut response, clear_cookie(LOGIN_COOKIE));
            response
        }
        Ok(None) => {
            tracing::info!(ip = %r.ip(), "web login failed");
            r.login_page(
                StatusCode::UNAUTHORIZED,
                &address,
                Some(WRONG_LOGIN.to_owned()),
                None,
            )
        }
        Err(ServiceError::Throttled { what, wait_seconds }) => {
            tracing::info!(ip = %r.ip(), %what, "web login throttled");
            // The login's own words for a failure count (the page has always said so).
            let text = if what == sip_settings_core::throttle::BUSY {
                forms::throttled_text(&what, wait_seconds)
            } else {
                forms::throttled_text("too many failed logins", wait_seconds)
            };
            reply::retry_after(
                r.login_page(StatusCode::TOO_MANY_REQUESTS, &address, Some(text), None),
                wait_seconds,
            )
        }
        Err(e) => r.failure(&e),
    }
}

async fn logout(State(state): State<AppState>, request: Request) -> Response {
    let r = Req::new(state, &request);
    let params = match posted_form(&r, request).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    if let Some(session) = r.session() {
        if !r.key().verify(
            &["csrf", &session.nonce],
            params.get("csrf").unwrap_or_default(),
        ) {
            return csrf_refused();
        }
        tracing::info!(account = %session.account, ip = %r.ip(), "web logout");
    }
    let mut response = redirect("/");
    set_cookie(&mut response, clear_cookie(SESSION_COOKIE));
    set_cookie(
        &mut response,
        short_cookie(
            FLASH_COOKIE,
            &flash_value(r.key(), "You are logged out."),
            60,
        ),
    );
    response
}

/// `429` with `Retry-After`: the page says what and how long to wait.
fn too_many_page(text: &str, wait_seconds: u64) -> Response {
    let unit = if wait_seconds == 1 {
        "second"
    } else {
        "seconds"
    };
    reply::retry_after(
        message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!("{text} Please try again in {wait_seconds} {unit}."),
        ),
        wait_seconds,
    )
}

fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form did not come from this site's page, or the page is too old. Nothing was \
         changed. Reload the page and try again.",
    )
}

async fn form_post(State(state): State<AppState>, request: Request) -> Response {
    let r = Req::new(state, &request);
    let params = match posted_form(&r, request).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let Some(session) = r.session() else {
        return r.login_page(
            StatusCode::UNAUTHORIZED,
            "",
            Some("Your session has ended, so nothing was changed. Please log in again.".to_owned()),
            None,
        );
    };
    if !r.key().verify(
        &["csrf", &session.nonce],
        params.get("csrf").unwrap_or_default(),
    ) {
        tracing::info!(account = %session.account, ip = %r.ip(), "web: POST without a valid CSRF token refused");
        return csrf_refused();
    }
    let svc = r.services(&session);
    let account = match svc.account(&session.account).await {
        Ok(a) => a,
        Err(ServiceError::NotFound(_)) => return r.logged_out(),
        Err(e) => return r.failure(&e),
    };
    let submission = Submission {
        svc: &svc,
        account: &account,
        params: &params,
        user_agent: crate::user_agent(&r.headers),
    };
    match submission.run(r.uri.path()).await {
        Outcome::Done(tab, text) => {
            let mut response = redirect(tab.href());
            r.refresh(&mut response, &session);
            set_cookie(
                &mut response,
                short_cookie(FLASH_COOKIE, &flash_value(r.key(), &text), 60),
            );
            response
        }
        Outcome::Refused(tab, refusal, status) => {
            r.tab(tab, &session, Some(&refusal), status).await
        }
        Outcome::Throttled(tab, refusal, wait) => reply::retry_after(
            r.tab(tab, &session, Some(&refusal), StatusCode::TOO_MANY_REQUESTS)
                .await,
            wait,
        ),
        Outcome::File(mut response) => {
            r.refresh(&mut response, &session);
            response
        }
        Outcome::Failed(e) => r.failure(&e),
        Outcome::NotFound => message(StatusCode::NOT_FOUND, "Not found", "No such form."),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    protect(&mut response);
    response
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("static/style.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/web.js"),
    )
}

/// `ca.crt`: public, no login needed.
async fn ca_crt(State(state): State<AppState>) -> Response {
    let mut response = forms::file(
        "application/x-pem-file",
        "ca.crt",
        state.services.ca_pem().as_bytes().to_vec(),
    );
    protect(&mut response);
    response
}

/// The balance history as CSV (the same as `balance_history&csv=1`).
async fn balance_csv(State(state): State<AppState>, request: Request) -> Response {
    let r = Req::new(state, &request);
    let Some(session) = r.session() else {
        return redirect("/");
    };
    let svc = r.services(&session);
    let result = async {
        let account = svc.account(&session.account).await?;
        let history = svc.balance_history(&session.account, 1000).await?;
        crate::legacy::objects::history_csv(&account, &history)
            .map_err(|e| ServiceError::Internal(format!("csv: {e}")))
    }
    .await;
    match result {
        Ok(text) => {
            let mut response = forms::file(
                "text/csv; charset=utf-8",
                &format!("{}-balance.csv", session.account),
                text.into_bytes(),
            );
            protect(&mut response);
            r.refresh(&mut response, &session);
            response
        }
        Err(e) => r.failure(&e),
    }
}
