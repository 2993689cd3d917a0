//! The Aliases tab: aliases and ENUM numbers.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Field, Layout, Tab, View, render};

#[derive(Template)]
#[template(path = "web/aliases.html")]
struct AliasesPage {
    layout: Layout,
    domain: String,
    aliases: Vec<String>,
    numbers: Vec<String>,
    username: Field,
}

pub(super) async fn aliases(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let aliases = v.svc.aliases(id).await?;
    let numbers = v.svc.enum_numbers(id).await?;
    render(&AliasesPage {
        layout: v.layout(Tab::Aliases),
        domain: id.domain().to_string(),
        aliases: aliases.iter().map(ToString::to_string).collect(),
        numbers: numbers.iter().map(ToString::to_string).collect(),
        username: Field::new(
            "alias",
            "username",
            "New alias",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint(format!(
            "The part before @{}: letters, digits, '.', '_' and '-'.",
            id.domain()
        )),
    })
}
