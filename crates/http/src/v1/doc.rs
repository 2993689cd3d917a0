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
