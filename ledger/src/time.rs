//! Time as the ledger writes and reads it: ns since the epoch ⇄ RFC 3339, the one home of
//! these conversions (`projections` re-exports them for freezes, decisions and queries).

use chrono::{DateTime, SecondsFormat};

use crate::error::clip;

/// Formats ns since the epoch as RFC 3339 UTC, with nanoseconds only when they are non-zero,
/// e.g. `2025-05-24T22:00:00Z` or `2025-05-24T22:00:00.000000001Z`.
pub fn format_ns(ns: i64) -> String {
    let at = DateTime::from_timestamp_nanos(ns);
    let format = if at.timestamp_subsec_nanos() == 0 { SecondsFormat::Secs } else { SecondsFormat::Nanos };
    at.to_rfc3339_opts(format, true)
}

/// Parses RFC 3339 (any offset) into ns since the epoch.
///
/// # Errors
/// When `text` is not RFC 3339 or lies outside the years 1677 ..= 2262 that ns in an `i64` cover.
pub fn parse_rfc3339_ns(text: &str) -> Result<i64, String> {
    let at = DateTime::parse_from_rfc3339(text).map_err(|e| format!("{:?} is not RFC 3339: {e}", clip(text)))?;
    at.timestamp_nanos_opt()
        .ok_or_else(|| format!("{:?} is outside the representable range (1677 to 2262)", clip(text)))
}

/// Formats a `recordedAt` (unsigned ns) for people.
pub fn format_recorded_at(ns: u64) -> String {
    format_ns(i64::try_from(ns).unwrap_or(i64::MAX))
}
