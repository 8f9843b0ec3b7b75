//! Message-size limits reported as `RESOURCE_EXHAUSTED`.
//!
//! tonic rejects an over-limit message before any handler runs, with `OUT_OF_RANGE` ("decoded
//! message length too large"). A size limit is a resource limit, and clients treat the two
//! codes differently, so this response layer rewrites exactly that status.

/// The gRPC code of `OUT_OF_RANGE`.
const OUT_OF_RANGE: &str = "11";
/// The gRPC code of `RESOURCE_EXHAUSTED`.
const RESOURCE_EXHAUSTED: &str = "8";

/// Rewrites tonic's over-limit `OUT_OF_RANGE` to `RESOURCE_EXHAUSTED`; everything else passes.
pub fn oversize_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
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
