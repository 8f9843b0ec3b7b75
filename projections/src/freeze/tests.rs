//! Tests of freeze windows.
#![allow(clippy::unwrap_used)]

use super::*;

/// A Wednesday; the default anchor is local midnight of this date.
const DECLARED: &str = "2025-01-01T09:00:00Z";
const DAY: u64 = 86_400;

fn ns(text: &str) -> i64 {
    parse_rfc3339_ns(text).unwrap()
}

fn one_off(id: &str, environments: &[&str], from: &str, to: &str) -> ChangeFreezeDeclaredData {
    ChangeFreezeDeclaredData {
        freeze_id: id.to_owned(),
        environments: environments.iter().map(|name| (*name).to_owned()).collect(),
        reason: "release train".to_owned(),
        from: Some(from.to_owned()),
        to: Some(to.to_owned()),
        recurrence: None,
    }
}

fn recurring(id: &str, rrule: Option<&str>, cron: Option<&str>, duration: u64, tz: &str) -> ChangeFreezeDeclaredData {
    ChangeFreezeDeclaredData {
        freeze_id: id.to_owned(),
        environments: Vec::new(),
        reason: String::new(),
        from: None,
        to: None,
        recurrence: Some(Recurrence {
            rrule: rrule.map(str::to_owned),
            cron: cron.map(str::to_owned),
            duration_seconds: duration,
            time_zone: tz.to_owned(),
            start: None,
        }),
    }
}

fn compile(data: ChangeFreezeDeclaredData) -> Freeze {
    Freeze::compile(data, DECLARED).unwrap()
}

/// The window covering `at`, formatted, so that failures read as instants.
fn window(freeze: &Freeze, at: &str) -> Option<(String, String)> {
    freeze.window_at(ns(at)).map(|(start, end)| (format_ns(start), format_ns(end)))
}

fn span(start: &str, end: &str) -> Option<(String, String)> {
    Some((start.to_owned(), end.to_owned()))
}

