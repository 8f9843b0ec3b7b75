//! What the criterion micro-benches (`benches/append.rs`, `benches/verify.rs`) share beyond the
//! harness's workloads: their configuration.

use std::time::Duration;

use criterion::Criterion;

/// Ten samples, 1 s warm-up, 3 s measurement; command-line flags override.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}
