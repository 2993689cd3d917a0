//! The error answers each kind of route lists in the OpenAPI document, with the problem
//! document ([`Problem`]) they carry. Imported by the resources, imports none of them.
//!
//! Each list is a table of (status, description, header) built into the document's responses
//! by one function; every answer but `304` carries a [`Problem`].

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, KnownFormat, ObjectBuilder, Ref, RefOr, Response,
    ResponseBuilder, SchemaFormat, Type,
};

pub use crate::problem::Problem;

/// A header an answer carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Header {
    /// None.
    None,
    /// `Retry-After`: seconds.
    RetryAfter,
    /// `ETag`: the current entity tag.
    CurrentEtag,
}

/// The responses of a table of (status, description, header); `304` has no body.
pub(crate) fn problem_responses(
    table: &[(u16, &str, Header)],
) -> BTreeMap<String, RefOr<Response>> {
    table
        .iter()
        .map(|(status, description, header)| {
            let mut response = ResponseBuilder::new().description(*description);
            response = match header {
                Header::None => response,
                Header::RetryAfter => response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                                .minimum(Some(0)),
                        )
                        .description(Some("Seconds"))
                        .build(),
                ),
                Header::CurrentEtag => response.header(
                    "ETag",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("The current entity tag"))
                        .build(),
                ),
            };
            if *status != 304 {
                response = response.content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                );
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// Answers of the `/v1/me` reads besides success.
#[derive(Debug)]
pub struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            (304, "`If-None-Match` named the current ETag.", Header::None),
            (
                400,
                "A parameter is malformed (`field` names it).",
                Header::None,
            ),
            (401, "No client certificate.", Header::None),
            (
                403,
                "Not a valid subscriber certificate (unknown, revoked, expired, or not a subscriber's).",
                Header::None,
            ),
            (404, "No such resource (of this account).", Header::None),
            (
                429,
                "Too many requests (`Retry-After` says when to try again).",
                Header::RetryAfter,
            ),
            (
                503,
                "The database is temporarily unavailable.",
                Header::RetryAfter,
            ),
        ])
    }
}

/// Answers of the `/v1/me` writes besides success.
#[derive(Debug)]
pub struct WriteErrors;

impl IntoResponses for WriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            (
                400,
                "The body or a parameter is malformed or not allowed (`field` names it); nothing changed.",
                Header::None,
            ),
            (401, "No client certificate.", Header::None),
            (403, "Not a valid subscriber certificate.", Header::None),
            (404, "No such resource (of this account).", Header::None),
            (
                409,
                "The change conflicts with existing data (taken, duplicate, at a limit).",
                Header::None,
            ),
            (
                412,
                "`If-Match` did not name the current ETag; nothing changed.",
                Header::CurrentEtag,
            ),
            (413, "The body is larger than 64 KiB.", Header::None),
            (429, "Too many requests.", Header::RetryAfter),
            (
                503,
                "The database is temporarily unavailable.",
                Header::RetryAfter,
            ),
        ])
    }
}

/// Answers of the service routes besides success.
#[derive(Debug)]
pub struct ServiceErrors;

impl IntoResponses for ServiceErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses(&[
            (
                400,
                "The body or a path parameter is malformed: `invalid_field` with `field` naming the\noffending field or parameter, or `invalid_json` (no `field`) for a body that is not a JSON\nobject.",
                Header::None,
            ),
            (401, "No client certificate.", Header::None),
            (403, "Not a service certificate.", Header::None),
            (
                404,
                "The callee is not a local account, alias or number.",
                Header::None,
            ),
            (
                413,
                "The body is larger than 64 KiB (1 MiB for `/v1/service/calls/batch`).",
                Header::None,
            ),
            (
                503,
                "The database is temporarily unavailable.",
                Header::RetryAfter,
            ),
        ])
    }
}

// ----- What the document says the server accepts ----------------------------------------------
//
// The patterns below describe the core validators the handlers call, in the regex dialect
// JSON Schema uses (ECMA-262; no lookbehind, no Unicode property escapes). [`exact`] writes them
// into the document by parameter and property name, once for every operation, and the unit test
// `patterns_agree_with_the_validators` runs each pattern and its validator over a table of
// accepted and refused examples so that they cannot drift apart.