fn until(freezes: &[&Freeze], environment: &str, at: &str) -> Option<(String, Vec<String>)> {
    frozen_until(freezes.iter().copied(), environment, ns(at)).map(|(end, ids)| (format_ns(end), ids))
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn recurrence(data: &mut ChangeFreezeDeclaredData) -> &mut Recurrence {
    data.recurrence.as_mut().unwrap()
}

fn compile_error(data: ChangeFreezeDeclaredData) -> String {
    Freeze::compile(data, DECLARED).unwrap_err()
}

#[test]
fn one_off_window_is_half_open() {
    let freeze = compile(one_off("hold", &[], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00+02:00"));
    let expected = span("2025-06-01T00:00:00Z", "2025-06-01T22:00:00Z");
    assert_eq!(window(&freeze, "2025-05-31T23:59:59.999999999Z"), None);
    assert_eq!(window(&freeze, "2025-06-01T00:00:00Z"), expected);
    assert_eq!(window(&freeze, "2025-06-01T12:00:00Z"), expected);
    assert_eq!(window(&freeze, "2025-06-01T21:59:59.999999999Z"), expected);
    assert_eq!(window(&freeze, "2025-06-01T22:00:00Z"), None);
    assert_eq!(window(&freeze, "2025-06-03T00:00:00Z"), None);
}

#[test]
fn environments_scope_a_freeze_and_empty_means_all() {
    let scoped = compile(one_off("prod-hold", &["prod", "prod-eu"], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z"));
    assert!(scoped.applies_to("prod"));
    assert!(scoped.applies_to("prod-eu"));
    assert!(!scoped.applies_to("staging"));
    assert!(!scoped.applies_to("pro"));
    assert_eq!(
        until(&[&scoped], "prod", "2025-06-01T06:00:00Z"),
        Some(("2025-06-02T00:00:00Z".to_owned(), ids(&["prod-hold"])))
    );
    assert_eq!(until(&[&scoped], "staging", "2025-06-01T06:00:00Z"), None);

    let global = compile(one_off("all-hold", &[], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z"));
    assert!(global.applies_to("prod"));
    assert!(global.applies_to("anything-at-all"));
    assert_eq!(
        until(&[&global], "staging", "2025-06-01T06:00:00Z"),
        Some(("2025-06-02T00:00:00Z".to_owned(), ids(&["all-hold"])))
    );
}

/// Every Saturday and Sunday in Europe/Berlin, 86 400 s from local midnight, across both DST
/// changes of 2025 (spring forward 2025-03-30, fall back 2025-10-26).
fn check_berlin_weekends(weekends: &Freeze) {
    let frozen = |at: &str| until(&[weekends], "prod", at);
    let chained = |end: &str| Some((end.to_owned(), ids(&["weekends"])));

    // Saturday 2025-03-08 00:30 CET is frozen; Friday 23:30 CET is not.
    assert_eq!(window(weekends, "2025-03-07T23:30:00Z"), span("2025-03-07T23:00:00Z", "2025-03-08T23:00:00Z"));
    assert_eq!(window(weekends, "2025-03-07T22:30:00Z"), None);
    assert_eq!(frozen("2025-03-07T22:30:00Z"), None);
    // An ordinary weekend chains into one window ending Monday 00:00 CET.
    assert_eq!(frozen("2025-03-08T12:00:00Z"), chained("2025-03-09T23:00:00Z"));

    // Spring forward: Saturday 00:00 CET, Sunday 00:00 CET, each 24 absolute hours, so the
    // chain ends on Monday at 01:00 CEST, not at 00:00.
    assert_eq!(window(weekends, "2025-03-29T12:00:00Z"), span("2025-03-28T23:00:00Z", "2025-03-29T23:00:00Z"));
    assert_eq!(window(weekends, "2025-03-30T12:00:00Z"), span("2025-03-29T23:00:00Z", "2025-03-30T23:00:00Z"));
    assert_eq!(frozen("2025-03-28T23:00:00Z"), chained("2025-03-30T23:00:00Z"));
    assert_eq!(window(weekends, "2025-03-30T22:30:00Z"), span("2025-03-29T23:00:00Z", "2025-03-30T23:00:00Z"));
    assert_eq!(window(weekends, "2025-03-30T23:00:00Z"), None);

    // After the switch: Saturday 00:00 CEST, and the chain ends Monday 00:00 CEST.
    assert_eq!(window(weekends, "2025-04-05T10:00:00Z"), span("2025-04-04T22:00:00Z", "2025-04-05T22:00:00Z"));
    assert_eq!(window(weekends, "2025-04-04T21:59:59Z"), None);
    assert_eq!(frozen("2025-04-05T10:00:00Z"), chained("2025-04-06T22:00:00Z"));

    // Fall back: Saturday and Sunday 00:00 CEST; Sunday is 25 local hours long, so its window
    // ends at Sunday 23:00 CET and the last local hour of Sunday is not frozen.
    assert_eq!(window(weekends, "2025-10-25T10:00:00Z"), span("2025-10-24T22:00:00Z", "2025-10-25T22:00:00Z"));
    assert_eq!(window(weekends, "2025-10-26T10:00:00Z"), span("2025-10-25T22:00:00Z", "2025-10-26T22:00:00Z"));
    assert_eq!(frozen("2025-10-25T10:00:00Z"), chained("2025-10-26T22:00:00Z"));
    assert_eq!(window(weekends, "2025-10-26T22:30:00Z"), None);

    // The next weekend is back to Monday 00:00 CET.
    assert_eq!(window(weekends, "2025-11-01T00:00:00Z"), span("2025-10-31T23:00:00Z", "2025-11-01T23:00:00Z"));
    assert_eq!(frozen("2025-11-01T00:00:00Z"), chained("2025-11-02T23:00:00Z"));
}

#[test]
fn berlin_weekends_by_rrule() {
    check_berlin_weekends(&compile(recurring("weekends", Some("FREQ=WEEKLY;BYDAY=SA,SU"), None, DAY, "Europe/Berlin")));
    // The "RRULE:" prefix is accepted.
    check_berlin_weekends(&compile(recurring(
        "weekends",
        Some("RRULE:FREQ=WEEKLY;BYDAY=SA,SU"),
        None,
        DAY,
        "Europe/Berlin",
    )));
}

#[test]
fn berlin_weekends_by_cron() {
    check_berlin_weekends(&compile(recurring("weekends", None, Some("0 0 * * SAT,SUN"), DAY, "Europe/Berlin")));
}

#[test]
fn new_york_nightly_window_is_eight_absolute_hours_across_fall_back() {
    let by_cron = compile(recurring("nightly", None, Some("0 22 * * *"), 8 * 3600, "America/New_York"));
    let by_rrule = compile(recurring(
        "nightly",
        Some("FREQ=DAILY;BYHOUR=22;BYMINUTE=0;BYSECOND=0"),
        None,
        8 * 3600,
        "America/New_York",
    ));
    for nightly in [&by_cron, &by_rrule] {
        // Saturday 2025-11-01 22:00 EDT = 02:00Z; eight absolute hours later is 10:00Z, which
        // is 05:00 EST on the clock: seven wall-clock hours.
        let (start, end) = nightly.window_at(ns("2025-11-02T05:00:00Z")).unwrap();
        assert_eq!((format_ns(start), format_ns(end)), ("2025-11-02T02:00:00Z".into(), "2025-11-02T10:00:00Z".into()));
        assert_eq!(end - start, 8 * 3600 * NS_PER_SECOND);
        assert_eq!(window(nightly, "2025-11-02T09:59:59Z"), span("2025-11-02T02:00:00Z", "2025-11-02T10:00:00Z"));
        assert_eq!(window(nightly, "2025-11-02T10:00:00Z"), None);
        // Sunday 22:00 EST = 03:00Z.
        assert_eq!(window(nightly, "2025-11-03T03:00:00Z"), span("2025-11-03T03:00:00Z", "2025-11-03T11:00:00Z"));
        assert_eq!(window(nightly, "2025-11-03T02:59:59Z"), None);
    }
}

#[test]
fn kolkata_half_hour_offset_window_crosses_midnight_utc() {
    let by_cron = compile(recurring("early", None, Some("0 5 * * *"), 3600, "Asia/Kolkata"));
    let by_rrule = compile(recurring("early", Some("FREQ=DAILY;BYHOUR=5"), None, 3600, "Asia/Kolkata"));
    for early in [&by_cron, &by_rrule] {
        // 05:00 IST (+05:30) is 23:30Z the day before.
        assert_eq!(window(early, "2025-06-01T23:29:59Z"), None);
        assert_eq!(window(early, "2025-06-01T23:30:00Z"), span("2025-06-01T23:30:00Z", "2025-06-02T00:30:00Z"));
        assert_eq!(window(early, "2025-06-02T00:15:00Z"), span("2025-06-01T23:30:00Z", "2025-06-02T00:30:00Z"));
        assert_eq!(window(early, "2025-06-02T00:30:00Z"), None);
    }
}

#[test]
fn starts_in_a_dst_gap_follow_each_library() {
    // 02:30 does not exist in Berlin on 2025-03-30.
    let by_rrule = compile(recurring("gap", Some("FREQ=DAILY;BYHOUR=2;BYMINUTE=30"), None, 1800, "Europe/Berlin"));
    let by_cron = compile(recurring("gap", None, Some("30 2 * * *"), 1800, "Europe/Berlin"));
    // rrule reads the time with the offset before the gap: 03:30 CEST.
    assert_eq!(window(&by_rrule, "2025-03-30T01:45:00Z"), span("2025-03-30T01:30:00Z", "2025-03-30T02:00:00Z"));
    assert_eq!(window(&by_rrule, "2025-03-30T01:15:00Z"), None);
    // croner runs a fixed-time job at the first instant after the gap: 03:00 CEST.
    assert_eq!(window(&by_cron, "2025-03-30T01:15:00Z"), span("2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z"));
    // Either way the day before and after are ordinary.
    for gap in [&by_rrule, &by_cron] {
        assert_eq!(window(gap, "2025-03-29T01:35:00Z"), span("2025-03-29T01:30:00Z", "2025-03-29T02:00:00Z"));
        assert_eq!(window(gap, "2025-03-31T00:35:00Z"), span("2025-03-31T00:30:00Z", "2025-03-31T01:00:00Z"));
    }
}

#[test]
fn starts_in_a_dst_fold_happen_once_at_the_earlier_instance() {
    // 01:30 happens twice in New York on 2025-11-02: 05:30Z (EDT) and 06:30Z (EST).
    let by_rrule = compile(recurring("fold", Some("FREQ=DAILY;BYHOUR=1;BYMINUTE=30"), None, 1800, "America/New_York"));
    let by_cron = compile(recurring("fold", None, Some("30 1 * * *"), 1800, "America/New_York"));
    // An anchor in the fold is its earlier instance too, so the first start is not lost.
    let anchored_in_fold = |mut data: ChangeFreezeDeclaredData| {
        recurrence(&mut data).start = Some("2025-11-02T01:30:00".to_owned());
        compile(data)
    };
    let by_rrule_anchored = anchored_in_fold(recurring("fold", Some("FREQ=DAILY"), None, 1800, "America/New_York"));
    let by_cron_anchored = anchored_in_fold(recurring("fold", None, Some("30 1 * * *"), 1800, "America/New_York"));
    for fold in [&by_rrule, &by_cron, &by_rrule_anchored, &by_cron_anchored] {
        assert_eq!(window(fold, "2025-11-02T05:45:00Z"), span("2025-11-02T05:30:00Z", "2025-11-02T06:00:00Z"));
        assert_eq!(window(fold, "2025-11-02T06:45:00Z"), None);
        assert_eq!(window(fold, "2025-11-03T06:45:00Z"), span("2025-11-03T06:30:00Z", "2025-11-03T07:00:00Z"));
    }
}

#[test]
fn starts_in_a_half_hour_dst_gap_are_found_out_of_order() {
    // Lord Howe Island moves from +10:30 to +11:00 at 02:00 on 2025-10-05; 02:00–02:30 does
    // not exist. 02:20 becomes 02:50 (15:50Z) and is yielded before 02:35 (15:35Z).
    let freeze =
        compile(recurring("gap", Some("FREQ=DAILY;BYHOUR=2;BYMINUTE=20,35"), None, 600, "Australia/Lord_Howe"));
    assert_eq!(window(&freeze, "2025-10-04T15:40:00Z"), span("2025-10-04T15:35:00Z", "2025-10-04T15:45:00Z"));
    assert_eq!(window(&freeze, "2025-10-04T15:55:00Z"), span("2025-10-04T15:50:00Z", "2025-10-04T16:00:00Z"));
    assert_eq!(window(&freeze, "2025-10-04T15:47:00Z"), None);
}

#[test]
fn overlapping_occurrences_report_the_one_ending_last() {
    // Hourly starts, two hours each: at 10:30 the 09:00 and the 10:00 windows both cover.
    let by_cron = compile(recurring("hourly", None, Some("0 * * * *"), 7200, "UTC"));
    let by_rrule = compile(recurring("hourly", Some("FREQ=HOURLY;BYMINUTE=0;BYSECOND=0"), None, 7200, "UTC"));
    for hourly in [&by_cron, &by_rrule] {
        assert_eq!(window(hourly, "2025-06-01T10:30:00Z"), span("2025-06-01T10:00:00Z", "2025-06-01T12:00:00Z"));
        assert_eq!(window(hourly, "2025-06-01T10:00:00Z"), span("2025-06-01T10:00:00Z", "2025-06-01T12:00:00Z"));
        assert_eq!(window(hourly, "2025-06-01T09:59:59Z"), span("2025-06-01T09:00:00Z", "2025-06-01T11:00:00Z"));
    }
}

#[test]
fn an_anchor_in_a_dst_gap_keeps_its_written_time_of_day() {
    // 02:30 does not exist in Berlin on 2025-03-30: the first start is read with the offset
    // before the gap (03:30 CEST = 01:30Z), but the rule still means 02:30 every day.
    let mut data = recurring("gap", Some("FREQ=DAILY"), None, 1800, "Europe/Berlin");
    recurrence(&mut data).start = Some("2025-03-30T02:30:00".to_owned());
    let daily = compile(data);
    assert_eq!(window(&daily, "2025-03-30T01:15:00Z"), None);
    assert_eq!(window(&daily, "2025-03-30T01:45:00Z"), span("2025-03-30T01:30:00Z", "2025-03-30T02:00:00Z"));
    assert_eq!(window(&daily, "2025-03-31T00:45:00Z"), span("2025-03-31T00:30:00Z", "2025-03-31T01:00:00Z"));
    // For cron that instant is the earliest start: 03:00 CEST is before it, 04:00 CEST is not.
    let mut data = recurring("gap", None, Some("0 * * * *"), 1800, "Europe/Berlin");
    recurrence(&mut data).start = Some("2025-03-30T02:30:00".to_owned());
    let hourly = compile(data);
    assert_eq!(window(&hourly, "2025-03-30T01:15:00Z"), None);
    assert_eq!(window(&hourly, "2025-03-30T02:15:00Z"), span("2025-03-30T02:00:00Z", "2025-03-30T02:30:00Z"));

    // Chile springs forward at local midnight (2025-09-07 00:00 -04 → 01:00 -03). A weekly
    // freeze declared that Sunday is anchored at that missing midnight and still means Sunday
    // 00:00: the first start the rrule crate can place is the next Sunday, 00:00 -03 = 03:00Z.
    let weekly = Freeze::compile(
        recurring("sundays", Some("FREQ=WEEKLY"), None, 3600, "America/Santiago"),
        "2025-09-07T15:00:00Z",
    )
    .unwrap();
    assert_eq!(window(&weekly, "2025-09-07T04:30:00Z"), None);
    assert_eq!(window(&weekly, "2025-09-14T03:30:00Z"), span("2025-09-14T03:00:00Z", "2025-09-14T04:00:00Z"));
    assert_eq!(window(&weekly, "2025-09-14T04:30:00Z"), None);
}

#[test]
fn overlapping_freezes_chain_and_deny_beats_allow() {
    let weekends = compile(recurring("weekends", Some("FREQ=WEEKLY;BYDAY=SA,SU"), None, DAY, "Europe/Berlin"));
    // Friday 2025-06-06 22:00 CEST until Saturday 14:00 CEST, prod only.
    let train = compile(one_off("train-hold", &["prod"], "2025-06-06T20:00:00Z", "2025-06-07T12:00:00Z"));
    // A long freeze of another environment does not matter to prod.
    let staging = compile(one_off("staging-hold", &["staging"], "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z"));
    let all = [&weekends, &train, &staging];

    // Friday 23:00 CEST: only the one-off covers, but the weekend starts inside it, so the
    // chain runs on to Monday 00:00 CEST and names both.
    assert_eq!(window(&weekends, "2025-06-06T21:00:00Z"), None);
    assert_eq!(
        until(&all, "prod", "2025-06-06T21:00:00Z"),
        Some(("2025-06-08T22:00:00Z".to_owned(), ids(&["train-hold", "weekends"])))
    );
    // Saturday noon: both cover; the later end wins.
    assert_eq!(
        until(&all, "prod", "2025-06-07T10:00:00Z"),
        Some(("2025-06-08T22:00:00Z".to_owned(), ids(&["train-hold", "weekends"])))
    );
    // Sunday: only the weekend is left.
    assert_eq!(
        until(&all, "prod", "2025-06-08T10:00:00Z"),
        Some(("2025-06-08T22:00:00Z".to_owned(), ids(&["weekends"])))
    );
    // Before and after: not frozen, whatever staging says.
    assert_eq!(until(&all, "prod", "2025-06-06T19:59:59Z"), None);
    assert_eq!(until(&all, "prod", "2025-06-08T22:00:00Z"), None);
    // Staging is frozen all month. A weekend nested inside that window neither extends it nor
    // is named; one that covers the instant asked about is.
    assert_eq!(
        until(&all, "staging", "2025-06-06T19:59:59Z"),
        Some(("2025-07-01T00:00:00Z".to_owned(), ids(&["staging-hold"])))
    );
    assert_eq!(
        until(&all, "staging", "2025-06-07T10:00:00Z"),
        Some(("2025-07-01T00:00:00Z".to_owned(), ids(&["staging-hold", "weekends"])))
    );
    // A third environment sees only the weekend.
    assert_eq!(
        until(&all, "dev", "2025-06-07T10:00:00Z"),
        Some(("2025-06-08T22:00:00Z".to_owned(), ids(&["weekends"])))
    );
}

#[test]
fn frozen_until_is_bounded() {
    // Back-to-back minute windows forever: the chain stops after MAX_CHAIN_HOPS windows.
    let every_minute = compile(recurring("minutes", None, Some("* * * * *"), 60, "UTC"));
    let at = ns("2025-06-01T00:00:00Z");
    let hops = i64::try_from(MAX_CHAIN_HOPS).unwrap();
    assert_eq!(frozen_until([&every_minute], "prod", at), Some((at + hops * 60 * NS_PER_SECOND, ids(&["minutes"]))));
    // A two-year one-off window: the chain stops 366 days on.
    let long = compile(one_off("long", &[], "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z"));
    assert_eq!(frozen_until([&long], "prod", at), Some((at + MAX_CHAIN_NS, ids(&["long"]))));
    // A window that ends before the bound is returned as is.
    let short = compile(one_off("short", &[], "2025-01-01T00:00:00Z", "2025-06-02T00:00:00Z"));
    assert_eq!(frozen_until([&short], "prod", at), Some((ns("2025-06-02T00:00:00Z"), ids(&["short"]))));
}

#[test]
fn anchor_defaults_to_local_midnight_of_the_declaration_and_start_overrides_it() {
    // Declared on Saturday 2025-03-08 at 10:00 CET: the weekend rule is anchored at 00:00 that
    // Saturday, so that Saturday is already frozen, and nothing before it is.
    let data = recurring("weekends", Some("FREQ=WEEKLY;BYDAY=SA,SU"), None, DAY, "Europe/Berlin");
    let declared_saturday = Freeze::compile(data.clone(), "2025-03-08T10:00:00+01:00").unwrap();
    assert_eq!(
        window(&declared_saturday, "2025-03-08T09:00:00Z"),
        span("2025-03-07T23:00:00Z", "2025-03-08T23:00:00Z")
    );
    assert_eq!(window(&declared_saturday, "2025-03-02T09:00:00Z"), None);
    // The same instant is still Friday in New York, which is irrelevant: the date is taken in
    // the recurrence's zone. 2025-03-07T23:30Z is Saturday 00:30 in Berlin.
    let declared_late = Freeze::compile(data.clone(), "2025-03-07T18:30:00-05:00").unwrap();
    assert_eq!(window(&declared_late, "2025-03-07T23:45:00Z"), span("2025-03-07T23:00:00Z", "2025-03-08T23:00:00Z"));

    // An explicit start sets DTSTART: the rule's time of day comes from it.
    let mut at_six = data.clone();
    at_six.recurrence.as_mut().unwrap().start = Some("2025-03-01T06:00:00".to_owned());
    let at_six = compile(at_six);
    assert_eq!(window(&at_six, "2025-03-08T04:59:59Z"), None);
    assert_eq!(window(&at_six, "2025-03-08T05:00:00Z"), span("2025-03-08T05:00:00Z", "2025-03-09T05:00:00Z"));
    assert_eq!(window(&at_six, "2025-02-22T12:00:00Z"), None);

    // For cron the start is only the earliest start.
    let mut cron = recurring("weekends", None, Some("0 0 * * SAT,SUN"), DAY, "Europe/Berlin");
    cron.recurrence.as_mut().unwrap().start = Some("2025-03-08T12:00:00".to_owned());
    let cron = compile(cron);
    assert_eq!(window(&cron, "2025-03-08T12:00:00Z"), None);
    assert_eq!(window(&cron, "2025-03-09T12:00:00Z"), span("2025-03-08T23:00:00Z", "2025-03-09T23:00:00Z"));
}

/// Found by the `event_json` fuzz target: the rrule crate panicked ("byte index 1 is not a
/// char boundary") on a non-ASCII weekday, in the catalogue's validation of an append.
#[test]
fn a_non_ascii_rrule_is_refused_not_a_panic() {
    for rule in ["FREQ=WEEKLY;BYDAY=\u{261}E", "FREQ=WEEKLY;BYDAY=SA,\u{e9}"] {
        let err = compile_error(recurring("weekends", Some(rule), None, DAY, "Europe/Berlin"));
        assert!(err.starts_with("recurrence.rrule: "), "{err}");
    }
}

#[test]
fn compile_errors_name_their_field() {
    let weekly = || recurring("weekends", Some("FREQ=WEEKLY;BYDAY=SA,SU"), None, DAY, "Europe/Berlin");
    let with = |change: &dyn Fn(&mut ChangeFreezeDeclaredData)| {
        let mut data = weekly();
        change(&mut data);
        compile_error(data)
    };

    let cases: Vec<(String, &str)> = vec![
        (
            with(&|d| recurrence(d).time_zone = "Mars/Olympus".into()),
            "recurrence.timeZone: \"Mars/Olympus\" is not an IANA time zone",
        ),
        (with(&|d| recurrence(d).cron = Some("0 0 * * SAT".into())), "recurrence.cron: "),
        (with(&|d| recurrence(d).rrule = None), "recurrence.rrule: "),
        (
            with(&|d| recurrence(d).rrule = Some("FREQ=MINUTELY;BYSECOND=0".into())),
            "recurrence.rrule: FREQ=MINUTELY is not allowed",
        ),
        (
            with(&|d| recurrence(d).rrule = Some("FREQ=SECONDLY".into())),
            "recurrence.rrule: FREQ=SECONDLY is not allowed",
        ),
        (with(&|d| recurrence(d).rrule = Some("FREQ=FORTNIGHTLY".into())), "recurrence.rrule: "),
        (
            with(&|d| recurrence(d).rrule = Some("FREQ=DAILY;UNTIL=20250101T000000".into())),
            "recurrence.rrule: UNTIL must be a UTC",
        ),
        (with(&|d| recurrence(d).rrule = Some("FREQ=DAILY;UNTIL=20240101T000000Z".into())), "recurrence.rrule: "),
        (
            with(&|d| recurrence(d).rrule = Some("FREQ=DAILY;COUNT=10001".into())),
            "recurrence.rrule: COUNT=10001 is above",
        ),
        (
            with(&|d| {
                recurrence(d).rrule =
                    Some("FREQ=HOURLY;BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55;BYSECOND=0,30,59".into())
            }),
            "recurrence.rrule: ",
        ),
        (with(&|d| recurrence(d).rrule = Some("FREQ=DAILY\nEXDATE:20250101T000000Z".into())), "recurrence.rrule: "),
        (with(&|d| recurrence(d).rrule = Some("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30".into())), "recurrence.rrule: "),
        (with(&|d| recurrence(d).duration_seconds = 0), "recurrence.durationSeconds: 0 is outside"),
        (with(&|d| recurrence(d).duration_seconds = 31 * DAY + 1), "recurrence.durationSeconds: 2678401 is outside"),
        (with(&|d| recurrence(d).start = Some("2025-03-01 00:00".into())), "recurrence.start: "),
        (with(&|d| recurrence(d).start = Some("2025-03-01T00:00:00Z".into())), "recurrence.start: "),
        (with(&|d| d.freeze_id = "bad id".into()), "freezeId: \"bad id\" contains ' '"),
        (with(&|d| d.freeze_id = String::new()), "freezeId: must not be empty"),
        (with(&|d| d.freeze_id = "x".repeat(129)), "freezeId: longer than 128 bytes"),
        (with(&|d| d.environments = vec!["prod".into(), "eu west".into()]), "environments[1]: "),
        (with(&|d| d.from = Some("2025-06-01T00:00:00Z".into())), "recurrence: cannot be combined"),
    ];
    for (error, expected) in &cases {
        assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
    }

    let mut cron = recurring("c", None, Some("0 0 * *"), DAY, "UTC");
    assert!(compile_error(cron.clone()).starts_with("recurrence.cron: \"0 0 * *\" is not a 5-field cron pattern"));
    cron.recurrence.as_mut().unwrap().cron = Some("0 0 0 * * SAT".into());
    assert!(compile_error(cron.clone()).starts_with("recurrence.cron: "));
    cron.recurrence.as_mut().unwrap().cron = Some("61 0 * * *".into());
    assert!(compile_error(cron.clone()).starts_with("recurrence.cron: "));
    cron.recurrence.as_mut().unwrap().cron = Some("0 0 30 2 *".into());
    assert!(compile_error(cron).starts_with("recurrence.cron: \"0 0 30 2 *\" never matches"));

    // Found by the `projection_rows` fuzz target: a minute, hour or month field of commas only
    // is an empty set that croner searched for up to a second before calling the pattern never
    // matching. Refused first, by name. A comma beside a value ("5,") is a value, and an empty
    // day-of-month beside a day of week matches that weekday: both were accepted, and still are.
    for (pattern, field) in [(", 22 * * *", 1), ("0 , * * *", 2), ("0 0 * ,, *", 4)] {
        let mut cron = recurring("c", None, Some(pattern), DAY, "UTC");
        // The message is the early refusal's, not croner's "never matches" after its search.
        let error = compile_error(cron.clone());
        assert_eq!(error, format!("recurrence.cron: {pattern:?}: field {field} lists no values"));
        for accepted in ["5, 22 * * *", "0 0 , * 1"] {
            cron.recurrence.as_mut().unwrap().cron = Some(accepted.into());
            compile(cron.clone());
        }
    }
    // Found by the `projection_rows` fuzz hour (a stored freeze, evaluated): an empty day field
    // matches no day when the other day field does not widen it (croner ORs the two only when
    // both are restricted, ANDs them after a `+`), and croner searched its year limit (50 ms per
    // pattern) before calling it never matching. Refused first, by name; an empty day field
    // beside a restricted one, ORed, still matches that one's days and is accepted.
    for (pattern, field) in [
        ("0 22 , * *", 3),
        ("0 22 , * ?", 3),
        ("0 22 ,, * ,", 3),
        ("0 0 , * +1", 3),
        ("0 0 * * ,", 5),
        ("0 0 ? * ,,", 5),
        ("0 0 1 * +,", 5),
    ] {
        let cron = recurring("c", None, Some(pattern), DAY, "UTC");
        let started = std::time::Instant::now();
        let error = compile_error(cron);
        assert_eq!(error, format!("recurrence.cron: {pattern:?}: field {field} lists no values, so it matches no day"));
        // Refused before any search (the search took 35 to 55 ms on the test machine).
        assert!(started.elapsed() < std::time::Duration::from_millis(5), "{pattern:?}: {:?}", started.elapsed());
    }
    for accepted in ["0 0 , * 1", "0 0 1 * ,", "0 0 1,15 * *", "0 0 * * 1,"] {
        compile(recurring("c", None, Some(accepted), DAY, "UTC"));
    }

    let mut neither = one_off("x", &[], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z");
    neither.from = None;
    neither.to = None;
    assert!(compile_error(neither.clone()).starts_with("recurrence: a freeze needs either"));
    neither.from = Some("2025-06-01T00:00:00Z".into());
    assert!(compile_error(neither).starts_with("to: required with from"));

    for (from, to, expected) in [
        ("2025-06-02T00:00:00Z", "2025-06-01T00:00:00Z", "to: \"2025-06-01T00:00:00Z\" must be after from"),
        ("2025-06-01T00:00:00Z", "2025-06-01T00:00:00Z", "to: "),
        ("2025-06-01", "2025-06-02T00:00:00Z", "from: \"2025-06-01\" is not RFC 3339"),
        ("2025-06-01T00:00:00Z", "tomorrow", "to: \"tomorrow\" is not RFC 3339"),
        ("2025-06-01T00:00:00Z", "9999-01-01T00:00:00Z", "to: \"9999-01-01T00:00:00Z\" is outside"),
    ] {
        let error = compile_error(one_off("x", &[], from, to));
        assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
    }

    let error = Freeze::compile(weekly(), "yesterday").unwrap_err();
    assert!(error.starts_with("occurredAt: "), "{error}");
}

#[test]
fn freeze_round_trips_through_its_source() {
    let mut data = recurring("weekends", Some("FREQ=WEEKLY;BYDAY=SA,SU"), None, DAY, "Europe/Berlin");
    data.environments = vec!["prod".into()];
    data.reason = "no weekend deploys".into();
    let freezes = [
        compile(data),
        compile(recurring("nightly", None, Some("0 22 * * *"), 8 * 3600, "America/New_York")),
        compile(one_off("hold", &["prod"], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z")),
    ];
    for freeze in &freezes {
        let json = serde_json::to_string(freeze).unwrap();
        let back: Freeze = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, freeze);
        assert_eq!(back.declared_occurred_at(), DECLARED);
        for at in ["2025-03-29T12:00:00Z", "2025-06-01T12:00:00Z", "2025-11-02T05:00:00Z", "2025-11-03T12:00:00Z"] {
            assert_eq!(back.window_at(ns(at)), freeze.window_at(ns(at)), "{} at {at}", freeze.id());
        }
    }
    let json = serde_json::to_value(&freezes[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "data": {
                "freezeId": "weekends",
                "environments": ["prod"],
                "reason": "no weekend deploys",
                "recurrence": { "rrule": "FREQ=WEEKLY;BYDAY=SA,SU", "durationSeconds": 86400, "timeZone": "Europe/Berlin" }
            },
            "declaredOccurredAt": DECLARED
        })
    );
    // Deserializing validates again.
    let bad = json.to_string().replace("Europe/Berlin", "Mars/Olympus");
    let error = serde_json::from_str::<Freeze>(&bad).unwrap_err().to_string();
    assert!(error.contains("recurrence.timeZone"), "{error}");
}

#[test]
fn declared_data_is_camel_case_and_strict() {
    let data: ChangeFreezeDeclaredData = serde_json::from_str(
        r#"{"freezeId":"q4","environments":["prod"],"reason":"year end",
            "recurrence":{"cron":"0 0 * * SAT","durationSeconds":172800,"timeZone":"Europe/Berlin","start":"2025-12-01T00:00:00"}}"#,
    )
    .unwrap();
    assert_eq!(data.recurrence.as_ref().unwrap().duration_seconds, 172_800);
    assert_eq!(data.recurrence.as_ref().unwrap().start.as_deref(), Some("2025-12-01T00:00:00"));
    assert!(serde_json::from_str::<ChangeFreezeDeclaredData>(r#"{"freezeId":"q4","until":"x"}"#).is_err());
    assert!(serde_json::from_str::<Recurrence>(r#"{"durationSeconds":1,"timeZone":"UTC","byday":"SA"}"#).is_err());
    let minimal: ChangeFreezeDeclaredData = serde_json::from_str(r#"{"freezeId":"q4"}"#).unwrap();
    assert!(minimal.environments.is_empty() && minimal.from.is_none());
}

#[test]
fn formats_and_parses_rfc3339() {
    assert_eq!(format_ns(ns("2025-05-25T00:00:00+02:00")), "2025-05-24T22:00:00Z");
    assert_eq!(format_ns(1), "1970-01-01T00:00:00.000000001Z");
    assert_eq!(format_ns(-NS_PER_SECOND / 2), "1969-12-31T23:59:59.500000000Z");
    assert_eq!(ns("2025-05-24T22:00:00.5Z"), ns("2025-05-24T22:00:00Z") + NS_PER_SECOND / 2);
    assert_eq!(ns("1970-01-01T05:30:00+05:30"), 0);
    assert!(parse_rfc3339_ns("2025-05-24 22:00").is_err());
    assert!(parse_rfc3339_ns("2300-01-01T00:00:00Z").is_err());
}

/// Walking a rule from a re-anchored DTSTART must give exactly what walking it from its anchor
/// gives, across DST changes, intervals, week starts and month ends. The reference is the
/// list of starts of one walk from the anchor; every start is probed at its edges.
#[test]
fn reanchored_rrule_walk_matches_walk_from_anchor() {
    let rules = [
        ("FREQ=WEEKLY;BYDAY=SA,SU", DAY, "Europe/Berlin"),
        ("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR;WKST=SU;BYHOUR=1,13", 3 * 3600, "America/New_York"),
        ("FREQ=DAILY;INTERVAL=5;BYHOUR=2;BYMINUTE=30", 7200, "Europe/Berlin"),
        ("FREQ=DAILY;BYMONTH=3,10;BYHOUR=1,2,3;BYMINUTE=0,30", 1800, "America/New_York"),
        ("FREQ=HOURLY;INTERVAL=7;BYMINUTE=15", 3600, "Europe/Berlin"),
        ("FREQ=HOURLY;INTERVAL=5", 600, "America/New_York"),
        ("FREQ=HOURLY;INTERVAL=2;BYHOUR=0,1,2,3;BYMINUTE=0,30", 900, "Europe/Berlin"),
        ("FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=31,-1;BYHOUR=20", 2 * DAY, "Asia/Kolkata"),
        ("FREQ=MONTHLY;BYDAY=-1FR;BYSETPOS=1", 3 * DAY, "Australia/Lord_Howe"),
        ("FREQ=YEARLY;INTERVAL=2;BYWEEKNO=1,52;BYDAY=MO", 5 * DAY, "Europe/Berlin"),
        ("FREQ=YEARLY", 10 * DAY, "UTC"),
        // Counted rules are walked from the anchor; UNTIL ends the walk either way.
        ("FREQ=DAILY;INTERVAL=3;COUNT=50", 3600, "Asia/Kolkata"),
        ("FREQ=WEEKLY;UNTIL=20240601T000000Z;BYDAY=TU", DAY, "Europe/Berlin"),
    ];
    let end = ns("2026-01-01T00:00:00Z");
    for (rule, duration, tz) in rules {
        let mut data = recurring("r", Some(rule), None, duration, tz);
        recurrence(&mut data).start = Some("2023-02-14T07:45:00".to_owned());
        let freeze = compile(data);
        let Schedule::Rrule(schedule) = &freeze.schedule else { panic!("{rule} is not an rrule schedule") };
        let set = rrule::RRuleSet::new(schedule.dtstart).rrule(schedule.rule.clone()).limit();
        let starts: Vec<i64> = (&set)
            .into_iter()
            .map(|start| start.timestamp_nanos_opt().unwrap())
            .take_while(|start| *start < end)
            .collect();
        assert!(starts.len() >= 3, "{rule}: {} starts", starts.len());
        // Around a DST gap the crate yields a day's starts out of order, and two wall times
        // can land on one instant (02:00 and 03:00 both become 03:00).
        let mut starts = starts;
        starts.sort_unstable();
        starts.dedup();
        let duration_ns = i64::try_from(duration).unwrap() * NS_PER_SECOND;
        // `starts` is ascending: the latest start at or before `at`, if it is recent enough.
        let expected = |at: i64| {
            let before = starts.partition_point(|start| *start <= at);
            let latest = before.checked_sub(1).map(|index| starts[index]).filter(|start| at - duration_ns < *start);
            latest.map(|start| (start, start + duration_ns))
        };
        // The edges of every start near a DST change, and of a few hundred others.
        let offset_at = |at: i64| schedule.tz.timestamp_nanos(at).offset().fix();
        let two_days = 2 * 24 * 3600 * NS_PER_SECOND;
        let near_dst_change = |start: i64| offset_at(start - two_days) != offset_at(start + duration_ns + two_days);
        let stride = (starts.len() / 300).max(1);
        let mut probes: Vec<i64> = starts
            .iter()
            .enumerate()
            .filter(|(index, start)| index % stride == 0 || near_dst_change(**start))
            .flat_map(|(_, start)| [start - 1, *start, start + duration_ns - 1, start + duration_ns])
            .collect();
        // And irregular instants in between, in whole minutes.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut at = schedule.dtstart_ns - 4 * 24 * 3600 * NS_PER_SECOND;
        while at < end {
            probes.push(at);
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            at += (i64::try_from(seed >> 33).unwrap() % (3 * 24 * 60) + 1) * 60 * NS_PER_SECOND;
        }
        for at in probes.into_iter().filter(|at| *at < end) {
            assert_eq!(freeze.window_at(at), expected(at), "{rule} at {}", format_ns(at));
        }
    }
}

/// Every window `windows_between` lists is the one `window_at` finds inside it, and every
/// instant `window_at` finds frozen (sampled every 10 minutes) lies in a listed window: the
/// calendar and the gate agree, for one-off, RRULE (across a DST change) and cron freezes.
#[test]
fn the_calendar_lists_exactly_the_windows_the_gate_enforces() {
    let freezes = [
        compile(one_off("once", &[], "2025-03-10T12:00:00Z", "2025-03-12T08:00:00Z")),
        compile(recurring("weekend", Some("FREQ=WEEKLY;BYDAY=SA"), None, 2 * DAY, "Europe/Berlin")),
        compile(recurring("nightly", None, Some("30 22 * * *"), 3 * 3600, "America/New_York")),
        compile(recurring("short", Some("FREQ=DAILY;BYHOUR=9,15"), None, 1800, "UTC")),
    ];
    // Three weeks around Europe's switch to summer time (2025-03-30).
    let (from, to) = (ns("2025-03-09T07:13:00Z"), ns("2025-03-30T07:13:00Z"));
    for freeze in &freezes {
        let windows = freeze.windows_between(from, to, 1000);
        assert!(!windows.is_empty(), "{}: no window in three weeks", freeze.id());
        for pair in windows.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{}: windows out of order: {pair:?}", freeze.id());
        }
        for &(start, end) in &windows {
            assert!(start < to && end > from, "{}: {start}..{end} is outside the range", freeze.id());
            // Where the window does not overlap the next one, window_at agrees inside it.
            let probe = start.max(from);
            let found = freeze.window_at(probe).unwrap_or_else(|| panic!("{}: {probe} not frozen", freeze.id()));
            assert!(found.0 <= probe && probe < found.1, "{}: {found:?} does not cover {probe}", freeze.id());
        }
        let mut at = from;
        while at < to {
            if freeze.window_at(at).is_some() {
                assert!(
                    windows.iter().any(|&(start, end)| start <= at && at < end),
                    "{}: {} is frozen but in no listed window",
                    freeze.id(),
                    format_ns(at)
                );
            }
            at += 600 * 1_000_000_000;
        }
        // The bound holds.
        assert_eq!(freeze.windows_between(from, to, 1).len(), 1, "{}", freeze.id());
    }
    assert!(
        freezes[0].windows_between(ns("2025-03-12T08:00:00Z"), to, 10).is_empty(),
        "an ended one-off lists nothing"
    );
}
