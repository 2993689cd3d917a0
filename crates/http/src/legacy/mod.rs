//! The seed API, `settings.phtml?action=NAME` (docs/actions.md): the action endpoint
//! ([`actions`]), the objects its actions answer with ([`objects`]; `get_history`'s own reply,
//! shaped for Blink, in [`history`]), and its status-object replies
//! `{"success": …, "error_message": …}` ([`reply`]), which the web page and the fallback for
//! unknown paths outside `/v1` also use; the prepaid card top-up `add_balance` ([`vouchers`]);
//! the chat-journal actions ([`chat`]).

pub mod actions;
pub mod chat;
pub mod digest;
pub mod history;
pub mod objects;
pub mod reply;
pub mod vouchers;
