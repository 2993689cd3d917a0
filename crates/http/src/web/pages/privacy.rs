//! The Privacy tab: caller-id privacy.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Layout, Tab, View, render};

#[derive(Template)]
#[template(path = "web/privacy.html")]
struct PrivacyPage {
    layout: Layout,
    on: bool,
}

pub(super) fn privacy(v: &View<'_>) -> Result<String, ServiceError> {
    render(&PrivacyPage {
        layout: v.layout(Tab::Privacy),
        on: v.account.privacy,
    })
}
