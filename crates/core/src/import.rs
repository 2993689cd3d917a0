//! The CSV importers' parsers (`sip-settings rates import`, `calls import`): text in, checked
//! rates or call inputs out, every malformed line named, no store needed (the fuzz targets and
//! the CLI share them).

use crate::ServiceError;
use crate::calls::CallInput;
use crate::money::Money;
use crate::rating::Rate;

/// Why an import file was refused as a whole (the message names the source and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// One line of a calls CSV: its number, and the call or what is wrong with its numbers.
pub type CallLine = (u64, Result<CallInput, ServiceError>);

macro_rules! refuse {
    ($($arg:tt)*) => { return Err(ImportError(format!($($arg)*))) };
}

/// Reads a CSV with a header; gives `(line number, fields)` per record. `source` names the
/// input in messages.
fn read_csv(
    text: &[u8],
    source: &str,
    expected_header: &[&str],
) -> Result<Vec<(u64, Vec<String>)>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError(format!("{source} line 1: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if header != expected_header {
        refuse!(
            "{source} line 1: the header must be {}",
            expected_header.join(",")
        );
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            ImportError(format!("{source} line {line}: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != expected_header.len() {
            refuse!(
                "{source} line {line}: {} fields, expected {}",
                record.len(),
                expected_header.len()
            );
        }
        out.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, ServiceError> {
    v.parse()
        .map_err(|_| ServiceError::invalid(field, format!("'{v}' is not a whole number")))
}

/// The header of a rates CSV.
pub const RATES_HEADER: [&str; 6] = [
    "prefix",
    "description",
    "connect_fee",
    "rate_per_minute",
    "increment_seconds",
    "minimum_seconds",
];

/// Parses the text of a rates CSV (`source` names it in messages); every malformed line is
/// reported, and then nothing is returned.
pub fn parse_rates_csv(text: &[u8], source: &str) -> Result<Vec<Rate>, ImportError> {
    let mut rates = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, f) in read_csv(text, source, &RATES_HEADER)? {
        let parsed = (|| -> Result<Rate, ServiceError> {
            Rate::new(
                &f[0],
                &f[1],
                Money::parse_for("connect_fee", &f[2])?,
                Money::parse_for("rate_per_minute", &f[3])?,
                number("increment_seconds", &f[4])?,
                number("minimum_seconds", &f[5])?,
            )
        })();
        match parsed {
            Ok(r) if !seen.insert(r.prefix.clone()) => {
                errors.push(format!("line {line}: prefix {} appears twice", r.prefix));
            }
            Ok(r) => rates.push(r),
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    if !errors.is_empty() {
        refuse!("{source}: nothing imported: {}", errors.join("; "));
    }
    Ok(rates)
}

/// The header of a calls CSV.
pub const CALLS_HEADER: [&str; 12] = [
    "call_id", "from_tag", "to_tag", "caller", "callee", "start", "stop", "duration", "status",
    "media", "proxy_ip", "price",
];

/// Reads the text of a calls CSV (`source` names it in messages) into one call per line, or
/// what is wrong with the line's numbers; the fields are checked by [`CallInput::parse`] when
/// the call is prepared.
pub fn parse_calls_csv(text: &[u8], source: &str) -> Result<Vec<CallLine>, ImportError> {
    Ok(read_csv(text, source, &CALLS_HEADER)?
        .into_iter()
        .map(|(line, f)| {
            let input = (|| -> Result<CallInput, ServiceError> {
                Ok(CallInput {
                    call_id: f[0].clone(),
                    from_tag: f[1].clone(),
                    to_tag: f[2].clone(),
                    caller: f[3].clone(),
                    callee: f[4].clone(),
                    start: f[5].clone(),
                    stop: f[6].clone(),
                    duration: Some(number("duration", &f[7])?),
                    status: Some(number("status", &f[8])?),
                    media: f[9].split_whitespace().map(str::to_owned).collect(),
                    proxy_ip: f[10].clone(),
                    price: Some(f[11].clone()).filter(|p| !p.is_empty()),
                })
            })();
            (line, input)
        })
        .collect())
}
