//! The RFC 4475 torture messages against the parser. `tests/torture/<name>.dat` are the exact
//! files of the RFC's Appendix A archive (CRLFs, NULs, UTF-8 and binary bodies as in the RFC;
//! `<allOneLine>` and `<hex>` already expanded), as shipped in reSIProcate's
//! `resip/stack/test/*.dat` (added there in 2006 as "RFC 4475 test case (torture tests)"); the
//! declared body lengths (wsinv 150, mpart01 553, unreason 154, …) match the bytes present.
//!
//! What the RFC says an element should do, and what our redirect server does:
//!
//! | message    | RFC 4475    | RFC says                                 | here |
//! |------------|-------------|------------------------------------------|------|
//! | wsinv      | 3.1.1.1     | valid                                    | parses |
//! | intmeth    | 3.1.1.2     | valid (unknown method; proxy 404/UAS 501) | parses; method kept as sent |
//! | esc01      | 3.1.1.3     | valid                                    | parses; escapes decoded by `parse_uri` |
//! | escnull    | 3.1.1.4     | valid                                    | parses; `%00` decodes to NUL |
//! | esc02      | 3.1.1.5     | valid (unknown method RE%47IST%45R)      | parses |
//! | lwsdisp    | 3.1.1.6     | valid                                    | parses |
//! | longreq    | 3.1.1.7     | valid                                    | parses |
//! | dblreq     | 3.1.1.8     | valid: one REGISTER, extra bytes ignored  | datagram: the REGISTER; stream: two messages |
//! | semiuri    | 3.1.1.9     | valid                                    | parses |
//! | transports | 3.1.1.10    | valid                                    | parses |
//! | mpart01    | 3.1.1.11    | valid                                    | parses; binary body kept |
//! | unreason   | 3.1.1.12    | valid                                    | parses (UTF-8 reason) |
//! | noreason   | 3.1.1.13    | valid                                    | parses (empty reason) |
//! | badinv01   | 3.1.2.1     | 400                                      | `parse` Err → 400 |
//! | clerr      | 3.1.2.2     | UDP: 400; stream: wait for more          | `parse` Err → 400; `frame` needs more bytes |
//! | ncl        | 3.1.2.3     | error; stream: close                     | `parse` Err → 400; `frame` Err → close |
//! | scalar02   | 3.1.2.4     | 400 (CSeq)                               | `parse` Err → 400 |
//! | scalarlg   | 3.1.2.5     | response: discard                        | `parse` Err, no headers → dropped |
//! | quotbal    | 3.1.2.6     | 400                                      | `parse` Err → 400 |
//! | ltgtruri   | 3.1.2.7     | 400 (or ignore the <>)                   | `parse` Err → 400 |
//! | lwsruri    | 3.1.2.8     | 400                                      | `parse` Err → 400 |
//! | lwsstart   | 3.1.2.9     | reject, or ignore the extra SP           | `parse` Err → 400 (strict) |
//! | trws       | 3.1.2.10    | reject, or ignore the trailing SP        | `parse` Err → 400 (strict) |
//! | escruri    | 3.1.2.11    | 400 (or ignore the headers)              | `parse` Err → 400 |
//! | baddate    | 3.1.2.12    | reject only if the Date matters          | parses: Date is never read |
//! | regbadct   | 3.1.2.13    | 400                                      | `parse` Err → 400 (Contact checked) |
//! | badaspec   | 3.1.2.14    | 400 (or ignore the spaces)               | `parse` Err → 400 |
//! | baddn      | 3.1.2.15    | 400                                      | `parse` Err → 400 (the archive's copy also lacks the empty line; with it, the display names are refused) |
//! | badvers    | 3.1.2.16    | 505                                      | `parse` Err, `status()` 505 |
//! | mismatch01 | 3.1.2.17    | 400                                      | `parse` Err → 400 |
//! | mismatch02 | 3.1.2.18    | 501, 400 acceptable                      | `parse` Err → 400 (the acceptable one) |
//! | bigcode    | 3.1.2.19    | response: drop                           | `parse` Err, no headers → dropped |
//! | badbranch  | 3.2.1       | 400, or fall back to RFC 2543 matching    | parses: a stateless redirect server matches no transactions |
//! | insuf      | 3.3.1       | 400                                      | `parse` Err → 400 |
//! | unkscm     | 3.3.2       | 416                                      | parses; `Request::parse_uri` Err with status 416 → redirect layer 416 |
//! | novelsc    | 3.3.3       | 416 if the scheme is not supported       | as unkscm |
//! | unksm2     | 3.3.4       | (REGISTER with other schemes in To/From/Contact) | parses (other schemes are valid in name-addrs); REGISTER → redirect layer 405 |
//! | bext01     | 3.3.5       | UAS: 420 with Unsupported                | parses; Require → redirect layer 420 |
//! | invut      | 3.3.6       | UAS: 415                                 | parses; a redirect server does not read INVITE bodies: it redirects (noted, not 415) |
//! | regaut01   | 3.3.7       | (unknown Authorization scheme)           | parses; REGISTER → redirect layer 405 |
//! | multi01    | 3.3.8       | 400                                      | `parse` Err → 400 |
//! | mcl01      | 3.3.9       | 400; stream: unframeable                 | `parse` Err → 400; `frame` Err → close |
//! | bcast      | 3.3.10      | (response with a broadcast Via)          | parses; responses are dropped by the redirect server |
//! | zeromf     | 3.3.11      | proxy 483 (OPTIONS may be answered)      | parses; Max-Forwards 0 is the redirect layer's (483 for INVITE) |
//! | cparam01   | 3.3.12      | valid: `;unknownparam` is a header param | parses; checked below |
//! | cparam02   | 3.3.13      | valid: `;unknownparam` is a URI param    | parses; checked below |
//! | regescrt   | 3.3.14      | valid syntax (escaped Route in Contact)  | parses; REGISTER → redirect layer 405 |
//! | sdp01      | 3.3.15      | UAS: 406 (Accept without SDP)            | parses; a 3xx has no body, so Accept does not matter (noted) |
//! | inv2543    | 3.4.1       | RFC 2543 request: accept                 | parses (datagram: body = rest); on a stream `frame` refuses it (no Content-Length) |
//!
//! "vintern" (in the brief) is not an RFC 4475 message; there is none by that name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: a failed unwrap is a failed test

