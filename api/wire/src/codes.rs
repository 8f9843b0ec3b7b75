//! The names of gRPC status codes: the canonical `PERMISSION_DENIED` that clients print and
//! the snake-case `permission_denied` of the server's metric labels, from one table.

use tonic::Code;

/// Every code with its canonical name and its metric label.
const CODES: [(Code, &str, &str); 17] = [
    (Code::Ok, "OK", "ok"),
    (Code::Cancelled, "CANCELLED", "cancelled"),
    (Code::Unknown, "UNKNOWN", "unknown"),
    (Code::InvalidArgument, "INVALID_ARGUMENT", "invalid_argument"),
    (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", "deadline_exceeded"),
    (Code::NotFound, "NOT_FOUND", "not_found"),
    (Code::AlreadyExists, "ALREADY_EXISTS", "already_exists"),
    (Code::PermissionDenied, "PERMISSION_DENIED", "permission_denied"),
    (Code::ResourceExhausted, "RESOURCE_EXHAUSTED", "resource_exhausted"),
    (Code::FailedPrecondition, "FAILED_PRECONDITION", "failed_precondition"),
    (Code::Aborted, "ABORTED", "aborted"),
    (Code::OutOfRange, "OUT_OF_RANGE", "out_of_range"),
    (Code::Unimplemented, "UNIMPLEMENTED", "unimplemented"),
    (Code::Internal, "INTERNAL", "internal"),
    (Code::Unavailable, "UNAVAILABLE", "unavailable"),
    (Code::DataLoss, "DATA_LOSS", "data_loss"),
    (Code::Unauthenticated, "UNAUTHENTICATED", "unauthenticated"),
];

fn entry(code: Code) -> (Code, &'static str, &'static str) {
    // Every tonic code is in the table; UNKNOWN covers any code tonic adds later.
    CODES.iter().copied().find(|(c, _, _)| *c == code).unwrap_or(CODES[2])
}

/// The canonical gRPC name of a status code (`PERMISSION_DENIED`).
pub fn canonical_code(code: Code) -> &'static str {
    entry(code).1
}

/// The metric label of a result: `ok` or the snake-case gRPC code name (a bounded set).
pub fn result_label(code: Code) -> &'static str {
    entry(code).2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_both_names_and_they_agree() {
        for (code, canonical, label) in CODES {
            assert_eq!(Code::from(code as i32), code);
            assert_eq!(canonical_code(code), canonical);
            assert_eq!(result_label(code), label);
            assert_eq!(canonical.to_ascii_lowercase(), label);
        }
        assert_eq!(canonical_code(Code::PermissionDenied), "PERMISSION_DENIED");
    }
}
