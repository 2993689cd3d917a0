//! `/v1/openapi.json`: the OpenAPI 3.1 document of the `/v1` resource and service routes,
//! generated from the annotated handlers that the routes are registered from (utoipa +
//! utoipa-axum `OpenApiRouter`), so the document cannot drift from the routes. Served without
//! authentication; every operation in it requires a client certificate (`mutualTLS`).

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::SecurityScheme;
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// An RFC 9457 problem document (`application/problem+json`), as every `/v1` error is.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documentation of crate::problem's JSON
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    /// The HTTP reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// Stable machine-readable code: `invalid_field`, `invalid_json`, `not_found`, `conflict`,
    /// `precondition_failed`, `unauthenticated`, `forbidden`, `rate_limited`, `body_too_large`,
    /// `unavailable`, `internal`.
    code: String,
    /// What is wrong, for a human.
    detail: String,
    /// The offending field or parameter, when there is one.
    field: Option<String>,
}

/// Answers of the `/v1/me` reads besides success.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ReadErrors {
    /// `If-None-Match` named the current ETag.
    #[response(status = 304)]
    NotModified,
    /// A parameter is malformed (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No client certificate.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// Not a valid subscriber certificate (unknown, revoked, expired, or not a subscriber's).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource (of this account).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Too many requests (`Retry-After` says when to try again).
    #[response(status = 429, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    TooManyRequests(Problem),
    /// The database is temporarily unavailable.
    #[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    Unavailable(Problem),
}

/// Answers of the `/v1/me` writes besides success.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum WriteErrors {
    /// The body or a parameter is malformed or not allowed (`field` names it); nothing changed.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No client certificate.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// Not a valid subscriber certificate.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource (of this account).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The change conflicts with existing data (taken, duplicate, at a limit).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` did not name the current ETag; nothing changed.
    #[response(status = 412, content_type = "application/problem+json", headers(("ETag" = String, description = "The current entity tag")))]
    PreconditionFailed(Problem),
    /// The body is larger than 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Too many requests.
    #[response(status = 429, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    TooManyRequests(Problem),
    /// The database is temporarily unavailable.
    #[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    Unavailable(Problem),
}

/// Answers of the service routes besides success.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ServiceErrors {
    /// The body is malformed (`field` names the offending field).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No client certificate.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// Not a service certificate.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The callee is not a local account, alias or number.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body is larger than 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The database is temporarily unavailable.
    #[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    Unavailable(Problem),
}

/// Adds the `mutualTLS` security scheme.
#[derive(Debug)]
struct MutualTls;

impl Modify for MutualTls {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "mutualTLS",
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate issued by this service: a subscriber certificate \
                     (CN=user@domain) for /v1/me, a service certificate for /v1/service."
                        .to_owned(),
                ),
                extensions: None,
            },
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sip-settings",
        description = "The resource API of sip-settings: a subscriber's own settings under \
                       /v1/me, routing decisions for proxies under /v1/service. JSON in and out; \
                       errors are RFC 9457 problem documents; every representation has a strong \
                       ETag and writes honour If-Match (412 when stale). See docs/api.md."
    ),
    modifiers(&MutualTls),
    security(("mutualTLS" = [])),
    components(schemas(Problem)),
    tags(
        (name = "account", description = "The account's profile"),
        (name = "forwarding", description = "Call forwarding per condition"),
        (name = "accept rules", description = "Who may call when; the temporary rule"),
        (name = "reject rules", description = "Callers that are refused"),
        (name = "dnd", description = "Do Not Disturb"),
        (name = "privacy", description = "Caller-id privacy"),
        (name = "aliases", description = "Aliases and ENUM numbers"),
        (name = "calls", description = "Calls, prepaid balance, usage"),
        (name = "voicemail", description = "The voice mailbox"),
        (name = "phonebook", description = "Contacts and their groups"),
        (name = "certificates", description = "The account's own client certificates"),
        (name = "journal", description = "Audit trail of changes"),
        (name = "routing", description = "What happens to a call"),
        (name = "service", description = "For SIP proxies (service certificates)"),
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::resources::routes())
        .merge(crate::explain::routes())
        .merge(crate::service_api::routes())
}