/// A DNS label.
macro_rules! label {
    () => {
        "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    };
}
/// A domain served here (`core::Domain`): two labels or more, or `localhost`.
macro_rules! domain {
    () => {
        concat!(
            "(",
            label!(),
            "(\\.",
            label!(),
            ")+|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt])"
        )
    };
}
/// A user part (`core::UserPart`), any case (stored lower-case).
macro_rules! user_part {
    () => {
        "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
    };
}
/// The host and port of a SIP URI (`core::sip::SipUri`): a host name or IPv4 address, a port
/// 1–65535.
macro_rules! host_port {
    () => {
        concat!(
            label!(),
            "(\\.",
            label!(),
            ")*(:0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
        )
    };
}
/// The user part of a SIP URI.
macro_rules! uri_user {
    () => {
        "[A-Za-z0-9_.!~*'()%&=+$,-]+"
    };
}

/// `If-Match`: `*` or a comma-separated list of entity tags ([`crate::etag::if_match_well_formed`]).
pub const IF_MATCH_PATTERN: &str =
    r#"^[ 	]*(\*|(W/)?"[!#-+\--~]*"([ 	]*,[ 	]*(W/)?"[!#-+\--~]*")*)[ 	]*$"#;
/// An alias in a path: the bare user part or `alias@domain`, optionally with `sip:`.
pub const ALIAS_PATTERN: &str = concat!("^(sip:|SIP:)?", user_part!(), "(@", domain!(), ")?$");
/// A new alias's user part (`core::UserPart`).
pub const USER_PART_PATTERN: &str = concat!("^", user_part!(), "$");
/// A certificate serial (`core::Serial`): 1–64 hex digits, colons anywhere, `serial=` allowed.
pub const SERIAL_PATTERN: &str = "^(serial=)?:*([0-9A-Fa-f]:*){1,64}$";
/// A phonebook contact (`core::settings::parse_contact_uri`): a SIP URI or `user@host`.
pub const CONTACT_PATTERN: &str = concat!(
    "^([Ss][Ii][Pp][Ss]?:)?(",
    uri_user!(),
    "@)?",
    host_port!(),
    "$"
);
/// A reject pattern (`core::settings::RejectPattern`).
pub const REJECT_PATTERN: &str = r"^([Aa][Nn][Oo][Nn][Yy][Mm][Oo][Uu][Ss]|[Ss][Ii][Pp]:[A-Za-z0-9_.!~*'()%&=+$,:\[\]-]+@[A-Za-z0-9_.!~*'()%&=+$,:\[\]-]+)$";
/// A forwarding condition, any case.
pub const CONDITION_PATTERN: &str =
    "^([Ff][Uu][Nn][Cc]|[Ff][Nn][Oo][Ll]|[Ff][Bb][Uu][Ss]|[Ff][Nn][Oo][Aa]|[Ff][Uu][Nn][Vv])$";
/// A forwarding target (`core::sip::DiversionTarget`), or `""` (clears): `<voice-mailbox>`,
/// `<mobile-number>`, a SIP URI, `user@host`, a user of the own domain, or a number (`+E164`,
/// `00…`, `0…`).
pub const TARGET_PATTERN: &str = concat!(
    "^(|<voice-mailbox>|<mobile-number>|[Ss][Ii][Pp][Ss]?:(",
    uri_user!(),
    "@)?",
    host_port!(),
    "|",
    uri_user!(),
    "@",
    host_port!(),
    "|[A-Za-z1-9][A-Za-z0-9._-]{0,63}|0|0[A-Za-z_][A-Za-z0-9_]{0,62}|\\+[1-9][0-9]{1,14}|00[1-9][0-9]{1,14}|0[1-9][0-9]{0,14})$"
);
/// A named phonebook group (`core::settings::Group::Named`).
pub const GROUP_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$";
/// `everybody` or `nobody`, any case.
pub const EVERYBODY_OR_NOBODY_PATTERN: &str =
    "^([Ee][Vv][Ee][Rr][Yy][Bb][Oo][Dd][Yy]|[Nn][Oo][Bb][Oo][Dd][Yy])$";
/// A person's name (`core::account::parse_name`): no control characters.
pub const NAME_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// An e-mail address (`core::Email`), printable ASCII in the local part.
pub const EMAIL_PATTERN: &str = concat!("^[!-?A-~]{1,64}@", domain!(), "$");
/// A mobile number (`core::E164`).
pub const E164_PATTERN: &str = "^\\+[1-9][0-9]{1,14}$";
/// An account's address (`core::AccountId`): `user@domain`, optionally with `sip:`.
pub const ACCOUNT_PATTERN: &str = concat!("^(sip:|SIP:)?", user_part!(), "@", domain!(), "$");
/// A SIP URI (`core::sip::SipUri`): `sip:` or `sips:`, an optional user part, a host and port.
pub const SIP_URI_PATTERN: &str = concat!(
    "^[Ss][Ii][Pp][Ss]?:(",
    uri_user!(),
    "@)?",
    host_port!(),
    "$"
);
/// The address of record of a registration: a SIP URI whose host is a domain
/// (`core::Domain`).
pub const AOR_PATTERN: &str = concat!(
    "^[Ss][Ii][Pp][Ss]?:(",
    uri_user!(),
    "@)?",
    domain!(),
    "(:0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$"
);
/// An address (`core::sip::parse_address`): a `tel:` number, a SIP URI or `user@host`.
macro_rules! address {
    () => {
        concat!(
            "[Tt][Ee][Ll]:\\+?[0-9]{1,20}|[Ss][Ii][Pp][Ss]?:(",
            uri_user!(),
            "@)?",
            host_port!(),
            "|",
            uri_user!(),
            "@",
            host_port!()
        )
    };
}
/// A called address (`core::Services::resolve_callee`).
pub const ADDRESS_PATTERN: &str = concat!("^(", address!(), ")$");
/// A caller (`core::sip::parse_caller`): `anonymous` or an address.
pub const CALLER_PATTERN: &str =
    concat!("^([Aa][Nn][Oo][Nn][Yy][Mm][Oo][Uu][Ss]|", address!(), ")$");
/// A Call-ID (`core::calls::CallInput`): no spaces or control characters, at most 255 bytes:
/// up to 255 visible ASCII characters, or up to 63 characters of any script (4 bytes each at
/// most).
pub const CALL_ID_PATTERN: &str = "^([!-~]{1,255}|[^\\s\\x00-\\x1f\\x7f-\\x9f]{1,63})$";
/// A From or To tag: as a Call-ID, at most 128 bytes, may be empty.
pub const TAG_PATTERN: &str = "^([!-~]{0,128}|[^\\s\\x00-\\x1f\\x7f-\\x9f]{0,32})$";
/// A media type of a call, any case.
pub const MEDIA_PATTERN: &str = "^[A-Za-z0-9-]{1,32}$";
/// An IPv4 address (`std::net::Ipv4Addr`: no leading zeros).
macro_rules! ipv4 {
    () => {
        "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
    };
}
/// A proxy's address in a call record: empty (none) or an IPv4 address.
pub const PROXY_IP_PATTERN: &str = concat!("^(|", ipv4!(), ")$");
/// Where a registration came from: IPv4 `ip:port`.
pub const SOURCE_PATTERN: &str = concat!(
    "^",
    ipv4!(),
    ":(0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
);
/// A price (`core::Money`, not negative), or empty (none).
pub const PRICE_PATTERN: &str = "^(|\\+?([0-9]{1,12}(\\.[0-9]{0,4})?|\\.[0-9]{1,4}))$";
/// A transport of a registration, any case.
pub const TRANSPORT_PATTERN: &str =
    "^([Uu][Dd][Pp]|[Tt][Cc][Pp]|[Tt][Ll][Ss]|[Ss][Cc][Tt][Pp]|[Ww][Ss]|[Ww][Ss][Ss])$";
/// One binding of a registration's Contact: `<SIP URI>` with an optional `expires`.
macro_rules! binding {
    () => {
        concat!(
            "<[Ss][Ii][Pp][Ss]?:(",
            uri_user!(),
            "@)?",
            host_port!(),
            ">(;[Ee][Xx][Pp][Ii][Rr][Ee][Ss]=[0-9]{1,9})?"
        )
    };
}
/// A registration's Contact (`core::devices::parse_contacts`): empty (a query) or a
/// comma-separated list of bindings.
pub const REGISTER_CONTACT_PATTERN: &str = concat!("^(|", binding!(), "(, ?", binding!(), ")*)$");
/// `If-Match`, as a format: `*` or a list of entity tags (the generator of
/// `.ci/schemathesis_hooks.py`; the pattern is [`IF_MATCH_PATTERN`]).
pub const IF_MATCH_FORMAT: &str = "http-if-match";
/// A calls cursor: `next` of a page, hex.
pub const CURSOR_FORMAT: &str = "sip-settings-cursor";
/// A PKCS#10 CSR, PEM.
pub const CSR_FORMAT: &str = "pkcs10-pem";
/// An RFC 3339 time in the future, at most a week ahead.
pub const WITHIN_A_WEEK_FORMAT: &str = "date-time-within-a-week";

/// The string schema of a path or header parameter with `pattern`.
fn pattern_schema(pattern: &str, max_length: Option<u64>) -> serde_json::Value {
    let mut schema = serde_json::json!({"type": "string", "pattern": pattern});
    if let Some(max) = max_length {
        schema["maxLength"] = max.into();
    }
    schema
}

/// Sets `key` of `value` (an object) to `to`.
fn set(value: &mut serde_json::Value, key: &str, to: serde_json::Value) {
    if let Some(object) = value.as_object_mut() {
        object.insert(key.to_owned(), to);
    }
}

/// The document made exact: the parameter patterns by name (path and header parameters of
/// every operation), and the property constraints of the request bodies that a type cannot
/// carry (patterns shared with core's validators, formats, mutually exclusive fields).
///
/// The result is JSON, not utoipa's type: that type has no place for `not`, `oneOf` or `anyOf`
/// beside an object's `properties` and would drop them. A route added later (e.g. under
/// `/v1/admin`) gets the parameter constraints by naming its parameters as here, and its body's
/// by a line in `fields` below.
pub fn exact(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    constrain_parameters(&mut v);
    let schemas = &mut v["components"]["schemas"];
    constrain_fields(schemas);
    voucher_fields(schemas);
    exclusive_fields(schemas);
    // `PUT /v1/me/voicemail` takes the same body with `enabled` required.
    let mut put = schemas["VoicemailBody"].clone();
    set(&mut put, "required", serde_json::json!(["enabled"]));
    set(&mut put["properties"]["enabled"], "type", "boolean".into());
    set(schemas, "VoicemailPut", put);
    let put_body = &mut v["paths"]["/v1/me/voicemail"]["put"]["requestBody"]["content"]["application/json"]
        ["schema"];
    if put_body.is_object() {
        *put_body = serde_json::json!({"$ref": "#/components/schemas/VoicemailPut"});
    }
    v
}

/// The path, query and header parameters of every operation, by name.
fn constrain_parameters(v: &mut serde_json::Value) {
    let mut if_match = pattern_schema(IF_MATCH_PATTERN, None);
    set(&mut if_match, "format", IF_MATCH_FORMAT.into());
    // A domain is at most 253 bytes: with a user part of one character and `@`, 255.
    let params: [(&str, &str, serde_json::Value); 8] = [
        ("header", "If-Match", if_match),
        ("path", "alias", pattern_schema(ALIAS_PATTERN, Some(255))),
        ("query", "caller", pattern_schema(CALLER_PATTERN, Some(255))),
        (
            "path",
            "call_id",
            pattern_schema(CALL_ID_PATTERN, Some(255)),
        ),
        ("path", "serial", pattern_schema(SERIAL_PATTERN, None)),
        ("path", "uri", pattern_schema(CONTACT_PATTERN, Some(251))),
        ("path", "pattern", pattern_schema(REJECT_PATTERN, Some(255))),
        ("path", "condition", pattern_schema(CONDITION_PATTERN, None)),
    ];
    // The operator API's query parameters that name what the /v1/me paths name in the path.
    let admin_params: [(&str, &str, serde_json::Value); 3] = [
        ("query", "q", pattern_schema(NAME_PATTERN, Some(200))),
        ("query", "uri", pattern_schema(CONTACT_PATTERN, Some(251))),
        (
            "query",
            "pattern",
            pattern_schema(REJECT_PATTERN, Some(255)),
        ),
    ];
    if let Some(paths) = v["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let admin = path.starts_with("/v1/admin/");
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for op in ops.values_mut() {
                // (`get_mut`, not indexing: indexing a missing key would insert `null`.)
                let Some(list) = op.get_mut("parameters").and_then(|l| l.as_array_mut()) else {
                    continue;
                };
                for p in list {
                    for (place, name, schema) in &params {
                        // The operator API's `alias` is a whole `alias@domain`, with its own
                        // pattern; `/v1/me`'s is the account's own alias.
                        if admin && *name == "alias" {
                            continue;
                        }
                        if p["in"] == *place && p["name"] == *name {
                            set(p, "schema", schema.clone());
                        }
                    }
                    if admin {
                        for (place, name, schema) in &admin_params {
                            if p["in"] == *place && p["name"] == *name {
                                set(p, "schema", schema.clone());
                            }
                        }
                    }
                    if p["in"] == "query" && p["name"] == "before" {
                        set(&mut p["schema"], "minimum", 0.into());
                    }
                    if p["in"] == "query" && p["name"] == "direction" {
                        set(
                            p,
                            "schema",
                            serde_json::json!({"type": "string", "enum": ["placed", "received"]}),
                        );
                    }
                    if p["in"] == "query" && p["name"] == "cursor" {
                        set(
                            p,
                            "schema",
                            serde_json::json!({"type": "string", "format": CURSOR_FORMAT}),
                        );
                    }
                }
            }
        }
    }
}

