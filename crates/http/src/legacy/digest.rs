//! HTTP Digest (RFC 7616) on `settings.phtml`, for clients without a client certificate (Blink
//! sends the SIP user part and password, and only after a challenge). Used by the action
//! endpoint only: `/v1/me`, `/v1/service`, `/v1/admin` and the web page never look at an
//! `Authorization: Digest` header. The pure parts are in [`sip_settings_core::digest`].

use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use sip_settings_core::digest::{Algorithm, Authorization, NonceCheck, challenge};
use sip_settings_core::journal::{Door, Origin};
use sip_settings_core::{AccountId, Domain, ServiceError, Services};

use crate::AppState;
use crate::legacy::reply;

/// What the request presented.
const NO_CREDENTIALS: &str = "a client certificate is required";

/// The realm of a request: `?realm=` (`x@domain` → `domain`), else the domain of a
/// `user@domain` user name, else the realm the client answered, else the only domain served.
async fn realm_of(
    services: &Services,
    query: Option<&str>,
    answer: Option<&Authorization>,
) -> Option<Domain> {
    if let Some(r) = crate::web::realm_param(query) {
        return crate::web::realm_domain(&r);
    }
    let text = answer
        .and_then(|a| a.username.split_once('@').map(|(_, d)| d.to_owned()))
        .or_else(|| answer.map(|a| a.realm.clone()));
    match text {
        Some(t) => Domain::parse(&t).ok(),
        None => match services.list_domains().await {
            Ok(domains) if domains.len() == 1 => domains.into_iter().next(),
            _ => None,
        },
    }
}

/// A `401` with the JSON body of today and, when `realm` takes Digest, the two challenges: MD5
/// first, then SHA-256. (RFC 7616 would list the preferred one first, but clients such as
/// Python's `urllib` answer only the first challenge and know only MD5; Blink must work.)
fn unauthorized(state: &AppState, realm: Option<&Domain>, text: &str, stale: bool) -> Response {
    let mut response = reply::service_error(&ServiceError::Unauthenticated(text.to_owned()));
    if let Some(realm) = realm {
        let now = state.services.clock().now();
        let nonce = state.digest.issue(realm.as_str(), now);
        let opaque = state.digest.opaque(realm.as_str());
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let value = challenge(algorithm, realm.as_str(), &nonce, &opaque, stale);
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
    }
    response
}

/// The account behind a request's Digest credentials, or the reply refusing it: a challenge
/// when the realm takes Digest, a plain `401` when it does not (the domain's switch is off, or
/// no realm can be told), `429` when the account's password checks are throttled.
pub async fn authenticate(
    state: &AppState,
    addr: std::net::SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<AccountId, Response> {
    let services = state.services.with_origin(Origin {
        door: Door::ActionApi,
        actor: "digest".to_owned(),
        source: Some(addr.ip().to_string()),
    });
    let header_text = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
        });
    let parsed = header_text.map(Authorization::parse);
    let answer = parsed.as_ref().and_then(|p| p.as_ref().ok());
    let realm = realm_of(&services, uri.query(), answer).await;
    let enabled = match &realm {
        Some(d) => match services.domain_digest(d).await {
            Ok(on) => on == Some(true),
            Err(e) => return Err(reply::service_error(&e)),
        },
        None => false,
    };
    let Some(parsed) = parsed else {
        return Err(unauthorized(
            state,
            realm.as_ref().filter(|_| enabled),
            NO_CREDENTIALS,
            false,
        ));
    };
    let Some(realm) = realm.filter(|_| enabled) else {
        return Err(unauthorized(
            state,
            None,
            "HTTP Digest is not accepted for this realm; a client certificate is required",
            false,
        ));
    };
    let refuse = |text: &str| unauthorized(state, Some(&realm), text, false);
    let answer = match parsed {
        Ok(a) => a,
        Err(e) => return Err(refuse(&e.to_string())),
    };
    if !answer.realm.eq_ignore_ascii_case(realm.as_str()) {
        return Err(refuse(
            "Digest authorization: the realm is not this request's realm",
        ));
    }
    let expected_uri = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    if answer.uri != expected_uri && answer.uri != uri.to_string() {
        return Err(refuse("Digest authorization: uri is not the request's URI"));
    }
    if answer
        .opaque
        .as_deref()
        .is_some_and(|o| o != state.digest.opaque(realm.as_str()))
    {
        return Err(refuse("Digest authorization: opaque is not ours"));
    }
    let now = services.clock().now();
    let freshness = state.digest.check(&answer.nonce, realm.as_str(), now);
    if freshness == NonceCheck::Invalid {
        return Err(refuse("Digest authorization: unknown nonce"));
    }
    let id = match answer.username.split_once('@') {
        Some(_) => AccountId::parse(&answer.username),
        None => AccountId::parse(&format!("{}@{}", answer.username, realm)),
    };
    let Ok(id) = id.map_err(|_| ()).and_then(|id| {
        if id.domain() == &realm {
            Ok(id)
        } else {
            Err(())
        }
    }) else {
        return Err(refuse(
            "Digest authorization: the user name is not in the realm",
        ));
    };
    match services.verify_digest(&id, &answer, method.as_str()).await {
        Err(e) => return Err(reply::service_error(&e)),
        Ok(false) => return Err(refuse("wrong user name or password")),
        Ok(true) => {}
    }
    if freshness == NonceCheck::Stale {
        return Err(unauthorized(
            state,
            Some(&realm),
            "Digest authorization: the nonce has expired",
            true,
        ));
    }
    if !state.digest.accept_count(&answer.nonce, answer.nc, now) {
        return Err(refuse(
            "Digest authorization: nonce count already used (a replay)",
        ));
    }
    Ok(id)
}
