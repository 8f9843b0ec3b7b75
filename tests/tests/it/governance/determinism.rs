//! Replaying the log reproduces every decision bit for bit: a seeded workload of thousands of
//! events over many releases, with the worker appending its decisions and retries as it goes;
//! then the live state must equal a fold from scratch, every decision and retry in the log must
//! be exactly the bytes its log prefix derives, and a rebuild must equal the live state.

use std::collections::BTreeMap;

use ledger::EventRules;
use projections::catalogue::{Catalogue, GovData, GovEvent};
use projections::fold::FoldInput;
use projections::query;
use projections::state::TenantState;
use projections::{DecisionCheck, EventType};
use testkit::gov::*;

/// Workload events (decisions and retries come on top).
const EVENTS: u64 = 3_200;

#[test]
fn governance_replay_reproduces_every_decision() {
    let mut scenario = Scenario::new();
    // Two inactive releases in memory at most: the others leave memory after every chunk and
    // are read back from the projection store when an entry names them, which must not change
    // a single decision.
    scenario.governor().set_cached_inactive(2);
    let mut workload = Workload::new(0x5EED_2025);
    workload.run(&mut scenario, EVENTS, 40);
    scenario.settle();
    let entries = scenario.entries();
    let bodies: Vec<serde_json::Value> = entries.iter().map(|e| body_of(e).expect("no redactions")).collect();

    // The workload exercised every kind of event and every decision.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for body in &bodies {
        *counts.entry(body["type"].as_str().unwrap()).or_default() += 1;
    }
    let retries = bodies.iter().filter(|b| b["eventId"].as_str().unwrap().starts_with("retry:")).count();
    for event_type in EventType::ALL {
        if *event_type != EventType::EntryRedacted {
            assert!(counts.contains_key(event_type.as_str()), "the workload has no {event_type}: {counts:?}");
        }
    }
    assert!(retries > 0, "no ledger retries: {counts:?}");
    assert!(workload.appended >= 3_000);

    // (a) The live state is the fold of the log from scratch.
    let live = scenario.state();
    let fresh = scenario.fold(None);
    let in_memory = scenario.governor().releases_in_memory(TENANT);
    let active = fresh.releases.values().filter(|r| r.is_active()).count();
    assert!(in_memory <= active + 2, "{in_memory} releases in memory, {active} active");
    assert!(fresh.releases.len() - active >= 20, "too few inactive releases to exercise eviction");
    assert!(live == fresh, "live and rebuilt states differ: {:#?}", diff(&live, &fresh));
    assert_eq!(live.meta.position, entries.len() as u64);

    // (b) Every decision in the log is exactly what its prefix derives: walking the log, the
    // outbox holds the same bytes when the decision comes. A retry request is exactly what some
    // prefix before it owed; it may come after a later entry cancelled it, when that entry was
    // appended while the worker was appending the retry (a race the worker narrows, by
    // appending retries only when caught up, but cannot close).
    let ledger_key = scenario.ledger.ledger_key().key_id().to_hex();
    let mut state = TenantState::new(TENANT);
    let mut decisions = Vec::new();
    let mut retries_owed: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut late_retries = Vec::new();
    for (entry, body) in entries.iter().zip(&bodies) {
        let seq = entry.seq;
        let event_id = body["eventId"].as_str().unwrap();
        let event_type = EventType::parse(body["type"].as_str().unwrap()).unwrap();
        let is_retry = event_id.starts_with("retry:");
        if event_type.is_decision() || is_retry {
            let envelope = entry.envelope().unwrap();
            assert_eq!(envelope.signatures[0].keyid, ledger_key, "seq {seq} is not signed by the ledger key");
            assert_eq!(body["actor"]["agentId"], "release-ledger");
            let payload = String::from_utf8_lossy(&envelope.payload);
            let owed = match state.meta.outbox.get(event_id) {
                Some(owed) => (owed.body().to_owned(), owed.not_before_ns),
                None if is_retry => {
                    late_retries.push(seq);
                    let (body, not_before) =
                        retries_owed.get(event_id).unwrap_or_else(|| panic!("seq {seq}: {event_id} was never owed"));
                    (body.clone(), Some(*not_before))
                }
                None => panic!("seq {seq}: {event_id} is not owed by the log prefix before it"),
            };
            assert!(
                owed.0 == payload,
                "seq {seq}: {event_id} differs from its re-derivation:\n  log     {payload}\n  derived {}",
                owed.0
            );
            if let Some(not_before) = owed.1 {
                assert!(entry.recorded_at >= u64::try_from(not_before).unwrap(), "seq {seq}: retried early");
            }
        }
        if event_type.is_decision() {
            // Evaluated at the trigger's recordedAt, which is also the decision's occurredAt.
            let trigger = body["data"]["trigger"].as_u64().unwrap();
            assert!(trigger < entry.seq);
            let evaluated_at = rfc3339(entries[usize::try_from(trigger).unwrap()].recorded_at);
            assert_eq!(body["data"]["evaluatedAt"], evaluated_at.as_str(), "seq {}", entry.seq);
            assert_eq!(body["occurredAt"], evaluated_at.as_str(), "seq {}", entry.seq);
            decisions.push((entry.seq, body["releaseId"].as_str().unwrap().to_owned(), trigger));
        }
        // The fold's own check of each decision says the same: it is the one derived.
        let check = state.apply(entry);
        assert_eq!(check.is_some(), event_type.is_decision(), "seq {seq}: {check:?}");
        assert!(check.as_ref().is_none_or(DecisionCheck::matches), "seq {seq}: {check:?}");
        for (id, owed) in state.meta.outbox.iter().filter(|(id, _)| id.starts_with("retry:")) {
            retries_owed.insert(id.clone(), (owed.body().to_owned(), owed.not_before_ns.unwrap_or_default()));
        }
    }
    let _ = state.take_dirty();
    assert!(late_retries.len() < retries, "every retry came late: {late_retries:?}");
    assert!(state == fresh, "{:#?}", diff(&state, &fresh));
    let decision_anomalies: Vec<_> = live.meta.anomalies.iter().filter(|a| a.detail.contains("decision")).collect();
    assert!(decision_anomalies.is_empty(), "{decision_anomalies:?}");
    assert!(decisions.len() > 300, "only {} decisions", decisions.len());

    // (b2) The auditor's `verify` folds without timelines, and folds a decision whose bytes
    // are exactly the body it owes without parsing its `data` (`FoldInput::OwnDecision`): every
    // decision of this log takes that path, each such body is one the catalogue accepts (why
    // its `data` need not be read), and the state is the fold's with every `data` parsed, but
    // for the timelines.
    let mut lean = TenantState::new(TENANT).without_timelines();
    let mut own = 0;
    let mut no_load = |_: &str, _: &str| Ok::<_, std::convert::Infallible>(None);
    for entry in &entries {
        let parsed = ledger::ParsedEvent::parse(&entry.envelope().unwrap().payload).unwrap();
        let event_type = EventType::parse(&parsed.header.event_type).unwrap();
        let owed = lean.owed_exactly(&parsed.header, &entry.envelope().unwrap().payload);
        if own == 0 && event_type.is_decision() {
            // Told to fold as its own a decision it does not owe exactly (one byte of the data
            // changed), the fold refuses it rather than trusting the caller.
            let mut altered = entry.clone();
            if let ledger::EntryBody::Present(envelope) = &mut altered.body {
                let at = envelope.payload.len() - 3;
                envelope.payload[at] ^= 1;
            }
            let mut probe = lean.clone();
            let input = FoldInput::OwnDecision { header: &parsed.header, event_type };
            let check = probe.apply_loading_parsed(&altered, input, &mut no_load).unwrap();
            assert!(matches!(check, Some(DecisionCheck::Unreadable { .. })), "{check:?}");
            assert_eq!(probe.meta.anomalies.len(), lean.meta.anomalies.len() + 1);
            assert_eq!(probe.meta.outbox.len(), lean.meta.outbox.len(), "nothing owed was cleared");
        }
        let check = if let Some((owed_type, trigger)) = owed {
            assert_eq!(owed_type, event_type);
            own += 1;
            let event = GovEvent::parse(&parsed).unwrap_or_else(|e| panic!("seq {}: {e}", entry.seq));
            assert_eq!(Catalogue.validate(&parsed), Ok(()), "seq {}", entry.seq);
            assert!(matches!(&event.data, GovData::Decision(d) if d.trigger == trigger), "seq {}", entry.seq);
            let input = FoldInput::OwnDecision { header: &parsed.header, event_type };
            lean.apply_loading_parsed(entry, input, &mut no_load).unwrap()
        } else {
            let event = GovEvent::parse(&parsed).unwrap();
            lean.apply_loading_parsed(entry, FoldInput::Event(&event), &mut no_load).unwrap()
        };
        assert_eq!(check.is_some(), event_type.is_decision(), "seq {}: {check:?}", entry.seq);
        assert!(check.as_ref().is_none_or(DecisionCheck::matches), "seq {}: {check:?}", entry.seq);
    }
    assert_eq!(own, decisions.len(), "every decision of a clean log is owed exactly when it comes");
    let _ = lean.take_dirty();
    let mut with_timelines = fresh.clone();
    for release in with_timelines.releases.values_mut() {
        release.timeline.clear();
        release.timeline_omitted = 0;
    }
    assert!(lean == with_timelines, "{:#?}", diff(&lean, &with_timelines));

    // The same through the query API, and by folding the prefix through the trigger, for a
    // sample of decisions.
    // (Each of these folds a prefix from scratch, so a sample of ten.)
    for (seq, release, trigger) in decisions.iter().step_by(decisions.len() / 10) {
        let explained = query::explain(&scenario.ledger, &live, release, Some(*seq)).unwrap();
        assert_eq!(explained.reproduced, Some(true), "ExplainDecision of seq {seq}");
        let prefix = scenario.fold(Some(trigger + 1));
        let id = projections::decision::decision_event_id(release, *trigger);
        let payload = &entries[usize::try_from(*seq).unwrap()].envelope().unwrap().payload;
        assert_eq!(prefix.meta.outbox.get(&id).map(|o| o.body().as_bytes()), Some(payload.as_slice()), "seq {seq}");
    }

    // Queries read evicted releases back from the projection store: every summary, and every
    // page of the list, is what the fold from scratch says.
    let governor = scenario.governor();
    for (id, release) in &fresh.releases {
        let summary = governor.with_release(TENANT, id, query::summary).unwrap();
        assert_eq!(summary, Some(Some(query::summary(&fresh, release))), "release {id}");
    }
    assert_eq!(governor.with_release(TENANT, "no-such-release", |_, _| ()).unwrap(), Some(None));
    let mut filter = query::ReleaseFilter { limit: 7, ..query::ReleaseFilter::default() };
    let mut listed = Vec::new();
    loop {
        let (page, next) = governor.list_releases(TENANT, &filter).unwrap().unwrap();
        listed.extend(page);
        match next {
            Some(after) => filter.after = Some(after),
            None => break,
        }
    }
    let expected =
        query::list_releases(&fresh, &query::ReleaseFilter { limit: 1000, ..query::ReleaseFilter::default() });
    assert_eq!(listed, expected.0);

    // (c) A rebuild equals the incremental state.
    assert!(scenario.governor().rebuild(TENANT).unwrap(), "the rebuild differs from the live state");
    assert!(scenario.state() == fresh);
}