/// The request body fields, by schema and property name.
fn constrain_fields(schemas: &mut serde_json::Value) {
    let string = |pattern: &str, max: Option<u64>| pattern_schema(pattern, max);
    let nullable = |mut s: serde_json::Value| {
        set(&mut s, "type", serde_json::json!(["string", "null"]));
        s
    };
    let with_empty = |p: &str| format!("^(|{})$", p.trim_start_matches('^').trim_end_matches('$'));
    let target = nullable(string(TARGET_PATTERN, Some(255)));
    let group_items = serde_json::json!({"anyOf": [
        {"type": "string", "pattern": GROUP_NAME_PATTERN},
        {"type": "string", "pattern": EVERYBODY_OR_NOBODY_PATTERN}]});
    let groups = serde_json::json!({"type": "array", "minItems": 1, "items": group_items,
        "anyOf": [{"maxItems": 1}, {"items": {"not": {"pattern": EVERYBODY_OR_NOBODY_PATTERN}}}]});
    let phonebook_groups = serde_json::json!({"type": "array", "minItems": 1, "items":
        {"type": "string", "pattern": GROUP_NAME_PATTERN, "not": {"pattern": EVERYBODY_OR_NOBODY_PATTERN}}});
    let name = nullable(string(NAME_PATTERN, Some(64)));
    let mut zones: Vec<serde_json::Value> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|z| z.name().into())
        .collect();
    zones.push(serde_json::Value::Null);
    let until = serde_json::json!({"type": ["string", "null"], "format": WITHIN_A_WEEK_FORMAT});
    let call_id = string(CALL_ID_PATTERN, Some(255));
    let tag = nullable(string(TAG_PATTERN, Some(128)));
    let sip_uri = string(SIP_URI_PATTERN, Some(255));
    let media = serde_json::json!({"type": ["array", "null"],
        "items": {"type": "string", "pattern": MEDIA_PATTERN}});
    let proxy_ip = nullable(string(PROXY_IP_PATTERN, None));
    let address = nullable(string(ADDRESS_PATTERN, Some(255)));
    let fields: Vec<(&str, &str, serde_json::Value)> = vec![
        ("CallRecordBody", "call_id", call_id.clone()),
        ("CallRecordBody", "from_tag", tag.clone()),
        ("CallRecordBody", "to_tag", tag.clone()),
        ("CallRecordBody", "caller", sip_uri.clone()),
        ("CallRecordBody", "callee", sip_uri.clone()),
        ("CallRecordBody", "media", media.clone()),
        ("CallRecordBody", "proxy_ip", proxy_ip.clone()),
        (
            "CallRecordBody",
            "price",
            nullable(string(PRICE_PATTERN, None)),
        ),
        ("OpenBody", "account", string(ACCOUNT_PATTERN, Some(255))),
        ("OpenBody", "destination", string(E164_PATTERN, None)),
        ("OpenBody", "call_id", call_id.clone()),
        ("CloseBody", "from_tag", tag.clone()),
        ("CloseBody", "to_tag", tag),
        ("CloseBody", "media", media),
        ("CloseBody", "proxy_ip", proxy_ip),
        ("RegistrationBody", "aor", string(AOR_PATTERN, Some(255))),
        (
            "RegistrationBody",
            "contact",
            string(REGISTER_CONTACT_PATTERN, None),
        ),
        (
            "RegistrationBody",
            "transport",
            string(TRANSPORT_PATTERN, None),
        ),
        ("RegistrationBody", "source", string(SOURCE_PATTERN, None)),
        ("RegistrationBody", "call_id", call_id),
        ("RouteRequest", "account", address.clone()),
        ("RouteRequest", "callee", address),
        ("RouteRequest", "caller", string(CALLER_PATTERN, Some(255))),
        ("AccountPatch", "first_name", name.clone()),
        ("AccountPatch", "last_name", name.clone()),
        (
            "AccountPatch",
            "email",
            nullable(string(&with_empty(EMAIL_PATTERN), Some(254))),
        ),
        (
            "AccountPatch",
            "mobile",
            nullable(string(&with_empty(E164_PATTERN), None)),
        ),
        (
            "AccountPatch",
            "timezone",
            serde_json::json!({"type": ["string", "null"], "enum": zones}),
        ),
        ("DiversionsPut", "FUNC", target.clone()),
        ("DiversionsPut", "FNOL", target.clone()),
        ("DiversionsPut", "FBUS", target.clone()),
        ("DiversionsPut", "FNOA", target.clone()),
        ("DiversionsPut", "FUNV", target.clone()),
        ("DiversionsPatch", "FUNC", target.clone()),
        ("DiversionsPatch", "FNOL", target.clone()),
        ("DiversionsPatch", "FBUS", target.clone()),
        ("DiversionsPatch", "FNOA", target.clone()),
        ("DiversionsPatch", "FUNV", target.clone()),
        ("DiversionBody", "target", target.clone()),
        ("AcceptRuleBody", "groups", groups.clone()),
        ("TemporaryRuleBody", "groups", groups.clone()),
        ("TemporaryRuleBody", "until", until.clone()),
        ("DndBody", "until", until),
        (
            "RejectRuleView",
            "pattern",
            string(REJECT_PATTERN, Some(255)),
        ),
        ("AliasBody", "username", string(USER_PART_PATTERN, None)),
        ("PhonebookPost", "uri", string(CONTACT_PATTERN, Some(251))),
        ("PhonebookPost", "name", name.clone()),
        ("PhonebookPost", "groups", phonebook_groups.clone()),
        ("PhonebookPut", "name", name),
        ("PhonebookPut", "groups", phonebook_groups.clone()),
        (
            "VoicemailBody",
            "email",
            nullable(string(EMAIL_PATTERN, Some(254))),
        ),
        // The operator API (`/v1/admin`).
        (
            "AccountCreate",
            "timezone",
            serde_json::json!({"type": ["string", "null"], "enum": zones.clone()}),
        ),
        (
            "AdminAccountPatch",
            "timezone",
            serde_json::json!({"type": ["string", "null"], "enum": zones}),
        ),
        (
            "AdminPhonebookEntry",
            "uri",
            string(CONTACT_PATTERN, Some(251)),
        ),
        ("AdminPhonebookEntry", "groups", phonebook_groups.clone()),
        (
            "AdminRejectBody",
            "pattern",
            string(REJECT_PATTERN, Some(255)),
        ),
        ("AdminAcceptRuleBody", "groups", groups.clone()),
        (
            "CsrBody",
            "csr",
            serde_json::json!({"type": "string", "format": CSR_FORMAT, "maxLength": 16384}),
        ),
    ];
    for (schema, property, constraint) in fields {
        let Some(p) = schemas.pointer_mut(&format!("/{schema}/properties/{property}")) else {
            continue;
        };
        let description = p["description"].clone();
        *p = constraint;
        if !description.is_null() {
            set(p, "description", description);
        }
    }
}

