//! One environment rule for intents, policies and freezes (issue 15 item 4): an environment an
//! intent may name (`eu/prod`) is one a policy and a freeze may name too, and a name none may
//! use is refused by each with the same reason, storing nothing.

use serde_json::json;
use testkit::gov::*;

const M: &str = "billing";
const V: &str = "1.4.2";

#[test]
fn governance_intent_policy_and_freeze_all_name_eu_prod() {
    let mut scenario = Scenario::new();
    let mut doc = prod_policy(json!({"requiresApproval": false}));
    doc["environments"] = json!({ "eu/prod": doc["environments"]["prod"].clone() });
    scenario
        .run([policy(doc), freeze_oneoff("eu-freeze", &["eu/prod"], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z")]);
    // Inside the window the freeze on eu/prod delays the release...
    scenario.run([intent("r1", "eu/prod", &[(M, V)])].into_iter().chain(evidence("r1", M, V)));
    scenario.must(evaluate("r1").at(ns("2025-06-01T12:00:00Z")));
    scenario.settle();
    assert_eq!(render(&scenario.release("r1")), "Delayed ChangeFreezeActive until 2025-06-02T00:00:00Z risk=10");
    // ...and after it the eu/prod policy (no approval needed) approves one.
    scenario.run([intent("r2", "eu/prod", &[(M, V)])].into_iter().chain(evidence("r2", M, V)));
    scenario.must(evaluate("r2").at(ns("2025-06-03T12:00:00Z")));
    scenario.settle();
    assert_eq!(render(&scenario.release("r2")), "Approved risk=10");
}

#[test]
fn governance_intent_policy_and_freeze_refuse_a_bad_environment_alike() {
    let reason = r#""eu prod" contains ' '; allowed are letters, digits and . _ - + / :"#;
    let mut doc = prod_policy(json!({}));
    doc["environments"] = json!({ "eu prod": doc["environments"]["prod"].clone() });
    let refused = [
        intent("r1", "eu prod", &[(M, V)]),
        policy(doc),
        freeze_oneoff("f", &["eu prod"], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z"),
    ];
    let mut scenario = Scenario::new();
    for event in refused {
        let before = scenario.size();
        let event_type = event.event_type.clone();
        let error = scenario.append(event).expect_err("refused").to_string();
        assert!(error.contains(reason), "{event_type}: {error}");
        assert_eq!(scenario.size(), before, "{event_type}: nothing stored");
    }
}
