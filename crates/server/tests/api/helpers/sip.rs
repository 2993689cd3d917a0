//! The SIP door from the Rust client (`sip_settings_sip::client`): where the app's door
//! listens, a question, a header of an answer, and a door configuration.

use sip_settings::config::Config;
use sip_settings_sip::client::{Answer, Question};
use sip_settings_sip::{Listen, Transport};

use super::TestApp;

/// The app's SIP door on `t`.
pub(crate) fn listen(app: &TestApp, t: Transport) -> Listen {
    Listen {
        transport: t,
        addr: app.server.as_ref().unwrap().sip_addr(t).unwrap(),
    }
}

/// An INVITE question for `uri` from `from` with extra header lines.
pub(crate) fn question(uri: &str, from: &str, headers: &[&str]) -> Question {
    Question {
        uri: uri.to_owned(),
        from: from.to_owned(),
        headers: headers.iter().map(|h| (*h).to_owned()).collect(),
    }
}

/// A header of an answer.
pub(crate) fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.response.headers.get(name)
}

/// The SIP door on `transports` (`"udp"`, `"tcp"`, `"tls"`; port 0 each) with a voice-mailbox
/// URI template, keeping to the proxy-hint contract (registered unless `X-Registered: no`); the
/// registration feed is tested in registrations.rs and kamailio/.
pub(crate) fn hint_door(c: &mut Config, transports: &[&str]) {
    c.sip.listen = transports
        .iter()
        .map(|t| format!("{t}:127.0.0.1:0").parse().unwrap())
        .collect();
    c.sip.voicemail_uri = Some("sip:vm-{user}@vm.example.net".parse().unwrap());
    c.sip.registrations = sip_settings_sip::Registrations::Hint;
}
