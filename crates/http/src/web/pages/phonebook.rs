//! The Phonebook tab.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Field, Layout, Tab, View, render};

#[derive(Debug)]
struct EntryView {
    uri: String,
    name: String,
    groups: String,
}

#[derive(Template)]
#[template(path = "web/phonebook.html")]
struct PhonebookPage {
    layout: Layout,
    entries: Vec<EntryView>,
    uri: Field,
    name: Field,
    group: Field,
}

pub(super) async fn phonebook(v: &View<'_>) -> Result<String, ServiceError> {
    let entries = v.svc.phonebook(&v.account.id).await?;
    render(&PhonebookPage {
        layout: v.layout(Tab::Phonebook),
        entries: entries
            .iter()
            .map(|e| EntryView {
                uri: e.uri.to_string(),
                name: e.name.clone(),
                groups: e.groups.join(", "),
            })
            .collect(),
        uri: Field::new(
            "phonebook",
            "uri",
            "Address",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint("sip:mom@example.org or mom@example.org"),
        name: Field::new(
            "phonebook",
            "name",
            "Name",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off""#),
        group: Field::new(
            "phonebook",
            "group",
            "Groups",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint("One or more, separated by commas, e.g. family,work"),
    })
}