/// The OpenAPI document of the `/v1` routes.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The `/v1` resource routes (from their annotated handlers) and `/v1/openapi.json`.
pub fn routes() -> Router<AppState> {
    let (router, api) = api_router().split_for_parts();
    let json: Arc<str> = Arc::from(api.to_pretty_json().unwrap_or_default());
    router.route(
        "/v1/openapi.json",
        get(move || {
            let json = json.clone();
            async move {
                let mut r: Response = json.to_string().into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_3_1_with_mutual_tls() {
        let doc = serde_json::to_value(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(
            doc["components"]["securitySchemes"]["mutualTLS"]["type"],
            "mutualTLS"
        );
        assert!(doc["paths"]["/v1/me"]["get"].is_object());
        if let Ok(path) = std::env::var("SIP_SETTINGS_OPENAPI_OUT") {
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
    }

    /// Deserializes `json` as `T` the way the handlers do; the error names its path.
    fn decode<T: serde::de::DeserializeOwned>(json: &str) -> Result<(), (String, String)> {
        let mut de = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize::<_, T>(&mut de)
            .map(|_| ())
            .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
    }

    type Decoder = fn(&str) -> Result<(), (String, String)>;

    /// Every request body schema of the document and the type its handler deserializes.
    fn decoders() -> Vec<(&'static str, Decoder)> {
        use crate::{explain, resources as r, service_api as s};
        vec![
            ("AccountPatch", decode::<r::AccountPatch>),
            ("DiversionsPut", decode::<r::DiversionsPut>),
            ("DiversionsPatch", decode::<r::DiversionsPatch>),
            ("DiversionBody", decode::<r::DiversionBody>),
            ("TemporaryRuleBody", decode::<r::TemporaryRuleBody>),
            ("AcceptRuleBody", decode::<r::AcceptRuleBody>),
            ("RejectRuleView", decode::<r::RejectRuleView>),
            ("DndBody", decode::<r::DndBody>),
            ("PrivacyView", decode::<r::PrivacyView>),
            ("AliasBody", decode::<r::AliasBody>),
            ("VoicemailBody", decode::<r::VoicemailBody>),
            ("PhonebookPost", decode::<r::PhonebookPost>),
            ("PhonebookPut", decode::<r::PhonebookPut>),
            ("CsrBody", decode::<r::CsrBody>),
            ("RouteRequest", decode::<explain::RouteRequest>),
            ("CallRecordBody", decode::<s::CallRecordBody>),
            ("OpenBody", decode::<s::OpenBody>),
            ("CloseBody", decode::<s::CloseBody>),
            ("RegistrationBody", decode::<s::RegistrationBody>),
            ("CallBatchBody", decode::<s::CallBatchBody>),
        ]
    }

    /// The document and the server agree on `null`: every property the document declares
    /// nullable takes an explicit `null`, and every other one is refused with `null` by serde
    /// naming it, or is one of the few whose `null` core reports as missing.
    #[test]
    fn nullable_in_the_document_means_null_is_accepted() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let decoders = decoders();
        let mut problems = Vec::new();
        let mut bodies = std::collections::BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let Some(content) = op["requestBody"]["content"].as_object() else {
                    continue;
                };
                for (media, c) in content {
                    let reference = c["schema"]["$ref"].as_str().unwrap_or_else(|| {
                        panic!("{method} {path} {media}: an inline body schema")
                    });
                    bodies.insert(reference.rsplit('/').next().unwrap().to_owned());
                }
            }
        }
        assert!(bodies.len() >= 18, "{bodies:?}");
        // Fields whose `null` is decoded as absent and then refused as missing by core.
        let reported_missing = [
            ("CallRecordBody", "duration"),
            ("CallRecordBody", "status"),
            ("RegistrationBody", "cseq"),
        ];
        for name in &bodies {
            let Some((_, decoder)) = decoders.iter().find(|(n, _)| n == name) else {
                problems.push(format!("{name}: not in decoders(), add its Rust type"));
                continue;
            };
            let properties = schemas[name.as_str()]["properties"].as_object().unwrap();
            for (field, schema) in properties {
                let types = &schema["type"];
                let nullable = types.as_array().is_some_and(|t| t.contains(&"null".into()))
                    || schema["oneOf"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|s| s["type"] == "null"));
                let result = decoder(&format!("{{\"{field}\": null}}"));
                let refused_here =
                    matches!(&result, Err((p, m)) if p == field && m.contains("null"));
                if nullable && refused_here {
                    problems.push(format!(
                        "{name}.{field}: nullable, but null is refused: {result:?}"
                    ));
                }
                if !nullable
                    && !refused_here
                    && !reported_missing.contains(&(name.as_str(), field.as_str()))
                {
                    problems.push(format!(
                        "{name}.{field}: not nullable, but null passes: {result:?}"
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