/// The prepaid card batch's expiry (`/v1/admin/domains/{domain}/vouchers`): any RFC 3339 time
/// in the future; the format's generator makes ones within a week.
fn voucher_fields(schemas: &mut serde_json::Value) {
    if let Some(p) = schemas.pointer_mut("/VoucherBatchBody/properties/expires") {
        let description = p["description"].clone();
        *p = serde_json::json!({"type": ["string", "null"], "format": WITHIN_A_WEEK_FORMAT});
        if !description.is_null() {
            set(p, "description", description);
        }
    }
}

/// Fields that exclude or depend on each other, ranges and what JSON Schema cannot say.
fn exclusive_fields(schemas: &mut serde_json::Value) {
    // Fields that exclude each other.
    set(
        &mut schemas["DndBody"],
        "not",
        serde_json::json!({"anyOf": [
            {"properties": {"until": {"type": "string"}, "duration": {"type": "integer"}},
                "required": ["until", "duration"]},
            {"properties": {"on": {"const": false}, "until": {"type": "string"}},
                "required": ["on", "until"]},
            {"properties": {"on": {"const": false}, "duration": {"type": "integer"}},
                "required": ["on", "duration"]}]}),
    );
    // A mailbox being disabled keeps its settings: none may come with `enabled: false`.
    let disabled_with_settings = serde_json::json!({"properties": {"enabled": {"const": false},
            "delivery": {"type": "string"}, "email": {"type": "string"}, "pin": {"type": "string"}},
        "required": ["enabled"],
        "anyOf": [{"required": ["delivery"]}, {"required": ["email"]}, {"required": ["pin"]}]});
    for body in ["VoicemailBody", "AdminVoicemailBody"] {
        set(&mut schemas[body], "not", disabled_with_settings.clone());
    }
    // `POST /v1/service/route`: exactly one of `account` and `callee`.
    let one_of = |a: &str, b: &str| {
        serde_json::json!({"properties": {a: {"type": "string"}}, "required": [a],
            "not": {"properties": {b: {"type": "string"}}, "required": [b]}})
    };
    set(
        &mut schemas["RouteRequest"],
        "oneOf",
        serde_json::json!([one_of("account", "callee"), one_of("callee", "account")]),
    );
    let status = &mut schemas["CloseBody"]["properties"]["status"];
    set(status, "minimum", 200.into());
    set(status, "maximum", 699.into());
    // A call that was not answered (a status other than 200) is closed with duration 0.
    set(
        &mut schemas["CloseBody"],
        "anyOf",
        serde_json::json!([
            {"not": {"required": ["status"]}},
            {"properties": {"status": {"enum": [200, null]}}},
            {"properties": {"duration": {"const": 0}}}]),
    );
    let ranges: [(&str, &str, i64, i64); 8] = [
        ("CloseBody", "duration", 0, 7 * 24 * 3600),
        ("CallRecordBody", "duration", 0, u32::MAX.into()),
        ("CallRecordBody", "status", 100, 699),
        ("RegistrationBody", "expires", 0, u32::MAX.into()),
        ("RegistrationBody", "cseq", 0, u32::MAX.into()),
        ("RegistrationBody", "min_expires", 0, u32::MAX.into()),
        ("RegistrationBody", "max_expires", 0, u32::MAX.into()),
        ("RegistrationBody", "default_expires", 0, u32::MAX.into()),
    ];
    for (schema, property, min, max) in ranges {
        if let Some(p) = schemas.pointer_mut(&format!("/{schema}/properties/{property}")) {
            set(p, "minimum", min.into());
            set(p, "maximum", max.into());
        }
    }
    // What JSON Schema cannot say of a call record (`stop` not before `start`, `duration` at
    // most `stop − start` + 1 s) is said in words; CI's hooks keep generated records inside it.
    let call = &mut schemas["CallRecordBody"];
    let said = call["description"].as_str().unwrap_or_default().to_owned();
    set(
        call,
        "description",
        format!("{said}\n\n`stop` is not before `start`, and `duration` is at most `stop` − `start` + 1 s.")
            .into(),
    );
    let calls = &mut schemas["CallBatchBody"]["properties"]["calls"];
    set(calls, "minItems", 1.into());
    set(calls, "maxItems", 1000.into());
}

