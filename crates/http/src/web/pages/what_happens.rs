//! The "What happens" tab: the decision for a call from a chosen caller (a phonebook contact,
//! any address, anonymous) at a chosen moment (now, or a day and time in the account's zone),
//! drawn as a small flow of the rules consulted (server-drawn SVG) ending in what the caller
//! experiences, with the same steps as a list for screen readers. It asks the very function
//! `GET /v1/me/routing/explain` asks ([`crate::v1::explain::explain`], `Services::route_call`),
//! so the page and the API cannot disagree; the SIP door decides with the same function
//! (without the path text, its outcome tested equal in `core`).

use std::fmt::Write as _;

use crate::web::charts::escape;

use askama::Template;
use chrono::{NaiveDate, NaiveTime, TimeZone};
use sip_settings_core::ServiceError;
use sip_settings_core::routing::CallState;

use super::{Field, Layout, Tab, View, render};
use crate::v1::explain::{DestinationView, ForwardView, OutcomeView, explain};

/// A caller to choose.
#[derive(Debug)]
struct CallerChoice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "web/what_happens.html")]
struct WhatPage {
    layout: Layout,
    timezone: String,
    callers: Vec<CallerChoice>,
    other: Field,
    day: Field,
    time: Field,
    offline: bool,
    busy: bool,
    /// The question asked, in words.
    question: String,
    /// The decision's steps and its end, as the list shows them.
    steps: Vec<String>,
    /// What the caller experiences, in words.
    ending: Vec<String>,
    /// The flow (inline SVG).
    flow: String,
    /// The outcome as the API shows it (JSON), for tests and scripts.
    outcome_json: String,
    /// A refusal of the question (an address that is none, a time that does not exist).
    error: Option<String>,
}

/// A destination in words.
fn destination(d: &DestinationView) -> String {
    match d {
        DestinationView::Uri(u) => super::target_shown(u),
        DestinationView::VoiceMailbox => "your voice mailbox".to_owned(),
    }
}

/// A forward in words: where, for how long, and why.
fn forward_text(f: &ForwardView) -> String {
    let whom = if f.steps.is_empty() {
        destination(&f.destination)
    } else {
        f.steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let who: Vec<String> = s.destinations.iter().map(destination).collect();
                let who = who.join(" and ");
                if i + 1 == f.steps.len() {
                    format!("{who} (rings {} s)", s.ring_seconds)
                } else {
                    format!("{who} for {} s", s.ring_seconds)
                }
            })
            .collect::<Vec<_>>()
            .join(", then ")
    };
    if f.redirect {
        format!(
            "the caller is sent on to {whom} (a redirect, reason {})",
            f.reason
        )
    } else {
        format!("forwarded to {whom} (reason {})", f.reason)
    }
}

/// What the caller experiences, one sentence per branch.
fn ending(outcome: &OutcomeView) -> Vec<String> {
    match outcome {
        OutcomeView::Reject { code, reason } => {
            vec![format!("Refused: the caller hears {code} {reason}.")]
        }
        OutcomeView::Forward(f) => {
            let mut text = forward_text(f);
            text.insert_str(0, "At once: ");
            text.push('.');
            vec![text]
        }
        OutcomeView::Ring {
            seconds,
            on_busy,
            on_no_answer,
            on_response,
            on_failure,
        } => {
            let mut out = vec![format!("Your phones ring for {seconds} s.")];
            out.push(match on_no_answer {
                Some(f) => format!("Not answered in time: {}.", forward_text(f)),
                None => {
                    "Not answered in time: the caller hears 480 Temporarily Unavailable.".to_owned()
                }
            });
            out.push(match on_busy {
                Some(f) => format!("Busy: {}.", forward_text(f)),
                None => "Busy: the caller hears 486 Busy Here.".to_owned(),
            });
            for r in on_response {
                out.push(format!(
                    "Your phone answers {}: {}.",
                    r.code,
                    forward_text(&r.forward)
                ));
            }
            if let Some(f) = on_failure {
                out.push(format!("Any other failure: {}.", forward_text(f)));
            }
            out
        }
    }
}

