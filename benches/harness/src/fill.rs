//! The governance fill: whole releases of catalogue events (intent, test suites, scan, QA
//! approval, evaluation, deployment), for the scale curves and the export bench.

use ledger::{AppendEvent, Envelope, Ledger};

use crate::workload::cores;

/// Events per release of [`governance_fill`]: an intent, 10 test suites, a scan, a QA
/// approval, an evaluation request, and the deployment's start and completion.
pub const RELEASE_EVENTS: u64 = 16;

/// The seed of the key that signs the fill's QA approvals (agent `scale-qa`, role `QA`): not
/// the author of the intents, as separation of duties requires.
const APPROVER_SEED: [u8; 32] = [43; 32];

/// The approver's key, derived once (the fill signs an approval every 16 events).
fn approver() -> &'static ledger::KeyPair {
    static APPROVER: std::sync::OnceLock<ledger::KeyPair> = std::sync::OnceLock::new();
    APPROVER.get_or_init(|| ledger::KeyPair::from_seed(&APPROVER_SEED))
}

/// Registers the fill's agents in `tenant` (`agent` as `scale`, the approver as `scale-qa`
/// with the `QA` role) and sets the fill's policy (a QA approval is required), signed by the
/// data dir's admin key.
pub fn governance_setup(
    ledger: &Ledger,
    tenant: &str,
    admin: &ledger::KeyPair,
    agent: &ledger::KeyPair,
) -> Result<(), ledger::AppendError> {
    let policy = serde_json::json!({"policy": {"version": 1, "default": {"roles": ["QA"]}}});
    let bodies = [
        testkit::register_key_body(tenant, "scale", agent, &[], &[]),
        testkit::register_key_body(tenant, "scale-qa", approver(), &["QA"], &[]),
        testkit::body(tenant, "policy", "PolicyUpdated", "policy-1", "admin", policy),
    ];
    for body in bodies {
        let _ = ledger.append(AppendEvent::new(Envelope::sign(body, admin)))?;
    }
    Ok(())
}

/// Event `n` of the fill: release `n / 16`, whose 16 events are, in order, an intent, 10 test
/// suites, a security scan, a QA approval (signed by `scale-qa`), an evaluation request (the
/// ledger approves: `ReleasePlanned` at the intent, then `ReleaseApproved`), and the
/// deployment's start and completion (`ReleasePublished`). Every release ends published, so
/// none stays active.
pub fn fill_event(tenant: &str, n: u64, agent: &ledger::KeyPair) -> AppendEvent {
    let release = n / RELEASE_EVENTS;
    let module = format!("module-{}", release % 50);
    let version = format!("1.0.{release}");
    let (event_type, data, actor) = match n % RELEASE_EVENTS {
        0 => (
            "ReleaseIntentDeclared",
            serde_json::json!({"environment": "prod", "modules": [{"name": module, "version": version}]}),
            "scale",
        ),
        11 => (
            "SecurityGateStatus",
            serde_json::json!({"module": module, "version": version, "status": "Passed", "cveSeverity": "Low",
                "imageSigned": true, "sbomPresent": true, "licenseCompliant": true}),
            "scale",
        ),
        12 => ("ApprovalGranted", serde_json::json!({"role": "QA", "method": "API", "comment": "fill"}), "scale-qa"),
        13 => ("ReleaseEvaluationRequested", serde_json::json!({}), "scale"),
        14 => ("DeploymentStarted", serde_json::json!({"environment": "prod"}), "scale"),
        15 => ("DeploymentCompleted", serde_json::json!({"environment": "prod"}), "scale"),
        j => (
            "TestsPassed",
            serde_json::json!({"module": module, "version": version, "suite": format!("suite-{j}"),
                "passed": 100, "failed": 0, "notes": "x".repeat(64)}),
            "scale",
        ),
    };
    let body = serde_json::json!({
        "tenant": tenant, "stream": format!("release/r{release}"), "type": event_type,
        "eventId": format!("fill-{n}"), "occurredAt": testkit::OCCURRED_AT, "traceId": format!("trace-{release}"),
        "releaseId": format!("r{release}"), "actor": {"agentId": actor}, "data": data,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    if actor == "scale-qa" {
        AppendEvent::new(Envelope::sign(body, approver()))
    } else {
        AppendEvent::new(Envelope::sign(body, agent))
    }
}

/// Appends fill events `start..start + count` (catalogue events of [`fill_event`], signed
/// by `agent` and the approver, registered in `tenant` by [`governance_setup`]) in batches of
/// 1024, signing and appending on every core.
pub fn governance_fill(
    ledger: &Ledger,
    tenant: &str,
    agent: &ledger::KeyPair,
    start: u64,
    count: u64,
) -> Result<(), ledger::AppendError> {
    const BATCH: u64 = 1024;
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<(), ledger::AppendError> {
        let workers: Vec<_> = (0..cores())
            .map(|_| {
                scope.spawn(|| -> Result<(), ledger::AppendError> {
                    loop {
                        let from = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        if from >= count {
                            return Ok(());
                        }
                        let to = (from + BATCH).min(count);
                        let events = (from..to).map(|i| fill_event(tenant, start + i, agent)).collect();
                        let _ = ledger.append_batch(events)?;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("fill thread panicked")?;
        }
        Ok(())
    })
}