#[cfg(test)]
mod tests {
    use sip_settings_core::cert::Serial;
    use sip_settings_core::settings::{RejectPattern, parse_contact_uri};
    use sip_settings_core::sip::{Condition, DiversionTarget};
    use sip_settings_core::{AccountId, E164, Email, UserPart};

    use super::*;

    /// Every example the pattern takes is accepted by the validator, and every one it refuses
    /// is refused.
    fn agree(pattern: &str, validator: impl Fn(&str) -> bool, examples: &[&str]) {
        let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        for example in examples {
            assert_eq!(
                re.is_match(example),
                validator(example),
                "{pattern} and the validator disagree on {example:?}"
            );
        }
    }

    #[test]
    fn patterns_agree_with_the_validators() {
        agree(
            IF_MATCH_PATTERN,
            |s| crate::etag::if_match_well_formed(s.as_bytes()),
            &[
                "*",
                " *",
                "\"a\"",
                "W/\"a\", \"b\"",
                "\"\"",
                "null",
                "\"a",
                "w/\"a\"",
                "*,\"a\"",
                "\"a,b\"",
                "\"a\" \"b\"",
                "\"é\"",
            ],
        );
        agree(
            USER_PART_PATTERN,
            |s| UserPart::parse_for("u", s).is_ok(),
            &[
                "a",
                "A.b-c_d",
                "0",
                "-a",
                ".a",
                "a b",
                "",
                "é",
                &"a".repeat(64),
                &"a".repeat(65),
            ],
        );
        let alias = |s: &str| {
            let full = if s.contains('@') {
                s.to_owned()
            } else {
                format!("{s}@example.com")
            };
            AccountId::parse_for("alias", &full).is_ok()
        };
        agree(
            ALIAS_PATTERN,
            alias,
            &[
                "bob",
                "sip:bob",
                "SIP:bob",
                "bob@example.com",
                "bob@LOCALHOST",
                "bob@com",
                "bob@a..b",
                "bob@-a.b",
                "bo b",
                "Sip:bob",
                "bob@ex_ample.com",
            ],
        );
        agree(
            SERIAL_PATTERN,
            |s| Serial::parse(s).is_ok(),
            &[
                "0A",
                "0a:1b",
                ":0a:",
                "serial=0A",
                "",
                ":",
                "0g",
                &"a".repeat(64),
                &"a".repeat(65),
                "serial=",
            ],
        );
        agree(
            CONTACT_PATTERN,
            |s| parse_contact_uri(s).is_ok(),
            &[
                "bob@example.net",
                "sip:bob@example.net:5060",
                "SIPS:h",
                "host",
                "__main__",
                "ño",
                "b@h:0",
                "b@h:65536",
                "b@h:065535",
                "@h",
                "b@-h",
                "sip:b@h.",
                "b%41@h",
            ],
        );
    }

