//! The resource API for subscribers under `/v1/me/`: JSON in and out, problem documents for
//! errors, an `ETag` on every representation and `If-Match` on every write (see [`crate::etag`]),
//! rate limits per certificate and address on every route. Every handler calls the same `core`
//! service functions as the action endpoint; changes go through
//! [`crate::identity::Subscriber::services`], so the journal records them as made through the
//! `v1` door.
//!
//! The routes are registered from the annotated handlers ([`fn@routes`]), so the OpenAPI document
//! (`/v1/openapi.json`, [`crate::v1::openapi`]) cannot drift from them.

pub mod accept;
pub mod account;
pub mod aliases;
pub mod billing;
pub mod calls;
pub mod certificates;
pub mod devices;
pub mod dnd;
pub mod forwarding;
pub mod forwarding_rules;
pub mod journal;
pub mod phonebook;
pub mod privacy;
pub mod reject;
pub mod routing;
pub mod voicemail;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The `/v1/me` routes, each registered from its annotated handler.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(account::get_account, account::patch_account))
        .routes(routes!(
            forwarding::get_diversions,
            forwarding::put_diversions,
            forwarding::patch_diversions
        ))
        .routes(routes!(
            forwarding::get_diversion,
            forwarding::put_diversion,
            forwarding::delete_diversion
        ))
        .routes(routes!(
            forwarding_rules::get_rules,
            forwarding_rules::put_rules,
            forwarding_rules::post_rule
        ))
        .routes(routes!(
            forwarding_rules::get_rule,
            forwarding_rules::put_rule,
            forwarding_rules::delete_rule
        ))
        .routes(routes!(
            forwarding_rules::get_sets,
            forwarding_rules::put_sets
        ))
        .routes(routes!(accept::get_accept_rules))
        .routes(routes!(
            accept::get_temporary_rule,
            accept::put_temporary_rule,
            accept::delete_temporary_rule
        ))
        .routes(routes!(
            accept::get_accept_rule,
            accept::put_accept_rule,
            accept::delete_accept_rule
        ))
        .routes(routes!(reject::get_reject_rules, reject::post_reject_rule))
        .routes(routes!(reject::get_reject_rule, reject::delete_reject_rule))
        .routes(routes!(dnd::get_dnd, dnd::put_dnd, dnd::delete_dnd))
        .routes(routes!(privacy::get_privacy, privacy::put_privacy))
        .routes(routes!(aliases::get_aliases, aliases::post_alias))
        .routes(routes!(aliases::get_alias, aliases::delete_alias))
        .routes(routes!(aliases::get_enum))
        .routes(routes!(calls::get_calls))
        .routes(routes!(billing::get_prepaid))
        .routes(routes!(devices::get_devices))
        .routes(routes!(billing::get_balance_history))
        .routes(routes!(billing::get_usage))
        .routes(routes!(
            voicemail::get_voicemail,
            voicemail::put_voicemail,
            voicemail::patch_voicemail,
            voicemail::delete_voicemail
        ))
        .routes(routes!(
            phonebook::get_phonebook,
            phonebook::post_phonebook_entry
        ))
        .routes(routes!(
            phonebook::get_phonebook_entry,
            phonebook::put_phonebook_entry,
            phonebook::delete_phonebook_entry
        ))
        .routes(routes!(
            certificates::list_certificates,
            certificates::issue_certificate
        ))
        .routes(routes!(
            certificates::get_certificate,
            certificates::rename_certificate,
            certificates::revoke_certificate
        ))
        .routes(routes!(journal::journal))
        .routes(routes!(routing::explain_route))
}
