//! Latency histograms (microseconds, HdrHistogram) and the figures the reports print.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A histogram of microseconds, 1 µs to 1 h at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Records `elapsed` in microseconds (at least 1; saturating at the top).
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(micros(elapsed).max(1));
}

/// `elapsed` in whole microseconds.
pub fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Adds `from` to `into`.
pub fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Same bounds everywhere, so adding cannot fail; saturate rather than lose samples if it did.
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

/// The percentiles of a latency histogram, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// The slowest.
    pub max: u64,
}

impl LatencySummary {
    /// The summary of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }

    /// `p50 1.2ms  p90 ...` for the table.
    pub fn human(&self) -> String {
        if self.count == 0 {
            return "(no samples)".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, n={})",
            human_us(self.p50),
            human_us(self.p90),
            human_us(self.p99),
            human_us(self.p999),
            human_us(self.max),
            human_us(self.mean.round() as u64),
            self.count
        )
    }
}

/// `count` per second over `seconds` (0 for an empty interval).
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Microseconds as `850µs` (below 10 ms), `12.3ms` (below 10 s) or `12.50s`.
pub fn human_us(us: u64) -> String {
    match us {
        0..=9_999 => format!("{us}µs"),
        10_000..=9_999_999 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// Bytes as `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_units() {
        let mut histogram = new_histogram();
        for us in [100, 200, 300, 400] {
            record(&mut histogram, Duration::from_micros(us));
        }
        record(&mut histogram, Duration::ZERO);
        let summary = LatencySummary::of(&histogram);
        assert_eq!((summary.count, summary.max), (5, 400));
        assert_eq!(summary.p50, 200);
        assert_eq!(LatencySummary::of(&new_histogram()).human(), "(no samples)");
        assert_eq!(
            [human_us(850), human_us(12_345), human_us(1_250_000), human_us(12_500_000)],
            ["850µs", "12.3ms", "1250.0ms", "12.50s"]
        );
        assert_eq!(rate(10, 0.0), 0.0);
    }
}
