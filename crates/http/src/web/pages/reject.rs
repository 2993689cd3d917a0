//! The Reject tab: reject patterns.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Field, Layout, Tab, View, render};

#[derive(Template)]
#[template(path = "web/reject.html")]
struct RejectPage {
    layout: Layout,
    patterns: Vec<String>,
    pattern: Field,
}

pub(super) async fn reject(v: &View<'_>) -> Result<String, ServiceError> {
    let patterns = v.svc.reject_patterns(&v.account.id).await?;
    render(&RejectPage {
        layout: v.layout(Tab::Reject),
        patterns: patterns.iter().map(ToString::to_string).collect(),
        pattern: Field::new(
            "reject",
            "pattern",
            "Pattern",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint("sip:user@domain, with % for any text, e.g. sip:%@spam.example"),
    })
}
