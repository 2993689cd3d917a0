//! The login page and the message-only page.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Field, Layout, render};

#[derive(Template)]
#[template(path = "web/login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    realm: Option<String>,
    address: Field,
    password: Field,
}

/// The login page: `address` is kept, the password never. `realm`, when the page was asked
/// for with `?realm=` (Blink's web view does), goes with the form: the user part alone then
/// names an account of that domain.
pub fn login_page(
    csrf: &str,
    realm: Option<&str>,
    address: &str,
    error: Option<String>,
    flash: Option<String>,
) -> Result<String, ServiceError> {
    let mut address_field = Field::new(
        "login",
        "address",
        "SIP address",
        "text",
        address.to_owned(),
        None,
    )
    .attrs(r#" autocomplete="username" inputmode="email" autocapitalize="none" spellcheck="false" required"#)
    .hint(match realm {
        Some(_) => "Your user name, or the whole address (alice@example.com)",
        None => "For example alice@example.com",
    });
    address_field.value = address.to_owned();
    let mut password = Field::new(
        "login",
        "password",
        "SIP password",
        "password",
        String::new(),
        None,
    )
    .attrs(r#" autocomplete="current-password" required"#);
    password.error = error.clone();
    render(&LoginPage {
        layout: Layout {
            title: "Log in".to_owned(),
            flash,
            alert: error,
            ..Layout::default()
        },
        csrf: csrf.to_owned(),
        realm: realm.map(str::to_owned),
        address: address_field,
        password,
    })
}

#[derive(Template)]
#[template(path = "web/message.html")]
struct MessagePage {
    layout: Layout,
    message: String,
}

/// A page with only a message (refused requests, errors).
pub fn message_page(title: &str, message: &str) -> String {
    let page = MessagePage {
        layout: Layout {
            title: title.to_owned(),
            ..Layout::default()
        },
        message: message.to_owned(),
    };
    page.render()
        .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title><p>{title}</p>"))
}