use std::path::PathBuf;

use sip_settings_sip::message::{
    Message, ParseError, Request, Response, frame, parse, parse_cseq, parse_name_addr, parse_via,
    skip_keepalive,
};
use sip_settings_sip::uri::{Scheme, parse_uri};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

fn bytes(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(name: &str) -> Request {
    match parse(&bytes(name)) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

fn response(name: &str) -> Response {
    match parse(&bytes(name)) {
        Ok(Message::Response(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

fn refused(name: &str) -> ParseError {
    match parse(&bytes(name)) {
        Err(e) => e,
        Ok(m) => panic!("{name} parsed: {m:?}"),
    }
}

/// How a message is handled.
enum Expect {
    /// Parses; anything the redirect server does with it is its usual work.
    Parses,
    /// Parses; the problem is semantic and the redirect layer answers it (the note says how).
    ParsesRedirectRefuses(&'static str),
    /// `parse` refuses a request: the server answers with `status`; the reason contains `why`.
    Answered { status: u16, why: &'static str },
    /// `parse` refuses a response: no headers come back, the server drops it.
    Dropped { why: &'static str },
}

use Expect::*;

const CASES: &[(&str, Expect)] = &[
    // 3.1.1 valid
    ("wsinv", Parses),
    ("intmeth", Parses),
    ("esc01", Parses),
    ("escnull", Parses),
    ("esc02", Parses),
    ("lwsdisp", Parses),
    ("longreq", Parses),
    ("dblreq", Parses),
    ("semiuri", Parses),
    ("transports", Parses),
    ("mpart01", Parses),
    ("unreason", Parses),
    ("noreason", Parses),
    // 3.1.2 invalid
    (
        "badinv01",
        Answered {
            status: 400,
            why: "Via: an empty parameter",
        },
    ),
    (
        "clerr",
        Answered {
            status: 400,
            why: "Content-Length 9999 is larger than the 154 bytes",
        },
    ),
    (
        "ncl",
        Answered {
            status: 400,
            why: "Content-Length \"-999\" is not a number",
        },
    ),
    (
        "scalar02",
        Answered {
            status: 400,
            why: "CSeq number 36893488147419103232 is not below 2^31",
        },
    ),
    (
        "scalarlg",
        Dropped {
            why: "CSeq number 9292394834772304023312",
        },
    ),
    (
        "quotbal",
        Answered {
            status: 400,
            why: "To: an unterminated quoted string",
        },
    ),
    (
        "ltgtruri",
        Answered {
            status: 400,
            why: "is not an absolute URI",
        },
    ),
    (
        "lwsruri",
        Answered {
            status: 400,
            why: "the Request-URI contains whitespace",
        },
    ),
    (
        "lwsstart",
        Answered {
            status: 400,
            why: "more than one space",
        },
    ),
    (
        "trws",
        Answered {
            status: 400,
            why: "the request line ends with whitespace",
        },
    ),
    (
        "escruri",
        Answered {
            status: 400,
            why: "has a header component",
        },
    ),
    ("baddate", Parses),
    (
        "regbadct",
        Answered {
            status: 400,
            why: "Contact: the URI \"sip:user@example.com?Route=%3Csip:sip.example.com%3E\" contains ? or ,",
        },
    ),
    (
        "badaspec",
        Answered {
            status: 400,
            why: "To: whitespace in the URI",
        },
    ),
    (
        "baddn",
        Answered {
            status: 400,
            why: "does not end with an empty line",
        },
    ),
    (
        "badvers",
        Answered {
            status: 505,
            why: "unsupported SIP version \"SIP/7.0\"",
        },
    ),
    (
        "mismatch01",
        Answered {
            status: 400,
            why: "CSeq method INVITE does not match the request method OPTIONS",
        },
    ),
    (
        "mismatch02",
        Answered {
            status: 400,
            why: "CSeq method INVITE does not match the request method NEWMETHOD",
        },
    ),
    (
        "bigcode",
        Dropped {
            why: "status code \"4294967301\" is not 100 to 699",
        },
    ),
    // 3.2 transaction layer
    ("badbranch", Parses),
    // 3.3 application layer
    (
        "insuf",
        Answered {
            status: 400,
            why: "missing From header",
        },
    ),
    (
        "unkscm",
        ParsesRedirectRefuses("416: Request::parse_uri says unsupported URI scheme"),
    ),
    (
        "novelsc",
        ParsesRedirectRefuses("416: Request::parse_uri says unsupported URI scheme"),
    ),
    (
        "unksm2",
        ParsesRedirectRefuses("405: REGISTER is not served"),
    ),
    (
        "bext01",
        ParsesRedirectRefuses("420: Require lists unknown extensions"),
    ),
    (
        "invut",
        ParsesRedirectRefuses("none: the body is not read; RFC 4475 would have a UAS answer 415"),
    ),
    (
        "regaut01",
        ParsesRedirectRefuses("405: REGISTER is not served"),
    ),
    (
        "multi01",
        Answered {
            status: 400,
            why: "Call-ID given twice with different values",
        },
    ),
    (
        "mcl01",
        Answered {
            status: 400,
            why: "Content-Length given twice with different values",
        },
    ),
    ("bcast", ParsesRedirectRefuses("dropped: a response")),
    (
        "zeromf",
        ParsesRedirectRefuses("Max-Forwards 0: 483 for INVITE, OPTIONS answered"),
    ),
    (
        "cparam01",
        ParsesRedirectRefuses("405: REGISTER is not served"),
    ),
    (
        "cparam02",
        ParsesRedirectRefuses("405: REGISTER is not served"),
    ),
    (
        "regescrt",
        ParsesRedirectRefuses("405: REGISTER is not served"),
    ),
    (
        "sdp01",
        ParsesRedirectRefuses("none: a 3xx carries no body, so Accept is met"),
    ),
    // 3.4 backward compatibility
    ("inv2543", Parses),
];

#[test]
fn every_file_is_in_the_table_and_behaves_as_it_says() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed, "tests/torture/*.dat and the table differ");
    assert_eq!(files.len(), 49);

    for (name, expect) in CASES {
        let result = parse(&bytes(name));
        match expect {
            Parses => assert!(result.is_ok(), "{name}: {result:?}"),
            ParsesRedirectRefuses(then) => {
                assert!(result.is_ok(), "{name} (then {then}): {result:?}");
            }
            Answered { status, why } => {
                let e = result.unwrap_err();
                assert!(
                    e.reason.contains(why),
                    "{name}: {:?} lacks {why:?}",
                    e.reason
                );
                assert_eq!(e.status(), *status, "{name}");
                let headers = e
                    .headers
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: no headers"));
                assert!(!headers.is_empty(), "{name}");
                assert_eq!(e.to_string(), e.reason);
            }
            Dropped { why } => {
                let e = result.unwrap_err();
                assert!(
                    e.reason.contains(why),
                    "{name}: {:?} lacks {why:?}",
                    e.reason
                );
                assert!(e.headers.is_none(), "{name}: a response is not answered");
            }
        }
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    let r = request("wsinv");
    assert_eq!(r.method, "INVITE");
    assert_eq!(r.uri, "sip:vivekg@chair-dnrc.example.com;unknownparam");
    let uri = parse_uri(&r.uri).unwrap();
    assert_eq!(uri.param("unknownparam"), Some(None));
    let h = &r.headers;
    let to = parse_name_addr(h.get("to").unwrap()).unwrap();
    assert_eq!(to.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = parse_name_addr(h.get("from").unwrap()).unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.get("max-forwards"), Some("0068"));
    assert_eq!(h.get("content-length"), Some("150"));
    let cseq = parse_cseq(h.get("cseq").unwrap()).unwrap();
    assert_eq!((cseq.number, cseq.method.as_str()), (9, "INVITE"));
    let vias: Vec<_> = h
        .list("via")
        .into_iter()
        .map(|v| parse_via(v).unwrap())
        .collect();
    assert_eq!(vias.len(), 3);
    let sent: Vec<_> = vias
        .iter()
        .map(|v| {
            (
                v.protocol.as_str(),
                v.transport.as_str(),
                v.host.as_str(),
                v.branch(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("SIP/2.0", "UDP", "192.0.2.2", Some("390skdjuw")),
            (
                "SIP/2.0",
                "TCP",
                "spindle.example.com",
                Some("z9hG4bK9ikj8")
            ),
            ("SIP/2.0", "UDP", "192.168.255.111", Some("z9hG4bK30239")),
        ]
    );
    assert_eq!(h.get("subject"), Some(""));
    assert_eq!(
        h.get("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(h.get("unknownheaderwithunusualvalue"), Some(";;,,;;,;"));
    assert_eq!(
        h.get("route"),
        Some("<sip:services.example.com;lr;unknownwith=value;unknown-no-value>")
    );
    let contacts = h.list("contact");
    assert_eq!(contacts.len(), 1);
    let contact = parse_name_addr(contacts[0]).unwrap();
    assert_eq!(contact.display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.param("newparam"), Some(Some("newvalue")));
    assert_eq!(contact.param("secondparam"), Some(None));
    assert_eq!(contact.param("q"), Some(Some("0.33")));
    assert_eq!(r.body.len(), 150);
    assert!(r.body.starts_with(b"v=0\r\n"));
}

#[test]
fn intmeth_wide_range_of_characters() {
    let r = request("intmeth");
    assert_eq!(r.method, "!interesting-Method0123456789_*+`.%indeed'~");
    let uri = parse_uri(&r.uri).unwrap();
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(uri.host, "example.com");
    let h = &r.headers;
    assert_eq!(
        parse_via(h.get("via").unwrap()).unwrap().branch(),
        Some("z9hG4bK-.!%66*_+`'~")
    );
    let to = parse_name_addr(h.get("to").unwrap()).unwrap();
    assert_eq!(to.display.as_deref(), Some("BEL:\u{7} NUL:\0 DEL:\u{7f}"));
    let from = parse_name_addr(h.get("from").unwrap()).unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.param("fromparam''~+*_!.-%"),
        Some(Some("\"работающий\""))
    );
    assert_eq!(
        h.get("call-id"),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(
        parse_cseq(h.get("cseq").unwrap()).unwrap().number,
        139_122_385
    );
    assert_eq!(h.get("extensionheader-!.%*+_`'~"), Some("\u{feff}大停電"));
}

#[test]
fn escapes() {
    let r = request("esc01");
    let uri = parse_uri(&r.uri).unwrap();
    assert_eq!(
        (uri.user.as_deref(), uri.host.as_str()),
        (Some("sips:user@example.com"), "example.net")
    );
    let to = parse_name_addr(r.headers.get("to").unwrap()).unwrap();
    assert_eq!(parse_uri(&to.uri).unwrap().user.as_deref(), Some("user"));
    let from = parse_name_addr(r.headers.get("from").unwrap()).unwrap();
    assert_eq!(
        parse_uri(&from.uri).unwrap().user.as_deref(),
        Some("I have spaces")
    );
    let contact = parse_name_addr(r.headers.get("contact").unwrap()).unwrap();
    let c = parse_uri(&contact.uri).unwrap();
    assert_eq!(c.user.as_deref(), Some("caller"));
    assert_eq!(c.param("lr"), Some(None));
    assert_eq!(c.param("name"), Some(Some("value%41")));

    let r = request("escnull");
    let to = parse_name_addr(r.headers.get("to").unwrap()).unwrap();
    assert_eq!(
        parse_uri(&to.uri).unwrap().user.as_deref(),
        Some("null-\0-null")
    );
    let contacts = r.headers.list("contact");
    assert_eq!(contacts.len(), 2);
    let second = parse_name_addr(contacts[1]).unwrap();
    assert_eq!(
        parse_uri(&second.uri).unwrap().user.as_deref(),
        Some("\0\0")
    );

    let r = request("esc02");
    assert_eq!(r.method, "RE%47IST%45R", "% is not an escape in a method");
    assert_eq!(
        r.headers.list("contact").len(),
        2,
        "C%6Fntact is another header"
    );
    assert_eq!(
        r.headers.get("c%6fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
    let to = parse_name_addr(r.headers.get("to").unwrap()).unwrap();
    assert_eq!(to.display.as_deref(), Some("%Z%45"));
}

#[test]
fn other_valid_messages() {
    let r = request("lwsdisp");
    let from = parse_name_addr(r.headers.get("from").unwrap()).unwrap();
    assert_eq!(
        (from.display.as_deref(), from.uri.as_str()),
        (Some("caller"), "sip:caller@example.com")
    );

    let r = request("longreq");
    assert_eq!(r.headers.list("via").len(), 34);
    assert!(
        r.headers
            .list("via")
            .into_iter()
            .all(|v| parse_via(v).is_ok())
    );
    assert_eq!(r.body.len(), 150);
    let to = parse_name_addr(r.headers.get("to").unwrap()).unwrap();
    assert!(to.display.unwrap().contains("extremeextreme"));
    assert_eq!(parse_uri(&to.uri).unwrap().port, Some(6000));

    let r = request("semiuri");
    let uri = parse_uri(&r.uri).unwrap();
    assert_eq!(
        (uri.user.as_deref(), uri.host.as_str()),
        (Some("user;par=u@example.net"), "example.com")
    );
    assert!(uri.params.is_empty());
    assert_eq!(
        r.headers.list("accept"),
        [
            "application/sdp",
            "application/pkcs7-mime",
            "multipart/mixed",
            "multipart/signed",
            "message/sip",
            "message/sipfrag"
        ]
    );

    let r = request("transports");
    let transports: Vec<String> = r
        .headers
        .list("via")
        .into_iter()
        .map(|v| parse_via(v).unwrap().transport)
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);

    let r = request("mpart01");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.starts_with(b"--7a9cbec02ceef655\r\n"));
    assert!(r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
    assert_eq!(
        parse_via(r.headers.get("via").unwrap())
            .unwrap()
            .param("rport"),
        Some(None)
    );

    let r = response("unreason");
    assert_eq!(r.code, 200);
    assert_eq!(r.reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
    assert_eq!(r.body.len(), 154);

    let r = response("noreason");
    assert_eq!((r.code, r.reason.as_str()), (100, ""));

    let r = request("inv2543");
    assert_eq!(r.headers.get("max-forwards"), None);
    assert_eq!(
        parse_via(r.headers.get("via").unwrap()).unwrap().branch(),
        None
    );
    assert_eq!(
        parse_name_addr(r.headers.get("from").unwrap())
            .unwrap()
            .tag(),
        None
    );
    assert!(r.body.starts_with(b"v=0") && r.body.ends_with(b"m=audio 49217 RTP/AVP 0\r\n"));
    let to = parse_name_addr(r.headers.get("to").unwrap()).unwrap();
    assert_eq!(to.uri, "sip:+16505552222@ss1.example.net");
    assert_eq!(
        to.param("user"),
        Some(Some("phone")),
        "an addr-spec's ;user= is a header param"
    );
}

#[test]
fn dblreq_datagram_and_stream() {
    let data = bytes("dblreq");
    let r = request("dblreq");
    assert_eq!(
        r.method, "REGISTER",
        "a datagram holds one message; the rest is ignored"
    );
    assert!(r.body.is_empty());
    // On a stream the same bytes are two messages.
    let first = frame(&data).unwrap().unwrap();
    assert!(matches!(parse(&data[..first]), Ok(Message::Request(ref q)) if q.method == "REGISTER"));
    let rest = &data[first..];
    let skip = skip_keepalive(rest);
    assert_eq!(skip, 2, "the extra CRLF between them");
    let rest = &rest[skip..];
    let second = frame(rest).unwrap().unwrap();
    let Ok(Message::Request(invite)) = parse(&rest[..second]) else {
        panic!()
    };
    assert_eq!(invite.method, "INVITE");
    assert_eq!(invite.body.len(), 150);
    // The INVITE's body is longer than its Content-Length of 150; on a stream the rest would
    // be the start of a next (malformed) message.
    assert_eq!(&rest[second..], b"C\r\n\r\n");
}

#[test]
fn stream_framing_of_the_length_tests() {
    assert_eq!(
        frame(&bytes("clerr")).unwrap(),
        None,
        "clerr: wait for more"
    );
    assert!(
        frame(&bytes("ncl"))
            .unwrap_err()
            .reason
            .contains("not a number")
    );
    assert!(
        frame(&bytes("mcl01"))
            .unwrap_err()
            .reason
            .contains("given twice")
    );
    assert!(
        frame(&bytes("inv2543"))
            .unwrap_err()
            .reason
            .contains("no Content-Length")
    );
    for (name, _) in CASES {
        let data = bytes(name);
        if let Ok(Some(n)) = frame(&data) {
            assert!(n <= data.len(), "{name}");
        }
    }
}

#[test]
fn details_of_refused_messages() {
    // baddn: the archive's copy ends without the empty line; with it, the unquoted display
    // names with a comma are what is refused.
    let mut fixed = bytes("baddn");
    fixed.extend_from_slice(b"\r\n");
    let e = parse(&fixed).unwrap_err();
    assert!(
        e.reason.starts_with("From: the display name \"Bell,\""),
        "{}",
        e.reason
    );
    assert_eq!(e.status(), 400);

    // scalar02: the CSeq error comes first, as RFC 4475 says the 400 is due to it; the
    // Max-Forwards of 300 is refused as well.
    let text = String::from_utf8(bytes("scalar02")).unwrap();
    let e = parse(text.replace("36893488147419103232", "1").as_bytes()).unwrap_err();
    assert_eq!(e.reason, "Max-Forwards 300 is above 255");

    // insuf lacks To, From, Call-ID and Max-Forwards; the first missing one is named.
    let e = refused("insuf");
    let headers = e.headers.unwrap();
    assert_eq!(headers.get("cseq"), Some("193942 INVITE"));

    // badvers: the headers come back so that the 505 can be addressed.
    let e = refused("badvers");
    assert!(e.headers.unwrap().get("via").is_some());
}

#[test]
fn semantic_cases_parse_and_show_the_problem() {
    for name in ["unkscm", "novelsc"] {
        let e = request(name).parse_uri().unwrap_err();
        assert!(
            e.reason.starts_with("unsupported URI scheme"),
            "{name}: {}",
            e.reason
        );
        assert_eq!(e.status(), 416);
    }
    for name in ["unksm2", "regaut01", "cparam01", "cparam02", "regescrt"] {
        assert_eq!(request(name).method, "REGISTER");
    }
    let r = request("unksm2");
    assert_eq!(
        parse_name_addr(r.headers.get("to").unwrap()).unwrap().uri,
        "isbn:2983792873"
    );
    let contact = parse_name_addr(r.headers.get("contact").unwrap()).unwrap();
    assert!(
        parse_uri(&contact.uri)
            .unwrap_err()
            .reason
            .contains("unsupported URI scheme name")
    );

    let r = request("bext01");
    assert_eq!(
        r.headers.list("require"),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    assert_eq!(r.headers.list("proxy-require").len(), 2);

    assert_eq!(
        request("invut").headers.get("content-type"),
        Some("application/unknownformat")
    );
    assert_eq!(request("zeromf").headers.get("max-forwards"), Some("0"));
    assert_eq!(
        request("sdp01").headers.get("accept"),
        Some("text/nobodyKnowsThis")
    );
    assert_eq!(
        request("baddate").headers.get("date"),
        Some("Fri, 01 Jan 2010 16:00:00 EST")
    );
    assert_eq!(
        parse_via(request("badbranch").headers.get("via").unwrap())
            .unwrap()
            .branch(),
        Some("z9hG4bK")
    );
    let bcast = response("bcast");
    assert_eq!(
        parse_via(bcast.headers.list("via")[1]).unwrap().host,
        "255.255.255.255"
    );

    // cparam01: without <>, ;unknownparam belongs to the header, not to the URI.
    let r = request("cparam01");
    let c = parse_name_addr(r.headers.get("contact").unwrap()).unwrap();
    assert_eq!(c.uri, "sip:+19725552222@gw1.example.net");
    assert_eq!(c.param("unknownparam"), Some(None));
    // cparam02: inside <>, it is a URI parameter.
    let r = request("cparam02");
    let c = parse_name_addr(r.headers.get("contact").unwrap()).unwrap();
    assert_eq!(c.param("unknownparam"), None);
    let uri = parse_uri(&c.uri).unwrap();
    assert_eq!(uri.param("unknownparam"), Some(None));
    assert_eq!(
        (uri.scheme, uri.user.as_deref()),
        (Scheme::Sip, Some("+19725552222"))
    );
    // regescrt: an escaped Route inside <> is a URI header component.
    let r = request("regescrt");
    let c = parse_name_addr(r.headers.get("contact").unwrap()).unwrap();
    assert_eq!(
        parse_uri(&c.uri).unwrap().headers.as_deref(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
}
