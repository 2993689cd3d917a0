//! Replays the saved `cargo fuzz` corpora of the `sip_message` and `sip_redirect` targets
//! (`fuzz/corpus/sip_message/`, `fuzz/corpus/sip_redirect/`) through the functions the targets call, so that stable `cargo test` (CI) runs every saved
//! input without nightly or libFuzzer. A panic names the file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: a failed unwrap is a failed test

use std::path::PathBuf;

#[test]
fn sip_message_corpus() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let dir = corpus.join("sip_message");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    // The sip_redirect target's own finds, when it has any.
    if let Ok(entries) = std::fs::read_dir(corpus.join("sip_redirect")) {
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let run = || sip_settings_sip::message::fuzzing::sip_message(&data);
        if std::panic::catch_unwind(run).is_err() {
            failed.push(file.display().to_string());
        }
        let answer = || sip_settings_sip::redirect::fuzzing::sip_redirect(&data);
        if std::panic::catch_unwind(answer).is_err() {
            failed.push(format!("{} (sip_redirect)", file.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "sip_message: {} of {} corpus files fail: {failed:?}",
        failed.len(),
        files.len()
    );
}

/// The hand-written seeds parse as intended (the fuzzer's own finds need not).
#[test]
fn seeds_parse() {
    use sip_settings_sip::message::{Message, frame, parse, skip_keepalive};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sip_message");
    for name in [
        "invite",
        "options",
        "compact",
        "folded-ipv6-lf",
        "response-302",
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        assert!(parse(&data).is_ok(), "{name}: {:?}", parse(&data));
    }
    let data = std::fs::read(dir.join("stream-keepalive-two")).unwrap();
    let skip = skip_keepalive(&data);
    assert_eq!(skip, 4);
    let first = frame(&data[skip..]).unwrap().unwrap();
    let Ok(Message::Request(ack)) = parse(&data[skip..skip + first]) else {
        panic!()
    };
    assert_eq!(ack.method, "ACK");
    let rest = &data[skip + first..];
    assert_eq!(frame(rest).unwrap(), Some(rest.len()));
    let Ok(Message::Request(cancel)) = parse(rest) else {
        panic!()
    };
    assert_eq!(
        (cancel.method.as_str(), cancel.body.as_slice()),
        ("CANCEL", &b"hi"[..])
    );
}
