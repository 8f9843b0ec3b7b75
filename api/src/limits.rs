//! Message-size limits reported as `RESOURCE_EXHAUSTED`, and status messages kept short.
//!
//! tonic rejects an over-limit message before any handler runs, with `OUT_OF_RANGE` ("decoded
//! message length too large"). A size limit is a resource limit, and clients treat the two
//! codes differently, so this response layer rewrites exactly that status.
//!
//! The same layer bounds `grpc-message`: every message quotes client input only clipped
//! ([`ledger::clip`]), and this is the backstop should one ever not, since a client refuses
//! response headers beyond a few KiB and would report that instead of the status.

/// The gRPC code of `OUT_OF_RANGE`.
const OUT_OF_RANGE: &str = "11";
/// The gRPC code of `RESOURCE_EXHAUSTED`.
const RESOURCE_EXHAUSTED: &str = "8";

/// Longest `grpc-message` header sent, percent-encoded bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 1024;

/// Rewrites tonic's over-limit `OUT_OF_RANGE` to `RESOURCE_EXHAUSTED`, and cuts a
/// `grpc-message` longer than [`MAX_STATUS_MESSAGE_BYTES`]; everything else passes.
pub fn oversize_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    if let Some(clipped) = response.headers().get("grpc-message").and_then(|v| clip_encoded(v.as_bytes())) {
        response.headers_mut().insert("grpc-message", clipped);
    }
    let headers = response.headers();
    let is_oversize = headers.get("grpc-status").is_some_and(|v| v == OUT_OF_RANGE)
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("message%20length%20too%20large") || m.contains("message length too large"));
    if is_oversize {
        response.headers_mut().insert("grpc-status", http::HeaderValue::from_static(RESOURCE_EXHAUSTED));
    }
    response
}

/// A percent-encoded `grpc-message` cut to [`MAX_STATUS_MESSAGE_BYTES`] with an encoded
/// "… (clipped)" appended, never inside an escape or a UTF-8 character; `None` when it is
/// short enough.
fn clip_encoded(value: &[u8]) -> Option<http::HeaderValue> {
    const SUFFIX: &[u8] = b"%E2%80%A6%20(clipped)";
    if value.len() <= MAX_STATUS_MESSAGE_BYTES {
        return None;
    }
    let mut end = MAX_STATUS_MESSAGE_BYTES - SUFFIX.len();
    // Not inside a `%XX` escape.
    if let Some(percent) = value[end.saturating_sub(2)..end].iter().rposition(|b| *b == b'%') {
        end = end.saturating_sub(2) + percent;
    }
    // Not before a UTF-8 continuation byte (`%80` to `%BF`): back to the character's start.
    let continuation = |at: usize| {
        value.get(at) == Some(&b'%')
            && value
                .get(at + 1..at + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .is_some_and(|byte| (0x80..0xC0).contains(&byte))
    };
    while end >= 3 && continuation(end) {
        end -= 3;
    }
    let mut clipped = value[..end].to_vec();
    clipped.extend_from_slice(SUFFIX);
    http::HeaderValue::from_bytes(&clipped).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(message: &str) -> http::Response<()> {
        let status = tonic::Status::not_found(message.to_owned());
        let mut response = http::Response::new(());
        status.add_header(response.headers_mut()).unwrap();
        response
    }

    fn decoded(response: &http::Response<()>) -> String {
        tonic::Status::from_header_map(response.headers()).unwrap().message().to_owned()
    }

    #[test]
    fn long_status_messages_are_cut_on_a_character_boundary() {
        for message in ["a".repeat(100_000), "é".repeat(50_000), "a b".repeat(30_000), "€".repeat(40_000)] {
            let response = oversize_is_resource_exhausted(response(&message));
            let header = response.headers().get("grpc-message").unwrap();
            assert!(header.len() <= MAX_STATUS_MESSAGE_BYTES, "{}", header.len());
            let text = decoded(&response);
            assert!(text.ends_with("… (clipped)"), "{text}");
            assert!(message.starts_with(text.trim_end_matches("… (clipped)")), "{text}");
        }
        let short = oversize_is_resource_exhausted(response("no release \"r1\""));
        assert_eq!(decoded(&short), "no release \"r1\"");
    }
}
