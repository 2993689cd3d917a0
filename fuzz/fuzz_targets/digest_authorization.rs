#![no_main]
//! See `sip_settings_http::fuzzing::digest_authorization`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_http::fuzzing::digest_authorization(data));