    #[test]
    fn more_patterns_agree_with_the_validators() {
        let own = AccountId::parse("alice@example.com").unwrap();
        agree(
            REJECT_PATTERN,
            |s| RejectPattern::parse(s).is_ok(),
            &[
                "anonymous",
                "ANONYMOUS",
                "sip:%0900@%",
                "SIP:a@b",
                "0",
                "sip:a",
                "sip:@b",
                "sip:a b@c",
                "sip:a@b@c",
                "sips:a@b",
            ],
        );
        agree(
            CONDITION_PATTERN,
            |s| Condition::from_code(&s.to_ascii_uppercase()).is_some(),
            &["FUNC", "fnol", "FbUs", "FNOA", "FUNV", "FOO", "", "FUNCX"],
        );
        agree(
            TARGET_PATTERN,
            |s| s.is_empty() || DiversionTarget::parse(Condition::Busy, s, &own).is_ok(),
            &[
                "",
                "<voice-mailbox>",
                "<mobile-number>",
                "sip:bob@example.net",
                "sips:h:5061",
                "bob@example.net",
                "bob",
                "+31201234567",
                "0031201234567",
                "0612345678",
                "+0123",
                "000123",
                "0",
                "b@-h",
                "bob smith",
                "sip:",
                "+1",
            ],
        );
        let group = |s: &str| {
            matches!(
                sip_settings_core::settings::Group::parse(s),
                Ok(sip_settings_core::settings::Group::Named(_))
            )
        };
        agree(
            GROUP_NAME_PATTERN,
            group,
            &[
                "family",
                "Work.1",
                "a-b_c",
                "",
                "-a",
                "a b",
                "é",
                &"a".repeat(32),
                &"a".repeat(33),
            ],
        );
        agree(
            EMAIL_PATTERN,
            |s| Email::parse_for("email", s).is_ok(),
            &[
                "a@example.com",
                "a.b+c@sub.example.org",
                "a@com",
                "@example.com",
                "a@@example.com",
                "a b@example.com",
                "a@-x.com",
            ],
        );
        agree(
            E164_PATTERN,
            |s| E164::parse_for("mobile", s).is_ok(),
            &[
                "+31201234567",
                "+12",
                "+1",
                "+0123",
                "31201234567",
                &format!("+{}", "1".repeat(15)),
                &format!("+{}", "1".repeat(16)),
            ],
        );
        agree(
            NAME_PATTERN,
            |s| sip_settings_core::account::parse_name("n", s).is_ok(),
            &["Alice", "Ålice Ö", "", "a\u{1}b", "a\u{85}b", "a\u{7f}"],
        );
    }