/// Words wrapped to lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The flow: a box per step, top to bottom, joined by arrows; the ending's boxes last, in the
/// accent colour. Drawn 360 units wide (about 14 px text on a phone's width, scaled up on a
/// wide screen up to its box), each box as tall as its wrapped text.
fn flow(steps: &[String], ending: &[String]) -> String {
    const WIDTH: f64 = 360.0;
    const LINE: f64 = 17.0;
    const PAD: f64 = 8.0;
    const GAP: f64 = 22.0;
    const CHARS: usize = 44;
    let boxes: Vec<(Vec<String>, bool)> = steps
        .iter()
        .map(|s| (wrap(s, CHARS), false))
        .chain(ending.iter().map(|s| (wrap(s, CHARS), true)))
        .collect();
    let mut body = String::new();
    let mut y = 4.0;
    for (i, (lines, last)) in boxes.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let h = lines.len() as f64 * LINE + 2.0 * PAD;
        let (fill, stroke, ink) = if *last {
            ("#0b4f9c", "#0b4f9c", "#ffffff")
        } else {
            ("#f4f6f8", "#7a8594", "#1b1f24")
        };
        let _ = write!(
            body,
            r##"<rect class="step" x="4" y="{y:.1}" width="{:.1}" height="{h:.1}" rx="6" fill="{fill}" stroke="{stroke}"/>"##,
            WIDTH - 8.0
        );
        for (k, line) in lines.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let ty = y + PAD + LINE * (k as f64 + 1.0) - 4.0;
            let _ = write!(
                body,
                r##"<text x="14" y="{ty:.1}" font-size="13.5" fill="{ink}">{}</text>"##,
                escape(line)
            );
        }
        y += h;
        if i + 1 < boxes.len() {
            let mid = WIDTH / 2.0;
            let _ = write!(
                body,
                r##"<path d="M{mid:.1},{:.1} V{:.1}" stroke="#4a5360" stroke-width="2"/><path d="M{:.1},{:.1} L{mid:.1},{:.1} L{:.1},{:.1} Z" fill="#4a5360"/>"##,
                y,
                y + GAP - 6.0,
                mid - 5.0,
                y + GAP - 8.0,
                y + GAP,
                mid + 5.0,
                y + GAP - 8.0
            );
            y += GAP;
        }
    }
    format!(
        r#"<svg class="flow" id="flow" viewBox="0 0 {WIDTH} {:.1}" role="img" aria-labelledby="flow-title flow-desc" xmlns="http://www.w3.org/2000/svg"><title id="flow-title">What happens to the call</title><desc id="flow-desc">The rules consulted, in order, and what the caller experiences; the same steps are listed beside it.</desc>{body}</svg>"#,
        y + 4.0
    )
}

/// The call asked about: the caller, the moment (a local day and time in the account's zone,
/// or now) and the devices' state.
fn question(v: &View<'_>) -> Result<(CallState, String), ServiceError> {
    let tz = v.account.profile.timezone;
    let q = |name: &str| v.query.get(name).unwrap_or_default().trim().to_owned();
    let caller_text = match q("caller").as_str() {
        "" | "anonymous" => "anonymous".to_owned(),
        "other" => q("other"),
        uri => uri.to_owned(),
    };
    if caller_text.is_empty() {
        return Err(ServiceError::invalid(
            "other",
            "needs an address or a number",
        ));
    }
    let caller =
        sip_settings_core::sip::parse_caller("caller", &caller_text, v.account.id.domain())?;
    let now = v.svc.clock().now();
    let (day, time) = (q("day"), q("time"));
    let at = if day.is_empty() && time.is_empty() {
        now
    } else {
        let local_now = now.with_timezone(&tz.tz());
        let date = if day.is_empty() {
            local_now.date_naive()
        } else {
            NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|_| ServiceError::invalid("day", "must be a date, YYYY-MM-DD"))?
        };
        let clock = if time.is_empty() {
            local_now.time()
        } else {
            NaiveTime::parse_from_str(&time, "%H:%M")
                .map_err(|_| ServiceError::invalid("time", "must be a time of day, HH:MM"))?
        };
        tz.tz()
            .from_local_datetime(&date.and_time(clock))
            .earliest()
            .ok_or_else(|| {
                ServiceError::invalid(
                    "time",
                    format!(
                        "{date} {} does not exist in {} (the clocks go forward then)",
                        clock.format("%H:%M"),
                        tz.name()
                    ),
                )
            })?
            .with_timezone(&chrono::Utc)
    };
    let offline = v.query.get("offline").is_some_and(|x| !x.is_empty());
    let busy = v.query.get("busy").is_some_and(|x| !x.is_empty());
    let local = at.with_timezone(&tz.tz());
    let words = format!(
        "{} calls on {} {} ({}){}{}",
        if caller_text == "anonymous" {
            "An anonymous caller".to_owned()
        } else {
            caller_text.clone()
        },
        local.format("%a %Y-%m-%d %H:%M"),
        local.format("%Z"),
        tz.name(),
        if offline {
            ", no phone of yours registered"
        } else {
            ""
        },
        if busy { ", you are busy" } else { "" },
    );
    Ok((
        CallState {
            caller,
            registered: !offline,
            busy,
            at,
            dialled: None,
        },
        words,
    ))
}

