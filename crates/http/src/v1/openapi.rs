//! `/v1/openapi.json`: the OpenAPI 3.1 document of the `/v1` resource and service routes,
//! generated from the annotated handlers that the routes are registered from (utoipa +
//! utoipa-axum `OpenApiRouter`), so the document cannot drift from the routes. Served without
//! authentication; every operation in it requires a client certificate (`mutualTLS`).

use utoipa::openapi::security::SecurityScheme;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::v1::doc::Problem;
use crate::v1::{admin, me, service};

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
                     (CN=user@domain) for /v1/me, a service certificate for /v1/service, an \
                     admin certificate (sip-settings cert issue --admin NAME) for /v1/admin."
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
                       /v1/me, routing decisions for proxies under /v1/service, provisioning for \
                       the operator under /v1/admin. JSON in and out; \
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
        (name = "admin domains", description = "Operator API (admin certificates): domains"),
        (name = "admin accounts", description = "Operator API: accounts and their SIP passwords"),
        (name = "admin certificates", description = "Operator API: client certificates"),
        (name = "admin aliases", description = "Operator API: aliases and ENUM numbers"),
        (name = "admin voicemail", description = "Operator API: voice mailboxes"),
        (name = "admin rules", description = "Operator API: reject and accept rules, phonebooks"),
        (name = "admin billing", description = "Operator API: balances, prepaid cards, rates, call imports"),
        (name = "admin journal", description = "Operator API: the journal of accounts and domains"),
    )
)]
struct ApiDoc;

/// The `/v1` routes, each registered from its annotated handler, with the document they make.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(me::routes())
        .merge(service::routes())
        .merge(admin::routes())
}

/// The OpenAPI document of the `/v1` routes (JSON: see [`crate::v1::doc::exact`]).
pub fn document() -> serde_json::Value {
    crate::v1::doc::exact(api_router().into_openapi())
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
        use crate::v1::admin::{
            accounts as a_accounts, addresses as a_addresses, billing as a_billing,
            certificates as a_certificates, domains as a_domains, rules as a_rules,
            voicemail as a_voicemail, vouchers as a_vouchers,
        };
        use crate::v1::me::{
            accept, account, aliases, certificates, dnd, forwarding, phonebook, privacy, reject,
            voicemail,
        };
        use crate::v1::service::{calls, prepaid, registrations, route};
        vec![
            ("AccountPatch", decode::<account::AccountPatch>),
            ("DiversionsPut", decode::<forwarding::DiversionsPut>),
            ("DiversionsPatch", decode::<forwarding::DiversionsPatch>),
            ("DiversionBody", decode::<forwarding::DiversionBody>),
            ("TemporaryRuleBody", decode::<accept::TemporaryRuleBody>),
            ("AcceptRuleBody", decode::<accept::AcceptRuleBody>),
            ("RejectRuleView", decode::<reject::RejectRuleView>),
            ("DndBody", decode::<dnd::DndBody>),
            ("PrivacyView", decode::<privacy::PrivacyView>),
            ("AliasBody", decode::<aliases::AliasBody>),
            ("VoicemailBody", decode::<voicemail::VoicemailBody>),
            ("VoicemailPut", decode::<voicemail::VoicemailBody>),
            ("PhonebookPost", decode::<phonebook::PhonebookPost>),
            ("PhonebookPut", decode::<phonebook::PhonebookPut>),
            ("CsrBody", decode::<certificates::CsrBody>),
            ("CertificatePatch", decode::<certificates::CertificatePatch>),
            ("RouteRequest", decode::<route::RouteRequest>),
            ("CallRecordBody", decode::<calls::CallRecordBody>),
            ("OpenBody", decode::<prepaid::OpenBody>),
            ("CloseBody", decode::<prepaid::CloseBody>),
            (
                "RegistrationBody",
                decode::<registrations::RegistrationBody>,
            ),
            ("CallBatchBody", decode::<calls::CallBatchBody>),
            ("DomainBody", decode::<a_domains::DomainBody>),
            ("DigestBody", decode::<a_domains::DigestBody>),
            ("AccountCreate", decode::<a_accounts::AccountCreate>),
            ("AdminAccountPatch", decode::<a_accounts::AdminAccountPatch>),
            ("PasswordBody", decode::<a_accounts::PasswordBody>),
            ("IssueBody", decode::<a_certificates::IssueBody>),
            ("HolderIssueBody", decode::<a_certificates::HolderIssueBody>),
            ("AdminAliasBody", decode::<a_addresses::AdminAliasBody>),
            ("AdminEnumBody", decode::<a_addresses::AdminEnumBody>),
            (
                "AdminVoicemailBody",
                decode::<a_voicemail::AdminVoicemailBody>,
            ),
            ("SetBalanceBody", decode::<a_billing::SetBalanceBody>),
            ("TopupBody", decode::<a_billing::TopupBody>),
            ("VoucherBatchBody", decode::<a_vouchers::VoucherBatchBody>),
            ("AdminRejectBody", decode::<a_rules::AdminRejectBody>),
            (
                "AdminAcceptRuleBody",
                decode::<a_rules::AdminAcceptRuleBody>,
            ),
            (
                "AdminPhonebookEntry",
                decode::<a_rules::AdminPhonebookEntry>,
            ),
            ("RuleDoc", decode::<sip_settings_core::forwarding::RuleDoc>),
            (
                "RulesPut",
                decode::<crate::v1::me::forwarding_rules::RulesPut>,
            ),
            (
                "SetsView",
                decode::<crate::v1::me::forwarding_rules::SetsView>,
            ),
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
                    if media != "application/json" {
                        // The CSV imports: text, read by core's CSV parsers.
                        continue;
                    }
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
            ("VoicemailPut", "enabled"),
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