    /// A call record that is valid but for `field`, set to `value`.
    fn call_with(field: &str, value: &str) -> bool {
        let mut c = sip_settings_core::calls::CallInput {
            call_id: "c1@proxy".into(),
            caller: "sip:alice@example.com".into(),
            callee: "sip:bob@example.com".into(),
            start: "2026-12-01T10:00:00Z".into(),
            stop: "2026-12-01T10:01:00Z".into(),
            duration: Some(60),
            status: Some(200),
            ..Default::default()
        };
        match field {
            "call_id" => c.call_id = value.into(),
            "from_tag" => c.from_tag = value.into(),
            "caller" => c.caller = value.into(),
            "media" => c.media = vec![value.into()],
            "proxy_ip" => c.proxy_ip = value.into(),
            "price" => c.price = Some(value.into()),
            _ => panic!("{field}"),
        }
        c.parse().is_ok()
    }

    /// A registration that is valid but for `field`, set to `value`.
    fn registration_with(field: &str, value: &str) -> bool {
        let mut r = sip_settings_core::devices::RegisterInput {
            aor: "sip:alice@example.com".into(),
            transport: "udp".into(),
            source: "192.0.2.1:5060".into(),
            call_id: "r1".into(),
            cseq: 1,
            ..Default::default()
        };
        match field {
            "contact" => r.contact = value.into(),
            "transport" => r.transport = value.into(),
            "source" => r.source = value.into(),
            _ => panic!("{field}"),
        }
        let alice = AccountId::parse("alice@example.com").unwrap();
        r.check(alice, chrono::Utc::now()).is_ok()
    }

