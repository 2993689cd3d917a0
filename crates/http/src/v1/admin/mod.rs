//! The operator API under `/v1/admin/` for admin certificates (`sip-settings cert issue --admin
//! NAME`): domains, accounts, certificates, aliases and ENUM numbers, voicemail, reject and
//! accept rules and the phonebook, balances, prepaid cards, the rate table, call imports and the
//! journal.
//! Every handler calls the same `core` service function as its command-line twin (docs/api.md has the table); every change is journaled
//! through the `admin` door with the admin certificate as the actor ([`client::AdminClient`]).
//! JSON in and out (CSV in for the two imports); errors are problem documents; the single
//! resources carry ETags and their writes honour `If-Match`.
//!
//! [`client`] is what the resources share (the admin certificate, the account path parameter,
//! the error tables); they import nothing else of each other, nor of `/v1/me` or `/v1/service`.

pub mod accounts;
pub mod addresses;
pub mod billing;
pub mod certificates;
pub mod client;
pub mod domains;
pub mod journal;
pub mod rules;
pub mod voicemail;
pub mod vouchers;

use std::collections::BTreeMap;

use sip_settings_core::{AccountId, Domain};
use utoipa::IntoResponses;
use utoipa::openapi::{RefOr, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::v1::doc::{Header, problem_responses};
use crate::v1::error::ApiError;

/// The operator routes (documented in `/v1/openapi.json`, tags `admin …`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            domains::admin_list_domains,
            domains::admin_add_domain
        ))
        .routes(routes!(
            domains::admin_get_domain_digest,
            domains::admin_put_domain_digest
        ))
        .routes(routes!(journal::admin_domain_journal))
        .routes(routes!(
            accounts::admin_list_accounts,
            accounts::admin_add_account
        ))
        .routes(routes!(
            accounts::admin_get_account,
            accounts::admin_patch_account,
            accounts::admin_delete_account
        ))
        .routes(routes!(accounts::admin_set_password))
        .routes(routes!(journal::admin_account_journal))
        .routes(routes!(
            certificates::admin_account_certificates,
            certificates::admin_issue_account_certificate,
            certificates::admin_revoke_account_certificates
        ))
        .routes(routes!(
            certificates::admin_list_certificates,
            certificates::admin_issue_certificate
        ))
        .routes(routes!(
            certificates::admin_get_certificate,
            certificates::admin_revoke_certificate
        ))
        .routes(routes!(
            addresses::admin_list_aliases,
            addresses::admin_add_alias
        ))
        .routes(routes!(addresses::admin_remove_alias))
        .routes(routes!(
            addresses::admin_list_enum,
            addresses::admin_add_enum
        ))
        .routes(routes!(addresses::admin_remove_enum))
        .routes(routes!(
            voicemail::admin_get_voicemail,
            voicemail::admin_put_voicemail
        ))
        .routes(routes!(
            billing::admin_get_balance,
            billing::admin_set_balance
        ))
        .routes(routes!(billing::admin_topup))
        .routes(routes!(billing::admin_balance_history))
        .routes(routes!(
            billing::admin_list_rates,
            billing::admin_import_rates
        ))
        .routes(routes!(billing::admin_lookup_rate))
        .routes(routes!(billing::admin_import_calls))
        .routes(routes!(
            vouchers::admin_list_vouchers,
            vouchers::admin_create_vouchers
        ))
        .routes(routes!(vouchers::admin_disable_voucher))
        .routes(routes!(
            rules::admin_reject_rules,
            rules::admin_add_reject,
            rules::admin_remove_reject
        ))
        .routes(routes!(rules::admin_accept_rules))
        .routes(routes!(
            rules::admin_put_accept_rule,
            rules::admin_remove_accept_rule
        ))
        .routes(routes!(
            rules::admin_phonebook,
            rules::admin_put_phonebook_entry,
            rules::admin_remove_phonebook_entry
        ))
}

/// The account named by the path parameter `account` (`user@domain`).
pub(crate) fn account_of(path: &str) -> Result<AccountId, ApiError> {
    Ok(AccountId::parse_for("account", path)?)
}

/// The domain named by the path parameter `domain`.
pub(crate) fn domain_of(path: &str) -> Result<Domain, ApiError> {
    Ok(Domain::parse(path)?)
}

/// Answers of the operator reads besides success.
#[derive(Debug)]
pub struct AdminReadErrors;

impl IntoResponses for AdminReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            (304, "`If-None-Match` named the current ETag.", Header::None),
            (
                400,
                "A parameter is malformed (`field` names it).",
                Header::None,
            ),
            (401, "No client certificate.", Header::None),
            (
                403,
                "Not a valid admin certificate (unknown, revoked, expired, or a subscriber's or service's).",
                Header::None,
            ),
            (404, "No such account, domain or item.", Header::None),
            (
                503,
                "The database is temporarily unavailable.",
                Header::RetryAfter,
            ),
        ])
    }
}