pub(super) async fn what_happens(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let tz = v.account.profile.timezone;
    let phonebook = v.svc.phonebook(id).await?;
    let chosen = v.query.get("caller").unwrap_or("anonymous");
    let mut callers = vec![CallerChoice {
        value: "anonymous".to_owned(),
        label: "Anonymous".to_owned(),
        selected: chosen == "anonymous" || chosen.is_empty(),
    }];
    callers.extend(phonebook.iter().map(|e| {
        let uri = e.uri.to_string();
        CallerChoice {
            selected: chosen == uri,
            label: if e.name.is_empty() {
                uri.clone()
            } else {
                format!("{} ({uri})", e.name)
            },
            value: uri,
        }
    }));
    callers.push(CallerChoice {
        value: "other".to_owned(),
        label: "Another address or number…".to_owned(),
        selected: chosen == "other",
    });
    let field = |name: &str, label: &str, kind: &'static str| {
        Field::new(
            "what",
            name,
            label,
            kind,
            v.query.get(name).unwrap_or_default().to_owned(),
            None,
        )
    };
    let mut other = field("other", "Address or number", "text")
        .attrs(r#" autocomplete="off" spellcheck="false" maxlength="255""#);
    other.hint = Some(
        "When “Another address or number” is chosen: bob@example.org, +31201234567.".to_owned(),
    );
    let mut day = field("day", "Day", "date");
    day.hint = Some(format!(
        "Leave day and time empty for now. In {}.",
        tz.name()
    ));
    let time = field("time", "Time", "time");
    let (question, steps, ending_lines, outcome_json, error) = match question(v) {
        Ok((call, words)) => {
            let e = explain(v.svc, id, &call).await?;
            let ending_lines = ending(&e.outcome);
            let json = serde_json::to_string(&e.outcome).unwrap_or_default();
            (words, e.path, ending_lines, json, None)
        }
        Err(ServiceError::Invalid { field, reason }) => (
            String::new(),
            Vec::new(),
            Vec::new(),
            String::new(),
            Some(format!("{field} {reason}")),
        ),
        Err(e) => return Err(e),
    };
    let flow_svg = if error.is_none() {
        flow(&steps, &ending_lines)
    } else {
        String::new()
    };
    render(&WhatPage {
        layout: v.layout(Tab::WhatHappens),
        timezone: tz.name().to_owned(),
        callers,
        other,
        day,
        time,
        offline: v.query.get("offline").is_some_and(|x| !x.is_empty()),
        busy: v.query.get("busy").is_some_and(|x| !x.is_empty()),
        question,
        steps,
        ending: ending_lines,
        flow: flow_svg,
        outcome_json,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wraps_between_words_and_the_flow_has_a_box_per_step() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 6), Vec::<String>::new());
        let svg = flow(
            &[
                "reject rule x <y> does not match".to_owned(),
                "DND is off".to_owned(),
            ],
            &[
                "Your phones ring for 35 s.".to_owned(),
                "Busy: …".to_owned(),
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains("x &lt;y&gt; does"), "{svg}");
        assert_eq!(
            svg.matches("Z\" fill").count(),
            3,
            "an arrow between boxes: {svg}"
        );
    }

    #[test]
    fn endings_say_what_the_caller_experiences() {
        let reject = OutcomeView::Reject {
            code: 603,
            reason: "Decline".to_owned(),
        };
        assert_eq!(ending(&reject), ["Refused: the caller hears 603 Decline."]);
        let forward = ForwardView {
            condition: Some("FNOA".to_owned()),
            destination: DestinationView::VoiceMailbox,
            reason: "no-answer".to_owned(),
            steps: Vec::new(),
            redirect: false,
        };
        let ring = OutcomeView::Ring {
            seconds: 20,
            on_busy: None,
            on_no_answer: Some(forward),
            on_response: Vec::new(),
            on_failure: None,
        };
        assert_eq!(
            ending(&ring),
            [
                "Your phones ring for 20 s.",
                "Not answered in time: forwarded to your voice mailbox (reason no-answer).",
                "Busy: the caller hears 486 Busy Here."
            ]
        );
    }
}
