//! # ledger-wire — what the Release Ledger server and its clients agree on
//!
//! The conversions between the wire types (`proto`) and the ledger's ([`convert`]), the Arrow
//! Flight ticket ([`FlightTicket`]), the default message limit, the retry-pushback trailer and
//! the W3C `traceparent` check. Both the server library (`api`) and the client library
//! (`ledger-client`) depend on this crate; neither depends on the other, and this crate
//! depends on neither.

#![deny(missing_docs)]

pub mod codes;
pub mod convert;
pub mod ticket;
pub mod token;

pub use codes::{canonical_code, result_label};
pub use ticket::{table_names, ticket_from_path, FlightTicket};

/// The default largest gRPC message, bytes (4 MiB): the server's limit unless configured, and
/// the limit the clients use.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The trailer in which a server asks a client to retry after some milliseconds (gRFC A6).
pub const PUSHBACK: &str = "grpc-retry-pushback-ms";

/// Whether `value` is a W3C `traceparent` this side understands: `VERSION-TRACEID-SPANID-FLAGS`
/// in lower-case hex of 2, 32, 16 and 2 digits, a version other than `ff` (version `00` has
/// exactly those four fields; a later version may append more after a `-`), and trace and span
/// ids that are not all zeros.
///
/// Stricter than the SDK's parser, which accepts ids of any length up to the maximum (so a
/// truncated header would silently name another trace).
pub fn valid_traceparent(value: &str) -> bool {
    fn hex(field: &str, digits: usize) -> bool {
        field.len() == digits && field.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    let fields: Vec<&str> = value.splitn(5, '-').collect();
    let [version, trace_id, span_id, flags, rest @ ..] = fields.as_slice() else {
        return false;
    };
    hex(version, 2)
        && *version != "ff"
        && (rest.is_empty() || *version != "00")
        && hex(trace_id, 32)
        && hex(span_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_validation_follows_the_w3c_format() {
        assert!(valid_traceparent(PARENT));
        assert!(valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"));
        // A later version may carry more fields.
        assert!(valid_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"));
        for bad in [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            // Ids one digit short (the SDK's parser accepts these).
            "00-af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-+1",
        ] {
            assert!(!valid_traceparent(bad), "{bad:?}");
        }
    }
}
