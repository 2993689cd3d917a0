//! The Journal tab: the change journal.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Layout, Tab, View, render};
use crate::legacy::objects::local_time;

#[derive(Debug)]
struct JournalView {
    at: String,
    resource: Vec<String>,
    old: Vec<String>,
    new: Vec<String>,
    actor: Vec<String>,
    door: String,
    source: Vec<String>,
}

/// The longest run of a value shown without a place to break it.
const LONGEST_RUN: usize = 24;

/// A value cut into the pieces after which a line may break (the template puts `<wbr>` between
/// them): after `.`, `,`, `:`, `;`, `/`, `@`, `=`, `&`, `"`, `}` and `]`, so that a resource name, an
/// address or a JSON value wraps between its tokens, never inside one; a run longer than
/// [`LONGEST_RUN`] without such a place (a fingerprint, a key) is cut every [`LONGEST_RUN`]
/// characters.
fn break_points(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut run = 0;
    for c in text.chars() {
        current.push(c);
        run += 1;
        if matches!(
            c,
            '.' | ',' | ':' | ';' | '/' | '@' | '=' | '&' | '"' | '}' | ']' | ' '
        ) || run >= LONGEST_RUN
        {
            parts.push(std::mem::take(&mut current));
            run = 0;
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
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
    let dash = |s: &Option<String>| break_points(s.as_deref().unwrap_or("—"));
    render(&JournalPage {
        layout: v.layout(Tab::Journal),
        timezone: v.tz(),
        entries: entries
            .iter()
            .map(|e| JournalView {
                at: local_time(v.account, e.entry.at),
                resource: break_points(&e.entry.resource),
                old: dash(&e.entry.old),
                new: dash(&e.entry.new),
                actor: break_points(&e.entry.actor),
                door: e.entry.door.clone(),
                source: break_points(e.entry.source.as_deref().unwrap_or_default()),
            })
            .collect(),
        older,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_break_between_their_tokens_and_long_runs_are_cut() {
        assert_eq!(
            break_points("forwarding.rules.6"),
            ["forwarding.", "rules.", "6"]
        );
        assert_eq!(
            break_points(r#"{"trigger":"busy"}"#),
            ["{\"", "trigger\"", ":", "\"", "busy\"", "}"]
        );
        let fingerprint = "ab".repeat(32);
        let parts = break_points(&fingerprint);
        assert!(parts.iter().all(|p| p.len() <= LONGEST_RUN), "{parts:?}");
        assert_eq!(parts.concat(), fingerprint);
        assert_eq!(break_points("").len(), 0);
    }
}