/// Answers of the operator writes besides success.
#[derive(Debug)]
pub struct AdminWriteErrors;

impl IntoResponses for AdminWriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            (
                400,
                "The body or a parameter is malformed or not allowed (`field` names it, `body` for \
                 an import); nothing changed.",
                Header::None,
            ),
            (401, "No client certificate.", Header::None),
            (403, "Not a valid admin certificate.", Header::None),
            (404, "No such account, domain or item.", Header::None),
            (
                409,
                "The change conflicts with existing data (exists already, taken, at a limit).",
                Header::None,
            ),
            (
                412,
                "`If-Match` did not name the current ETag; nothing changed.",
                Header::CurrentEtag,
            ),
            (
                413,
                "The body is larger than 64 KiB (1 MiB for the CSV imports).",
                Header::None,
            ),
            (
                503,
                "The database is temporarily unavailable.",
                Header::RetryAfter,
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use sip_settings_core::cert::CertSubject;

    use crate::v1::testing::{TestApp, assert_problem};

    /// The admin extractor: no certificate `401`, a subscriber's or a service's `403`, an
    /// admin's passes; and the admin certificate is `403` on `/v1/me`.
    #[tokio::test]
    async fn only_admin_certificates_pass() {
        let t = TestApp::new().await;
        let admin = t
            .services
            .issue_certificate(CertSubject::Admin("ops".into()), None, None)
            .await
            .unwrap();
        let path = "/v1/admin/domains";
        let r = t.send_as(None, Method::GET, path, None).await;
        assert_problem(&r, 401, "unauthenticated", None);
        for cert in [&t.alice, &t.service] {
            let r = t.send(cert, Method::GET, path, None).await;
            assert_problem(&r, 403, "forbidden", None);
            assert_eq!(
                r.body["detail"],
                "the operator API takes admin certificates only"
            );
        }
        let r = t.send(&admin, Method::GET, path, None).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        assert_eq!(r.body["domains"][0], "example.com");
        let r = t.send(&admin, Method::GET, "/v1/me", None).await;
        assert_problem(&r, 403, "forbidden", None);
    }

    /// A `400` of the operator API names its field; a CSV import's names `body`.
    #[tokio::test]
    async fn every_400_names_its_field() {
        let t = TestApp::new().await;
        let admin = t
            .services
            .issue_certificate(CertSubject::Admin("ops".into()), None, None)
            .await
            .unwrap();
        let cases = [
            (
                Method::POST,
                "/v1/admin/domains",
                Some(r#"{"domain": "-x.com"}"#),
                "domain",
            ),
            (
                Method::POST,
                "/v1/admin/accounts",
                Some(r#"{"address": "a@example.com"}"#),
                "password",
            ),
            (
                Method::PATCH,
                "/v1/admin/accounts/alice@example.com",
                Some(r#"{"prepaid": 1}"#),
                "prepaid",
            ),
            (
                Method::PUT,
                "/v1/admin/accounts/a%FF@example.com/password",
                Some(r#"{"password": "long-enough"}"#),
                "account",
            ),
            (
                Method::GET,
                "/v1/admin/accounts?q=x&limit=1001",
                None,
                "limit",
            ),
            (Method::POST, "/v1/admin/rates", Some("prefix\n1\n"), "body"),
            (Method::POST, "/v1/admin/calls", Some(""), "body"),
        ];
        for (method, path, body, field) in cases {
            let r = t.send(&admin, method.clone(), path, body).await;
            assert_problem(&r, 400, "invalid_field", Some(field));
        }
    }

    /// Every operator route is in the document, tagged `admin …`, and the `mutualTLS` scheme
    /// says it admits admin certificates for `/v1/admin`.
    #[test]
    fn the_document_has_the_operator_routes() {
        let doc = serde_json::to_value(crate::v1::openapi::document()).unwrap();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/v1/admin/") {
                continue;
            }
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let tag = op["tags"][0].as_str().unwrap_or_default();
                assert!(tag.starts_with("admin "), "{method} {path}: tag {tag}");
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(id.starts_with("admin_"), "{method} {path}: {id}");
            }
        }
        assert!(operations >= 40, "{operations} operator operations");
        let scheme = &doc["components"]["securitySchemes"]["mutualTLS"]["description"];
        assert!(
            scheme
                .as_str()
                .unwrap_or_default()
                .contains("admin certificate"),
            "{scheme}"
        );
    }
}
