#![no_main]
//! See `sip_settings_http::fuzzing::action_params`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_http::fuzzing::action_params(data));
