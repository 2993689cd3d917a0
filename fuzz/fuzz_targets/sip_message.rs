#![no_main]
//! See `sip_settings_sip::message::fuzzing::sip_message`: `parse`, `frame`, `skip_keepalive`,
//! and the field parsers (`parse_via`, `parse_name_addr`, `parse_cseq`, `parse_uri`) on what
//! parses.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sip_settings_sip::message::fuzzing::sip_message(data));
