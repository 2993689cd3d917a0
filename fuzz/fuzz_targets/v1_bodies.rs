#![no_main]
//! See `sip_settings_http::fuzzing::v1_bodies`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_http::fuzzing::v1_bodies(data));