    #[test]
    fn service_patterns_agree_with_the_validators() {
        let tel = sip_settings_core::Domain::parse("example.com").unwrap();
        agree(
            ACCOUNT_PATTERN,
            |s| AccountId::parse(s).is_ok(),
            &[
                "alice@example.com",
                "sip:Alice@EXAMPLE.com",
                "alice",
                "@example.com",
                "alice@-x.com",
                "a b@example.com",
            ],
        );
        agree(
            CALLER_PATTERN,
            |s| sip_settings_core::sip::parse_caller("caller", s, &tel).is_ok(),
            &[
                "anonymous",
                "ANONYMOUS",
                "sip:bob@example.net",
                "sips:example.net:5061",
                "bob@example.net",
                "tel:+31201234567",
                "TEL:123",
                "tel:",
                "tel:+",
                &format!("tel:{}", "1".repeat(21)),
                "bob",
                "sip:bob@-x",
                "",
                "bob@h:70000",
            ],
        );
        agree(
            ADDRESS_PATTERN,
            |s| sip_settings_core::sip::parse_address("callee", s, &tel).is_ok(),
            &[
                "sip:bob@example.net",
                "bob@example.net",
                "tel:+31201234567",
                "anonymous",
                "bob",
                "",
            ],
        );
        agree(
            SIP_URI_PATTERN,
            |s| sip_settings_core::sip::SipUri::parse_for("caller", s).is_ok(),
            &[
                "sip:bob@example.net",
                "SIPS:h:5061",
                "sip:h",
                "bob@example.net",
                "sip:@h",
                "sip:b@h:0",
                "sip:",
            ],
        );
    }

    #[test]
    fn more_service_patterns_agree_with_the_validators() {
        agree(
            AOR_PATTERN,
            |s| {
                sip_settings_core::sip::SipUri::parse_for("aor", s)
                    .is_ok_and(|u| sip_settings_core::Domain::parse(u.host()).is_ok())
            },
            &[
                "sip:alice@example.com",
                "SIP:example.com:5060",
                "sip:alice@localhost",
                "sip:0",
                "sip:alice@h",
                "sip:a@1.2.3.4",
                "sip:a@-x.com",
            ],
        );
        agree(
            CALL_ID_PATTERN,
            |s| call_with("call_id", s),
            &[
                "c1@proxy",
                "ä",
                "",
                "a b",
                "a\u{1}",
                &"a".repeat(255),
                &"a".repeat(256),
                &"ä".repeat(63),
            ],
        );
        agree(
            TAG_PATTERN,
            |s| call_with("from_tag", s),
            &["", "f1", "a b", &"a".repeat(128), &"a".repeat(129)],
        );
        agree(
            MEDIA_PATTERN,
            |s| call_with("media", s),
            &[
                "audio",
                "Video",
                "",
                "a b",
                &"a".repeat(32),
                &"a".repeat(33),
            ],
        );
        agree(
            PROXY_IP_PATTERN,
            |s| call_with("proxy_ip", s),
            &["", "192.0.2.1", "256.0.0.1", "01.2.3.4", "1.2.3", "x"],
        );
        agree(
            PRICE_PATTERN,
            |s| call_with("price", s),
            &[
                "",
                "0",
                "1.5",
                "+2.0001",
                ".5",
                "5.",
                "-1",
                "1.23456",
                ".",
                "1e3",
                "1234567890123",
            ],
        );
        agree(
            TRANSPORT_PATTERN,
            |s| registration_with("transport", s),
            &["udp", "TLS", "Wss", "sctp", "http", ""],
        );
        agree(
            SOURCE_PATTERN,
            |s| registration_with("source", s),
            &[
                "192.0.2.1:5060",
                "192.0.2.1:0",
                "192.0.2.1:65535",
                "192.0.2.1:65536",
                "192.0.2.1",
                "h:5060",
            ],
        );
        agree(
            REGISTER_CONTACT_PATTERN,
            |s| registration_with("contact", s),
            &[
                "",
                "<sip:alice@192.0.2.1:5060>",
                "<sip:alice@192.0.2.1>;expires=60, <sips:h>;EXPIRES=0",
                "<sip:a b@h>",
                "<sip:a@h",
                "http://x",
                "<sip:a@h>;expires=soon",
            ],
        );
    }

    /// The path and header parameters of every operation say what they accept: a pattern, an
    /// enumeration or a range.
    #[test]
    fn every_path_and_header_parameter_is_constrained() {
        let doc = serde_json::to_value(crate::v1::openapi::document()).unwrap();
        let mut loose = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                // `exact` works on JSON: a lookup of a missing list must not leave a `null`.
                assert!(
                    op.get("parameters").is_none_or(|l| l.is_array()),
                    "{method} {path}"
                );
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let s = &p["schema"];
                    let constrained = s["pattern"].is_string()
                        || s["enum"].is_array()
                        || s["maximum"].is_number();
                    if (p["in"] == "path" || p["in"] == "header") && !constrained {
                        loose.push(format!("{method} {path} {}", p["name"]));
                    }
                }
            }
        }
        assert!(loose.is_empty(), "{loose:?}");
    }
}
