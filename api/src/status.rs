//! Ledger errors as gRPC statuses: precise codes, messages that say what to fix.

use ledger::{AppendError, ErrorKind, ReadError};
use tonic::{Code, Status};

/// The gRPC code of an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::NotFound => Code::NotFound,
        _ => Code::Internal,
    }
}

/// A tenant named in a request: `INVALID_ARGUMENT` when it is not a valid tenant id.
pub(crate) fn check_tenant(tenant: &str) -> Result<(), Status> {
    ledger::ids::TenantId::check(tenant).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A span per RPC following the OpenTelemetry RPC semantic conventions: `service` is the full
/// gRPC service name (`release_ledger.v1.Ledger`). It declares every domain field any service
/// records; a field a service never records stays empty and is not exported.
pub(crate) fn rpc_span(service: &'static str, method: &'static str) -> tracing::Span {
    use tracing::field::Empty;
    tracing::info_span!(
        "rpc",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        tenant = Empty,
        eventType = Empty,
        agentId = Empty,
        seq = Empty,
        releaseId = Empty,
        traceId = Empty,
        status = Empty,
        reasons = Empty,
        table = Empty,
        fromSeq = Empty,
        toSeq = Empty,
    )
}

/// Runs one RPC's `work` inside its `span` and records the gRPC status code there (the
/// `rpc.grpc.status_code` field every RPC span declares). The span's parent is the caller's
/// trace context, when the request carried one ([`crate::propagation`]).
pub(crate) async fn in_rpc_span<T>(
    span: &tracing::Span,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    use tracing::Instrument as _;
    crate::propagation::adopt_caller_context(span);
    let result = work.instrument(span.clone()).await;
    let code = result.as_ref().map(|_| Code::Ok).unwrap_or_else(Status::code);
    span.record("rpc.grpc.status_code", code as i32);
    result
}

/// How long a client should wait before retrying an append refused because the queue was
/// full, sent as gRPC's retry pushback ([`ledger_wire::PUSHBACK`], gRFC A6).
pub const OVERLOADED_PUSHBACK_MS: &str = "100";

/// An append rejection. A full append queue carries the retry pushback: the only refusal that
/// a retry of the same bytes can turn into a success without anything else changing.
pub fn append_status(error: &AppendError) -> Status {
    let mut status = Status::new(code(error.kind()), error.to_string());
    if let AppendError::NotLeader { leader: Some(address) } = error {
        if let Ok(value) = tonic::metadata::MetadataValue::try_from(address.as_str()) {
            status.metadata_mut().insert(crate::cluster::forward::LEADER_METADATA, value);
        }
    }
    if matches!(error, AppendError::Overloaded) {
        status
            .metadata_mut()
            .insert(ledger_wire::PUSHBACK, tonic::metadata::MetadataValue::from_static(OVERLOADED_PUSHBACK_MS));
    }
    status
}

/// A read failure; reading past the end is `OUT_OF_RANGE`.
pub fn read_status(error: &ReadError) -> Status {
    match error {
        ReadError::OutOfRange(_) => Status::out_of_range(error.to_string()),
        other => Status::new(code(other.kind()), other.to_string()),
    }
}

pub use ledger_wire::result_label;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_queue_asks_for_a_retry() {
        let status = append_status(&AppendError::Overloaded);
        assert_eq!(status.code(), Code::ResourceExhausted);
        let pushback = status.metadata().get(ledger_wire::PUSHBACK).unwrap();
        assert_eq!(pushback.to_str().unwrap(), OVERLOADED_PUSHBACK_MS);
        assert!(ledger_client::retry::retry_delay(&status, std::time::Duration::from_secs(1)).is_some());
        let full = append_status(&AppendError::DiskFull { free: 1, reserve: 2 });
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(full.metadata().get(ledger_wire::PUSHBACK).is_none());
        assert!(ledger_client::retry::retry_delay(&full, std::time::Duration::from_secs(1)).is_none());
    }
}
