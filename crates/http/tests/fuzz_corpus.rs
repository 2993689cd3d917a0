//! Replays the saved `cargo fuzz` corpus (`fuzz/corpus/<target>/`) through the functions the
//! fuzz targets call, so that stable `cargo test` (CI) runs every saved input without nightly
//! or libFuzzer. A panic names the file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: a failed unwrap is a failed test

use std::path::PathBuf;

/// Every file of one target's corpus, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let mut failed = Vec::new();
    let files = corpus(target);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus files fail: {failed:?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn action_params_corpus() {
    replay("action_params", sip_settings_http::fuzzing::action_params);
}

#[test]
fn v1_bodies_corpus() {
    replay("v1_bodies", sip_settings_http::fuzzing::v1_bodies);
}

#[test]
fn rates_csv_corpus() {
    replay("rates_csv", sip_settings_http::fuzzing::rates_csv);
}

#[test]
fn calls_csv_corpus() {
    replay("calls_csv", sip_settings_http::fuzzing::calls_csv);
}

#[test]
fn digest_authorization_corpus() {
    replay(
        "digest_authorization",
        sip_settings_http::fuzzing::digest_authorization,
    );
}
