//! The bodies of the `cargo fuzz` targets for the CSV importers (`fuzz/`), shared with the
//! corpus replay test (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes and panics only when
//! a property is violated; the importers they call must never panic.

use crate::billing_commands::{CALLS_HEADER, RATES_HEADER, parse_calls_csv, parse_rates_csv};

/// Writes records under a header as CSV (the importers' format).
fn write_csv(header: &[&str], records: &[Vec<String>]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let rows = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
        .chain(records.iter().cloned());
    for row in rows {
        if let Err(e) = writer.write_record(&row) {
            panic!("writing CSV to memory failed: {e}");
        }
    }
    match writer.into_inner() {
        Ok(bytes) => bytes,
        Err(e) => panic!("writing CSV to memory failed: {e}"),
    }
}

/// The rates importer's parser ([`parse_rates_csv`]) on arbitrary bytes; what it accepts,
/// written back as CSV, parses to the same rates.
pub fn rates_csv(data: &[u8]) {
    let Ok(rates) = parse_rates_csv(data, "fuzz") else {
        return;
    };
    let records: Vec<Vec<String>> = rates
        .iter()
        .map(|r| {
            vec![
                r.prefix.clone(),
                r.description.clone(),
                r.connect_fee.to_string(),
                r.rate_per_minute.to_string(),
                r.increment_seconds.to_string(),
                r.minimum_seconds.to_string(),
            ]
        })
        .collect();
    let written = write_csv(&RATES_HEADER, &records);
    match parse_rates_csv(&written, "round trip") {
        Ok(again) => assert_eq!(again, rates, "{}", String::from_utf8_lossy(&written)),
        Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
    }
}

/// The calls importer's parser ([`parse_calls_csv`]) and the field checks every imported call
/// goes through ([`sip_settings_core::calls::CallInput::parse`]) on arbitrary bytes; the lines
/// it reads, written back as CSV, read the same.
pub fn calls_csv(data: &[u8]) {
    let Ok(lines) = parse_calls_csv(data, "fuzz") else {
        return;
    };
    let inputs: Vec<_> = lines.into_iter().filter_map(|(_, i)| i.ok()).collect();
    let checked: Vec<String> = inputs.iter().map(|i| format!("{:?}", i.parse())).collect();
    let records: Vec<Vec<String>> = inputs
        .iter()
        .map(|i| {
            vec![
                i.call_id.clone(),
                i.from_tag.clone(),
                i.to_tag.clone(),
                i.caller.clone(),
                i.callee.clone(),
                i.start.clone(),
                i.stop.clone(),
                i.duration.map(|d| d.to_string()).unwrap_or_default(),
                i.status.map(|s| s.to_string()).unwrap_or_default(),
                i.media.join(" "),
                i.proxy_ip.clone(),
                i.price.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let written = write_csv(&CALLS_HEADER, &records);
    let again = match parse_calls_csv(&written, "round trip") {
        Ok(lines) => lines,
        Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
    };
    let again: Vec<String> = again
        .into_iter()
        .map(|(_, i)| match i {
            Ok(i) => format!("{:?}", i.parse()),
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
        })
        .collect();
    assert_eq!(again, checked, "{}", String::from_utf8_lossy(&written));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_take_valid_and_invalid_input() {
        for input in [
            &b""[..],
            b"prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n31,NL,0.05,0.10,60,60\n316,\"NL, mobile\",0,0.25,1,30\n",
            b"prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\nx,NL,-1,0.10,0,60\n",
            b"\xff\xfe",
        ] {
            rates_csv(input);
        }
        for input in [
            &b""[..],
            b"call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\nx1,a,b,sip:bob@example.com,sip:alice@example.com,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,60,200,audio video,192.0.2.1,0.2500\n",
            b"call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\nx1,,,,,,,-5,abc,,,\n",
        ] {
            calls_csv(input);
        }
    }
}
