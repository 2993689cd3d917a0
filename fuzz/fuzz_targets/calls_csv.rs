#![no_main]
//! See `sip_settings_http::fuzzing::calls_csv`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_http::fuzzing::calls_csv(data));
