//! The workload: what each release of the tenant is (deterministic in its index), the tenant's
//! policy, and how kit events are signed.

use std::collections::BTreeMap;

use anyhow::Context as _;
use ledger::{AppendEvent, Envelope, KeyPair};
use serde_json::{json, Value};
use testkit::gov::{self, Event, Rng};

use crate::TENANT;

/// Module names: `svc-00` .. `svc-39`.
const MODULES: u64 = 40;

/// Where a release stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub(crate) enum Plan {
    /// Declared, some signals, never evaluated.
    Planned,
    /// Evaluated, no approval yet.
    AwaitingApproval,
    /// Evaluated in `staging-eu` while its freeze is in force (half of them approved too).
    Frozen,
    /// Approved, not deployed.
    Approved,
    /// A failing test suite.
    TestsFailed,
    /// Rejected by QA.
    RejectedByQa,
    /// Deployed.
    Published,
    /// Deployment failed.
    Failed,
    /// Deployed, then rolled back.
    RolledBack,
}

impl Plan {
    /// (plan, weight in 1000).
    const MIX: [(Plan, u64); 9] = [
        (Plan::Planned, 100),
        (Plan::AwaitingApproval, 100),
        (Plan::Frozen, 50),
        (Plan::Approved, 120),
        (Plan::TestsFailed, 60),
        (Plan::RejectedByQa, 20),
        (Plan::Published, 430),
        (Plan::Failed, 40),
        (Plan::RolledBack, 80),
    ];

    fn pick(rng: &mut Rng) -> Self {
        let mut at = rng.below(1000);
        for (plan, weight) in Self::MIX {
            if at < weight {
                return plan;
            }
            at -= weight;
        }
        Plan::Published
    }

    /// The status the fold ends the release at (checked on the board's counts).
    pub(crate) fn status(self) -> &'static str {
        match self {
            Plan::Planned => "Planned",
            Plan::AwaitingApproval | Plan::Frozen => "Delayed",
            Plan::Approved => "Approved",
            Plan::TestsFailed | Plan::RejectedByQa => "Rejected",
            Plan::Published => "Published",
            Plan::Failed => "Failed",
            Plan::RolledBack => "RolledBack",
        }
    }
}

pub(crate) fn release_id(index: u64) -> String {
    format!("rel-{index:06}")
}

pub(crate) fn module_name(index: u64) -> String {
    format!("svc-{index:02}")
}

/// Release `index`: its plan, environment, modules and events (deterministic in `index`).
pub(crate) struct Release {
    pub(crate) plan: Plan,
    pub(crate) environment: &'static str,
    pub(crate) modules: Vec<String>,
    pub(crate) events: Vec<Event>,
}

pub(crate) fn release(index: u64) -> Release {
    let mut rng = Rng::new(0xC0_5013 ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let plan = Plan::pick(&mut rng);
    let environment = match plan {
        Plan::Frozen => "staging-eu",
        _ => match rng.below(100) {
            0..=49 => "prod",
            50..=84 => "staging",
            _ => "dev",
        },
    };
    // The first module skewed towards svc-00 (u² of a uniform u), then up to two others.
    let u = rng.below(1_000_000) as f64 / 1_000_000.0;
    let mut modules = vec![module_name(((u * u) * MODULES as f64) as u64)];
    for _ in 0..rng.below(3) {
        let name = module_name(rng.below(MODULES));
        if !modules.contains(&name) {
            modules.push(name);
        }
    }
    let id = release_id(index);
    let version = format!("1.{index}.0");
    let pairs: Vec<(&str, &str)> = modules.iter().map(|m| (m.as_str(), version.as_str())).collect();
    let mut events = vec![gov::intent(&id, environment, &pairs)];
    for (i, module) in modules.iter().enumerate() {
        if plan == Plan::Planned && i > 0 {
            break;
        }
        if plan == Plan::TestsFailed && i == 0 {
            events.push(gov::tests_failed(&id, module, &version));
        } else {
            events.push(gov::tests_passed(&id, module, &version));
        }
        events.push(gov::coverage(&id, module, &version, 80.0 + rng.below(20) as f64));
        events.push(gov::security(&id, module, &version));
    }
    if plan != Plan::Planned {
        events.push(gov::evaluate(&id));
    }
    match plan {
        Plan::Planned | Plan::AwaitingApproval | Plan::TestsFailed => {}
        Plan::Frozen => {
            if rng.chance(50) {
                events.push(gov::approve(&id, "QA"));
            }
        }
        Plan::Approved => events.push(gov::approve(&id, "QA")),
        Plan::RejectedByQa => events.push(gov::reject(&id, "QA", "exploratory testing found a regression")),
        Plan::Published | Plan::Failed | Plan::RolledBack => {
            events.push(gov::approve(&id, "QA"));
            events.push(gov::deploy_started(&id, environment));
            if plan == Plan::Failed {
                events.push(gov::deploy_failed(&id, environment, "health checks failed"));
            } else {
                events.push(gov::deploy_completed(&id, environment));
            }
            if plan == Plan::RolledBack {
                events.push(gov::rollback(&id, environment, "error rate above the SLO"));
            }
        }
    }
    Release { plan, environment, modules, events }
}

/// The tenant's policy: the kit's baseline rules (one QA approval, tests, coverage >= 80 %, a
/// clean scan, separation of duties, freeze-sensitive) in every environment, approvals that do
/// not expire (so nothing re-evaluates later on a reused data dir).
pub(crate) fn policy_doc() -> Value {
    let mut env = gov::base_env_policy();
    env["approvalTtlSeconds"] = Value::Null;
    let mut dev = env.clone();
    dev["minTestCoverage"] = json!(70.0);
    json!({ "version": 1, "environments": { "prod": env, "staging": env, "staging-eu": env, "dev": dev } })
}

/// Signs kit events as the kit's [`gov::Scenario`] does (same body shape), with the real clock.
pub(crate) struct Signer {
    admin: KeyPair,
    keys: BTreeMap<String, KeyPair>,
}

impl Signer {
    pub(crate) fn new(admin: KeyPair) -> Self {
        let keys = gov::CAST.iter().map(|(agent, _)| ((*agent).to_owned(), gov::key_of(agent))).collect();
        Self { admin, keys }
    }

    pub(crate) fn sign(&self, event: &Event, event_id: &str) -> anyhow::Result<AppendEvent> {
        let now = SystemClockNs::now();
        let mut body = json!({
            "tenant": TENANT,
            "stream": event.release.as_deref().map_or_else(|| "config".to_owned(), |r| format!("release/{r}")),
            "type": event.event_type, "eventId": event_id, "occurredAt": gov::rfc3339(now),
            "actor": { "agentId": event.signer }, "data": event.data,
        });
        if let Some(release) = &event.release {
            body["releaseId"] = release.as_str().into();
            body["traceId"] = format!("trace-{release}").into();
        }
        let key = if event.signer == gov::ADMIN {
            &self.admin
        } else {
            self.keys.get(&event.signer).with_context(|| format!("no key for {}", event.signer))?
        };
        Ok(AppendEvent::new(Envelope::sign(serde_json::to_vec(&body)?, key)))
    }
}

/// The wall clock, as the ledger reads it.
pub(crate) struct SystemClockNs;

impl SystemClockNs {
    pub(crate) fn now() -> u64 {
        ledger::Clock::now_ns(&ledger::SystemClock)
    }
}
