//! Risk score: 0–100, deterministic from the log, every factor shown with its points.
//!
//! | factor | points |
//! |---|---|
//! | `recentFailures` | 25 per `DeploymentFailed` / `RollbackTriggered` of a shipped module in the same environment in the 24 h before evaluation (normative) |
//! | `firstRelease` | 10 when a shipped module was never published to the environment |
//! | `coverage` | 1 per point of the lowest module coverage below 90 % (max 20); 15 when a module has no coverage evidence |
//! | `cveSeverity` | highest CVE of the latest scans: Low 5, Medium 10, High 20, Critical 40; 10 when a module has no scan |
//! | `testFailures` | 10 when any suite of a shipped module reported failures (even if it passed later) |
//! | `moduleCount` | 3 per module beyond the first (max 15) |
//! | `freezeOverride` | 15 when a freeze override is recorded for the release |
//!
//! The sum is capped at 100. A first release of one module with full coverage, no CVE and no
//! history scores 10.

use crate::decision::RiskFactor;
use crate::policy::Severity;
use crate::state::{ReleaseState, SignalEvidence, TenantMeta};

/// The window of `recentFailures`.
pub const RECENT_WINDOW_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Points per recent failure or rollback (normative: at least 25).
pub const POINTS_PER_RECENT_FAILURE: u32 = 25;

/// Computes the score at `at` (ns), its factors, and the seqs it used.
pub fn score(meta: &TenantMeta, release: &ReleaseState, at: u64) -> (u32, Vec<RiskFactor>, Vec<u64>) {
    let Some(intent) = &release.intent else { return (0, Vec::new(), Vec::new()) };
    let env = intent.data.environment.as_str();
    let mut evidence = Vec::new();
    let mut factors = Vec::new();

    // recentFailures.
    let since = at.saturating_sub(RECENT_WINDOW_NS);
    let mut failures = 0u32;
    let mut first_release = Vec::new();
    for module in &intent.data.modules {
        let key = crate::state::history_key(&module.name, env);
        // History items are in log order, and `recordedAt` never decreases along a tenant's
        // log (the ledger stamps the later of its clock and the previous entry's), so the
        // window's failures are found by binary search over the key's failures: an evaluation
        // costs the failures in the window, not the window.
        for item in meta.history.failures_between(&key, since, at) {
            failures += 1;
            evidence.push(item.seq);
        }
        if !meta.history.published_by_another(&key, &release.release_id) {
            first_release.push(module.name.as_str());
        }
    }
    factors.push(RiskFactor {
        factor: "recentFailures".into(),
        value: format!("{failures} failures or rollbacks in 24 h"),
        points: failures.saturating_mul(POINTS_PER_RECENT_FAILURE),
    });
    factors.push(RiskFactor {
        factor: "firstRelease".into(),
        value: if first_release.is_empty() { "none".into() } else { first_release.join(", ") },
        points: if first_release.is_empty() { 0 } else { 10 },
    });

    let signals: Vec<_> = release.signals.iter().filter(|s| !release.is_invalidated(s.seq)).collect();
    let ships = |s: &SignalEvidence| {
        let (m, v) = s.module_version();
        intent.data.modules.iter().any(|x| x.name == m && x.version == v)
    };

    // coverage.
    let mut lowest: Option<f64> = None;
    let mut uncovered = Vec::new();
    for module in &intent.data.modules {
        let latest = signals.iter().rev().find_map(|s| match &s.signal {
            SignalEvidence::Coverage(d) if d.module == module.name && d.version == module.version => {
                Some((s.seq, d.percent))
            }
            _ => None,
        });
        match latest {
            Some((seq, p)) => {
                evidence.push(seq);
                lowest = Some(lowest.map_or(p, |l: f64| l.min(p)));
            }
            None => uncovered.push(module.name.as_str()),
        }
    }
    let (value, points) = if !uncovered.is_empty() {
        (format!("no coverage evidence for {}", uncovered.join(", ")), 15)
    } else {
        let l = lowest.unwrap_or(100.0);
        // Saturating float-to-int conversion; the value is within 0..=90 here.
        (format!("lowest {l}%"), if l < 90.0 { (90.0 - l).floor().min(20.0) as u32 } else { 0 })
    };
    factors.push(RiskFactor { factor: "coverage".into(), value, points });

    // cveSeverity.
    let mut worst = Severity::None;
    let mut unscanned = Vec::new();
    for module in &intent.data.modules {
        let latest = signals.iter().rev().find_map(|s| match &s.signal {
            SignalEvidence::Security(d) if d.module == module.name && d.version == module.version => {
                Some((s.seq, d.cve_severity))
            }
            _ => None,
        });
        match latest {
            Some((seq, sev)) => {
                evidence.push(seq);
                worst = worst.max(sev);
            }
            None => unscanned.push(module.name.as_str()),
        }
    }
    let (value, points) = if !unscanned.is_empty() {
        (format!("no scan for {}", unscanned.join(", ")), 10)
    } else {
        let points = match worst {
            Severity::None => 0,
            Severity::Low => 5,
            Severity::Medium => 10,
            Severity::High => 20,
            Severity::Critical => 40,
        };
        (worst.as_str().to_owned(), points)
    };
    factors.push(RiskFactor { factor: "cveSeverity".into(), value, points });

    // testFailures.
    let failed: Vec<u64> = signals
        .iter()
        .filter(|s| matches!(&s.signal, SignalEvidence::Tests { passed: false, .. }) && ships(&s.signal))
        .map(|s| s.seq)
        .collect();
    evidence.extend(&failed);
    factors.push(RiskFactor {
        factor: "testFailures".into(),
        value: format!("{} failing test reports", failed.len()),
        points: if failed.is_empty() { 0 } else { 10 },
    });

    // moduleCount.
    let count = u32::try_from(intent.data.modules.len()).unwrap_or(u32::MAX);
    factors.push(RiskFactor {
        factor: "moduleCount".into(),
        value: format!("{count} modules"),
        points: (count.saturating_sub(1).saturating_mul(3)).min(15),
    });

    // freezeOverride.
    let overrides: Vec<u64> =
        release.overrides.iter().filter(|o| !release.is_invalidated(o.seq)).map(|o| o.seq).collect();
    evidence.extend(&overrides);
    factors.push(RiskFactor {
        factor: "freezeOverride".into(),
        value: format!("{} overrides", overrides.len()),
        points: if overrides.is_empty() { 0 } else { 15 },
    });

    let total = factors.iter().map(|f| f.points).fold(0u32, u32::saturating_add).min(100);
    (total, factors, evidence)
}
