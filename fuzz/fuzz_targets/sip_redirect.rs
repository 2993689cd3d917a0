#![no_main]
//! See `sip_settings_sip::redirect::fuzzing::sip_redirect`: whatever arrives, the redirect
//! logic plans it and every answer it writes is a well-formed SIP response.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_sip::redirect::fuzzing::sip_redirect(data));
