//! The seed API, `settings.phtml?action=NAME` (docs/actions.md): the action endpoint
//! ([`actions`]), the objects its actions answer with ([`objects`]), and its status-object
//! replies `{"success": …, "error_message": …}` ([`reply`]), which the web page and the
//! fallback for unknown paths outside `/v1` also use; the chat-journal actions ([`chat`]).

pub mod actions;
pub mod chat;
pub mod digest;
pub mod objects;
pub mod reply;
