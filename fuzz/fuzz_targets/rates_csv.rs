#![no_main]
//! See `sip_settings_http::fuzzing::rates_csv`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_http::fuzzing::rates_csv(data));
