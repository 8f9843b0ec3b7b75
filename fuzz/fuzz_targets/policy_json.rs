//! Policy documents (`projections/src/policy.rs`), as a `PolicyUpdated` event's `data` or alone:
//! parsing and validation never panic, and a document that parses survives a JSON round trip
//! unchanged, with the same validation outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use projections::policy::PolicyUpdatedData;
use projections::ReleasePolicy;

fn check(policy: &ReleasePolicy) {
    let valid = policy.validate();
    let again: ReleasePolicy =
        serde_json::from_slice(&serde_json::to_vec(policy).expect("encode")).expect("re-encoded policy parses");
    assert_eq!(&again, policy, "policy round trip");
    assert_eq!(again.validate(), valid);
    for environment in ["prod", "staging", ""] {
        let _ = policy.for_env(environment);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = serde_json::from_slice::<ReleasePolicy>(data) {
        check(&policy);
    }
    if let Ok(updated) = serde_json::from_slice::<PolicyUpdatedData>(data) {
        check(&updated.policy);
    }
});
