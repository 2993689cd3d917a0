//! The Journal tab: the change journal.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Layout, Tab, View, render};
use crate::legacy::objects::local_time;

#[derive(Debug)]
struct JournalView {
    at: String,
    resource: String,
    old: String,
    new: String,
    actor: String,
    door: String,
    source: String,
}

#[derive(Template)]
#[template(path = "web/journal.html")]
struct JournalPage {
    layout: Layout,
    timezone: String,
    entries: Vec<JournalView>,
    older: Option<String>,
}

/// Journal entries per page.
const JOURNAL_PAGE: u32 = 50;

pub(super) async fn journal(v: &View<'_>) -> Result<String, ServiceError> {
    let before = v.query.get("before").and_then(|b| b.parse::<i64>().ok());
    let entries = v
        .svc
        .journal_entries(&v.account.id, before, JOURNAL_PAGE)
        .await?;
    let older = if entries.len() == JOURNAL_PAGE as usize {
        entries
            .last()
            .map(|e| format!("/web/journal?before={}", e.id))
    } else {
        None
    };
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".to_owned());
    render(&JournalPage {
        layout: v.layout(Tab::Journal),
        timezone: v.tz(),
        entries: entries
            .iter()
            .map(|e| JournalView {
                at: local_time(v.account, e.entry.at),
                resource: e.entry.resource.clone(),
                old: dash(&e.entry.old),
                new: dash(&e.entry.new),
                actor: e.entry.actor.clone(),
                door: e.entry.door.clone(),
                source: e.entry.source.clone().unwrap_or_default(),
            })
            .collect(),
        older,
    })
}
