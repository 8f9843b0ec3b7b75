//! Change-freeze windows: the instants at which `ChangeFreezeDeclared` makes a release wait.
//!
//! A freeze is either one-off (`from`/`to`, RFC 3339) or recurring: an RFC 5545 `RRULE` or a
//! five-field cron pattern yields *start* instants in an IANA time zone, and each start opens a
//! window `durationSeconds` long. Windows are half-open, `[start, end)`. Everything here is a pure
//! function of the declaring event and of the instant asked about — no wall clock, no I/O, no
//! global state — so replaying the log answers exactly as it did the first time.
//!
//! # Local starts, absolute durations
//! Starts are local wall-clock times in the recurrence's time zone; the duration is absolute time.
//! A window that spans a DST change is still exactly `durationSeconds` long in UTC, so on the local
//! clock it ends an hour later (spring forward) or an hour earlier (fall back). "Every Saturday and
//! Sunday" written as `FREQ=WEEKLY;BYDAY=SA,SU` with 86 400 s therefore ends at Monday 01:00 local
//! after a 23-hour spring-forward Sunday, and at Sunday 23:00 local on a 25-hour fall-back Sunday:
//! the last local hour of that Sunday is *not* frozen. Declare a longer duration to cover it.
//!
//! # Starts in a DST gap or fold
//! - `rrule` (the `rrule` crate): a start is computed as local midnight of its day plus the elapsed
//!   wall time, so a time in a gap is read with the offset in force before the gap (02:30 on the
//!   spring-forward day in Europe/Berlin starts at 03:30 CEST) and a time in a fold is its first,
//!   earlier instance — RFC 5545 §3.3.5. On a day whose local midnight is itself skipped or
//!   repeated, the crate drops the starts that fall into the gap or fold.
//! - `cron` (the `croner` crate, searched with `chrono_tz::Tz` date-times): when minute and hour
//!   are single values (a "fixed-time" pattern), a start in a gap happens at the first instant after
//!   the gap (02:30 → 03:00 CEST) and a start in a fold happens once, at the earlier instance. When
//!   the minute or hour field is a wildcard, range, list or step, times in a gap are skipped and
//!   times in a fold happen at both instances.
//!
//! # The anchor
//! `recurrence.start` (local `YYYY-MM-DDTHH:MM:SS`) or, without it, local midnight (in the
//! recurrence's time zone) of the date of the declaring event's `occurredAt`. No window starts
//! before the anchor's instant: the first instance of that local time when it is repeated, or the
//! local time read with the offset before the gap when it is skipped (RFC 5545 §3.3.5). For `rrule`
//! the anchor is `DTSTART`, and the rule's implicit parts (time of day; weekday for `WEEKLY`; day
//! of month for `MONTHLY`; month and day for `YEARLY`) are taken from the anchor *as written*, so a
//! midnight anchor still means midnight on a day when midnight does not exist. For `cron` the
//! anchor is only the earliest start.
//!
//! # Bounds
//! - [`Freeze::compile`] rejects `FREQ=SECONDLY`/`MINUTELY`, rules with more than
//!   [`MAX_RRULE_STARTS_PER_PERIOD`] start times per period, `COUNT` above [`MAX_RRULE_COUNT`],
//!   an `UNTIL` that is not UTC, and rules or patterns that never start.
//! - The `rrule` iterator always walks forward from `DTSTART`. So that a query does not cost more
//!   the longer ago a freeze was declared, a rule without `COUNT` is walked from a later `DTSTART`:
//!   the start of the period (year, month, `WKST` week, day or hour) a whole number of `INTERVAL`s
//!   after the anchor's period, a few days before the instant asked about. That yields the same
//!   starts (a test compares both walks); with `COUNT` the walk is at most `COUNT` starts long.
//! - A cron query is one forward search and at most one backward search.
//! - [`frozen_until`] chains at most [`MAX_CHAIN_HOPS`] windows and [`MAX_CHAIN_NS`] of time.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, SecondsFormat, TimeZone,
    Timelike, Weekday,
};
use ledger::clip;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// The longest window a recurrence may open, in seconds (31 days).
pub const MAX_DURATION_SECONDS: u64 = 31 * 24 * 60 * 60;
/// The longest freeze id or environment name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The most start times an `rrule` may yield per period (per day for `DAILY` and coarser, per hour
/// for `HOURLY`), which bounds the cost of a query.
pub const MAX_RRULE_STARTS_PER_PERIOD: usize = 24;
/// The largest `COUNT` an `rrule` may have: a counted rule is walked from its anchor every time.
pub const MAX_RRULE_COUNT: u32 = 10_000;
/// The most windows [`frozen_until`] chains before it gives up and returns where it got to.
pub const MAX_CHAIN_HOPS: usize = 1_000;
/// How far past the instant asked about [`frozen_until`] looks for the end of a freeze (366 days).
pub const MAX_CHAIN_NS: i64 = 366 * SECONDS_PER_DAY * NS_PER_SECOND;

/// A guard on one `rrule` walk. The compile-time limits keep a walk far below it (a few tens of
/// thousands of starts at worst); reaching it anyway fails closed, see [`RruleSchedule::window_at`].
const MAX_RRULE_STEPS: usize = 200_000;
/// How far before the instant asked about a re-anchored `rrule` walk starts. Local and UTC
/// differ by at most a day (Pacific/Apia skipped 2011-12-30 whole), so two days is safe.
const REANCHOR_MARGIN_DAYS: i64 = 2;
/// The rrule crate may yield the starts of one day out of order when some fall into a DST gap, so
/// a walk continues this far past the instant asked about before it stops.
const RRULE_ORDER_SLACK_NS: i64 = SECONDS_PER_DAY * NS_PER_SECOND;

/// `ChangeFreezeDeclared.data`: a one-off or recurring freeze, scoped to environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeFreezeDeclaredData {
    /// Names the freeze for `ChangeFreezeLifted` and `FreezeOverrideGranted`.
    pub freeze_id: String,
    /// The environments the freeze covers; empty means all environments.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Why the freeze exists, for humans.
    #[serde(default)]
    pub reason: String,
    /// Start of a one-off window (RFC 3339, inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End of a one-off window (RFC 3339, exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// A recurring window, instead of `from`/`to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
}

/// When a recurring freeze starts and how long each window lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recurrence {
    /// An RFC 5545 `RRULE` value, e.g. `FREQ=WEEKLY;BYDAY=SA,SU`, with or without `RRULE:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrule: Option<String>,
    /// A standard five-field cron pattern (minute hour day-of-month month day-of-week),
    /// e.g. `0 0 * * SAT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// How long each window lasts, in absolute seconds: 1 ..= 31 days.
    pub duration_seconds: u64,
    /// The IANA time zone the starts are computed in, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Optional local anchor `YYYY-MM-DDTHH:MM:SS`: `DTSTART` for `rrule`, earliest start for
    /// `cron`. Defaults to local midnight of the declaring event's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// A validated freeze, ready to answer "is this instant frozen?".
///
/// It serializes as its source — `{"data": …, "declaredOccurredAt": …}` — and deserializing
/// compiles that source again, so a persisted freeze is checked exactly like a declared one.
/// Two freezes are equal when their sources are.
#[derive(Debug, Clone)]
pub struct Freeze {
    data: ChangeFreezeDeclaredData,
    declared_occurred_at: String,
    schedule: Schedule,
}

#[derive(Debug, Clone)]
enum Schedule {
    OneOff { start_ns: i64, end_ns: i64 },
    Rrule(RruleSchedule),
    Cron(CronSchedule),
}

#[derive(Debug, Clone)]
struct RruleSchedule {
    /// Validated, with every implicit part made explicit from the anchor as written, so that the
    /// rule does not change when it is walked from a later `DTSTART`.
    rule: rrule::RRule,
    dtstart: DateTime<rrule::Tz>,
    dtstart_ns: i64,
    tz: chrono_tz::Tz,
    duration_ns: i64,
}

#[derive(Debug, Clone)]
struct CronSchedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
    anchor_ns: i64,
    duration_ns: i64,
}

/// The persisted form of a [`Freeze`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FreezeSource {
    data: ChangeFreezeDeclaredData,
    declared_occurred_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FreezeSourceRef<'a> {
    data: &'a ChangeFreezeDeclaredData,
    declared_occurred_at: &'a str,
}

impl Freeze {
    /// Validates `data` and compiles it.
    ///
    /// `declared_occurred_at` is the RFC 3339 `occurredAt` of the declaring event; when a
    /// recurrence has no `start`, the anchor is local midnight (in the recurrence's time zone) of
    /// that date. A freeze has either `from` and `to` (`from` < `to`) or a `recurrence` with a
    /// valid IANA `timeZone`, exactly one of `rrule`/`cron` and `durationSeconds` in 1 ..= 31 days.
    /// `freezeId` and environment names are 1..=128 bytes of `[A-Za-z0-9._-]`.
    ///
    /// # Errors
    /// A message that starts with the offending field, e.g.
    /// `recurrence.timeZone: "Mars/Olympus" is not an IANA time zone`.
    pub fn compile(data: ChangeFreezeDeclaredData, declared_occurred_at: &str) -> Result<Freeze, String> {
        check_name("freezeId", &data.freeze_id)?;
        for (index, environment) in data.environments.iter().enumerate() {
            check_name(&format!("environments[{index}]"), environment)?;
        }
        let declared_ns = parse_rfc3339_ns(declared_occurred_at).map_err(|e| format!("occurredAt: {e}"))?;
        let schedule = match (&data.from, &data.to, &data.recurrence) {
            (Some(from), Some(to), None) => compile_one_off(from, to)?,
            (None, None, Some(recurrence)) => compile_recurrence(recurrence, declared_ns)?,
            (None, None, None) => {
                return Err("recurrence: a freeze needs either from and to, or a recurrence".to_owned());
            }
            (_, _, Some(_)) => return Err("recurrence: cannot be combined with from/to".to_owned()),
            (Some(_), None, None) => return Err("to: required with from".to_owned()),
            (None, Some(_), None) => return Err("from: required with to".to_owned()),
        };
        Ok(Freeze { data, declared_occurred_at: declared_occurred_at.to_owned(), schedule })
    }

    /// The freeze id.
    pub fn id(&self) -> &str {
        &self.data.freeze_id
    }

    /// The declaration this freeze was compiled from.
    pub fn data(&self) -> &ChangeFreezeDeclaredData {
        &self.data
    }

    /// The `occurredAt` of the declaring event, as given to [`Freeze::compile`].
    pub fn declared_occurred_at(&self) -> &str {
        &self.declared_occurred_at
    }

    /// Whether the freeze covers this environment (empty environments = all).
    pub fn applies_to(&self, environment: &str) -> bool {
        self.data.environments.is_empty() || self.data.environments.iter().any(|name| name == environment)
    }

    /// The window `(start_ns, end_ns)`, half-open `[start, end)`, that covers `at_ns`
    /// (ns since the Unix epoch, UTC), if any. If several occurrences cover it, the one ending
    /// last. Recurring windows all last the same, so that is the one that started last.
    pub fn window_at(&self, at_ns: i64) -> Option<(i64, i64)> {
        match &self.schedule {
            Schedule::OneOff { start_ns, end_ns } => {
                (*start_ns <= at_ns && at_ns < *end_ns).then_some((*start_ns, *end_ns))
            }
            Schedule::Rrule(schedule) => schedule.window_at(at_ns, true),
            Schedule::Cron(schedule) => schedule.window_at(at_ns),
        }
    }
}

impl PartialEq for Freeze {
    fn eq(&self, other: &Self) -> bool {
        // The schedule is a deterministic function of the source.
        self.data == other.data && self.declared_occurred_at == other.declared_occurred_at
    }
}

impl Eq for Freeze {}

impl Serialize for Freeze {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FreezeSourceRef { data: &self.data, declared_occurred_at: &self.declared_occurred_at }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Freeze {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = FreezeSource::deserialize(deserializer)?;
        Freeze::compile(source.data, &source.declared_occurred_at).map_err(serde::de::Error::custom)
    }
}

/// Deny beats allow: among `freezes` that apply to `environment`, if any covers `at_ns`, returns
/// the first instant `>= at_ns` at which none covers, and the ids of the freezes that covered
/// along the way (sorted, deduplicated). `None` when `at_ns` is not frozen.
///
/// Overlapping or back-to-back windows, of one freeze or of several, are chained into one: the
/// chain hops from `at_ns` to the latest end among the windows covering it, and on from there.
/// "Along the way" means at `at_ns` or at one of those hops, so every freeze covering `at_ns` is
/// named, while a window nested wholly inside another freeze's window is not. The
/// chain is bounded: after [`MAX_CHAIN_HOPS`] windows, or once it reaches `at_ns` +
/// [`MAX_CHAIN_NS`], it returns the instant it got to even though the environment may still be
/// frozen there. That instant is still a sound "retry after": a caller that evaluates again then
/// is told how much longer to wait.
pub fn frozen_until<'a>(
    freezes: impl IntoIterator<Item = &'a Freeze>,
    environment: &str,
    at_ns: i64,
) -> Option<(i64, Vec<String>)> {
    let applicable: Vec<&Freeze> = freezes.into_iter().filter(|freeze| freeze.applies_to(environment)).collect();
    let bound = at_ns.saturating_add(MAX_CHAIN_NS);
    let mut until = at_ns;
    let mut ids = BTreeSet::new();
    for _ in 0..MAX_CHAIN_HOPS {
        let mut latest_end: Option<i64> = None;
        for freeze in &applicable {
            if let Some((_, end)) = freeze.window_at(until) {
                ids.insert(freeze.id());
                latest_end = Some(latest_end.map_or(end, |latest| latest.max(end)));
            }
        }
        // Every covering window ends after `until`, so each hop makes progress.
        match latest_end {
            Some(end) if end > until => until = end.min(bound),
            _ => break,
        }
        if until >= bound {
            break;
        }
    }
    if ids.is_empty() {
        None
    } else {
        Some((until, ids.into_iter().map(str::to_owned).collect()))
    }
}

/// Formats ns since the epoch as RFC 3339 UTC, with nanoseconds only when they are non-zero,
/// e.g. `2025-05-24T22:00:00Z` or `2025-05-24T22:00:00.000000001Z`.
pub fn format_ns(ns: i64) -> String {
    let at = DateTime::from_timestamp_nanos(ns);
    let format = if at.timestamp_subsec_nanos() == 0 { SecondsFormat::Secs } else { SecondsFormat::Nanos };
    at.to_rfc3339_opts(format, true)
}

/// Parses RFC 3339 (any offset) into ns since the epoch.
///
/// # Errors
/// When `text` is not RFC 3339 or lies outside the years 1677 ..= 2262 that ns in an `i64` cover.
pub fn parse_rfc3339_ns(text: &str) -> Result<i64, String> {
    let at = DateTime::parse_from_rfc3339(text).map_err(|e| format!("{:?} is not RFC 3339: {e}", clip(text)))?;
    at.timestamp_nanos_opt()
        .ok_or_else(|| format!("{:?} is outside the representable range (1677 to 2262)", clip(text)))
}

fn check_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("{field}: longer than {MAX_NAME_BYTES} bytes"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{field}: {:?} contains {bad:?}; allowed are A-Z a-z 0-9 . _ -", clip(name)));
    }
    Ok(())
}

fn compile_one_off(from: &str, to: &str) -> Result<Schedule, String> {
    let start_ns = parse_rfc3339_ns(from).map_err(|e| format!("from: {e}"))?;
    let end_ns = parse_rfc3339_ns(to).map_err(|e| format!("to: {e}"))?;
    if start_ns >= end_ns {
        return Err(format!("to: {:?} must be after from {:?}", clip(to), clip(from)));
    }
    Ok(Schedule::OneOff { start_ns, end_ns })
}

fn compile_recurrence(recurrence: &Recurrence, declared_ns: i64) -> Result<Schedule, String> {
    let tz = chrono_tz::Tz::from_str(&recurrence.time_zone)
        .map_err(|_| format!("recurrence.timeZone: {:?} is not an IANA time zone", clip(&recurrence.time_zone)))?;
    let seconds = recurrence.duration_seconds;
    if !(1..=MAX_DURATION_SECONDS).contains(&seconds) {
        return Err(format!("recurrence.durationSeconds: {seconds} is outside 1..={MAX_DURATION_SECONDS} (31 days)"));
    }
    // In range, so neither the conversion nor the product can fail.
    let duration_ns = i64::try_from(seconds).unwrap_or(0).saturating_mul(NS_PER_SECOND);
    let anchor_local = match &recurrence.start {
        Some(start) => parse_local(start).map_err(|e| format!("recurrence.start: {e}"))?,
        None => tz.timestamp_nanos(declared_ns).date_naive().and_time(NaiveTime::MIN),
    };
    let anchor = resolve_local(&tz, anchor_local)
        .ok_or_else(|| format!("recurrence.start: local time {anchor_local} cannot be placed in {tz}"))?;
    let anchor_ns = anchor
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("recurrence.start: {anchor_local} is outside the representable range"))?;
    match (&recurrence.rrule, &recurrence.cron) {
        (Some(rule), None) => {
            compile_rrule(rule, tz, anchor_local, anchor, anchor_ns, duration_ns).map(Schedule::Rrule)
        }
        (None, Some(pattern)) => compile_cron(pattern, tz, anchor, anchor_ns, duration_ns).map(Schedule::Cron),
        (Some(_), Some(_)) => Err("recurrence.cron: give either rrule or cron, not both".to_owned()),
        (None, None) => Err("recurrence.rrule: give either rrule or cron".to_owned()),
    }
}

/// Parses the local anchor `YYYY-MM-DDTHH:MM:SS` (no offset, no fraction).
fn parse_local(text: &str) -> Result<NaiveDateTime, String> {
    let shape_ok = text.len() == 19 && text.as_bytes().get(10) == Some(&b'T');
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok().filter(|_| shape_ok);
    parsed.ok_or_else(|| format!("{:?} is not a local date-time YYYY-MM-DDTHH:MM:SS", clip(text)))
}

/// The instant of a local time: the earlier instance in a fold, and in a gap the local time read
/// with the offset in force before the gap (RFC 5545 §3.3.5), which lands after the gap.
fn resolve_local(tz: &chrono_tz::Tz, local: NaiveDateTime) -> Option<DateTime<chrono_tz::Tz>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at),
        LocalResult::None => {
            // A day before is before the transition: zones do not change offset twice in a day.
            let before = local.checked_sub_signed(Duration::days(1))?.and_utc();
            let offset_before = tz.offset_from_utc_datetime(&before.naive_utc()).fix().local_minus_utc();
            let utc = local.checked_sub_signed(Duration::seconds(i64::from(offset_before)))?;
            Some(tz.from_utc_datetime(&utc))
        }
    }
}

fn compile_rrule(
    text: &str,
    tz: chrono_tz::Tz,
    anchor_local: NaiveDateTime,
    anchor: DateTime<chrono_tz::Tz>,
    anchor_ns: i64,
    duration_ns: i64,
) -> Result<RruleSchedule, String> {
    const FIELD: &str = "recurrence.rrule";
    let trimmed = text.trim();
    let value = match trimmed.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => &trimmed[6..],
        _ => trimmed,
    };
    // RRULE values are ASCII (RFC 5545), and the rrule crate panics slicing some non-ASCII
    // text (`BYDAY=\u{261}E`), so anything else is refused before it gets there.
    if value.is_empty() || !value.is_ascii() || value.contains([':', '\n', '\r']) {
        return Err(format!("{FIELD}: {:?} must be one RRULE value such as \"FREQ=WEEKLY;BYDAY=SA,SU\"", clip(text)));
    }
    // Without `Z` the rrule crate reads UNTIL in the host's local zone: reject it so that the
    // answer never depends on the machine.
    for part in value.split(';') {
        if let Some((name, until)) = part.split_once('=') {
            if name.trim().eq_ignore_ascii_case("UNTIL") && !until.trim().ends_with(['Z', 'z']) {
                return Err(format!("{FIELD}: UNTIL must be a UTC date-time ending in Z, not {:?}", clip(until)));
            }
        }
    }
    let parsed = rrule::RRule::<rrule::Unvalidated>::from_str(value)
        .map_err(|e| format!("{FIELD}: {:?} is not a valid RRULE: {e}", clip(text)))?;
    let freq = parsed.get_freq();
    if freq > rrule::Frequency::Hourly {
        return Err(format!("{FIELD}: FREQ={freq} is not allowed; the finest frequency is HOURLY"));
    }
    if let Some(count) = parsed.get_count() {
        if count > MAX_RRULE_COUNT {
            return Err(format!("{FIELD}: COUNT={count} is above {MAX_RRULE_COUNT}"));
        }
    }
    let dtstart = anchor.with_timezone(&rrule::Tz::Tz(tz));
    let rule = with_anchor_defaults(parsed, anchor_local)
        .validate(dtstart)
        .map_err(|e| format!("{FIELD}: {:?} is not a valid RRULE: {e}", clip(text)))?;
    let times = rule.get_by_minute().len().saturating_mul(rule.get_by_second().len());
    let starts = if freq == rrule::Frequency::Hourly { times } else { times.saturating_mul(rule.get_by_hour().len()) };
    if starts > MAX_RRULE_STARTS_PER_PERIOD {
        let period = if freq == rrule::Frequency::Hourly { "hour" } else { "day" };
        return Err(format!(
            "{FIELD}: {:?} starts {starts} times per {period}; at most {MAX_RRULE_STARTS_PER_PERIOD} are allowed",
            clip(text)
        ));
    }
    let schedule = RruleSchedule { rule, dtstart, dtstart_ns: anchor_ns, tz, duration_ns };
    if schedule.first_start_ns().is_none() {
        return Err(format!("{FIELD}: {:?} never starts on or after {anchor_local} {tz}", clip(text)));
    }
    Ok(schedule)
}

/// Makes the parts of a rule that RFC 5545 takes from `DTSTART` explicit, from the anchor as
/// written — the same defaults the rrule crate would fill in, but immune to a re-anchored
/// `DTSTART` and to an anchor moved by a DST gap.
fn with_anchor_defaults(
    rule: rrule::RRule<rrule::Unvalidated>,
    anchor: NaiveDateTime,
) -> rrule::RRule<rrule::Unvalidated> {
    use rrule::Frequency;
    let freq = rule.get_freq();
    let has_day_filter = !(rule.get_by_week_no().is_empty()
        && rule.get_by_year_day().is_empty()
        && rule.get_by_month_day().is_empty()
        && rule.get_by_weekday().is_empty());
    let day = i8::try_from(anchor.day()).unwrap_or(1);
    let mut rule = match freq {
        Frequency::Yearly if !has_day_filter => {
            let rule = if rule.get_by_month().is_empty() {
                let month = u8::try_from(anchor.month()).ok().and_then(|m| chrono::Month::try_from(m).ok());
                rule.by_month(&month.into_iter().collect::<Vec<_>>())
            } else {
                rule
            };
            rule.by_month_day(vec![day])
        }
        Frequency::Monthly if !has_day_filter => rule.by_month_day(vec![day]),
        Frequency::Weekly if !has_day_filter => rule.by_weekday(vec![rrule::NWeekday::Every(anchor.weekday())]),
        _ => rule,
    };
    if rule.get_by_hour().is_empty() && freq < Frequency::Hourly {
        rule = rule.by_hour(vec![u8::try_from(anchor.hour()).unwrap_or(0)]);
    }
    if rule.get_by_minute().is_empty() && freq < Frequency::Minutely {
        rule = rule.by_minute(vec![u8::try_from(anchor.minute()).unwrap_or(0)]);
    }
    if rule.get_by_second().is_empty() && freq < Frequency::Secondly {
        rule = rule.by_second(vec![u8::try_from(anchor.second()).unwrap_or(0)]);
    }
    rule
}

impl RruleSchedule {
    fn first_start_ns(&self) -> Option<i64> {
        let set = rrule::RRuleSet::new(self.dtstart).rrule(self.rule.clone()).limit();
        let first = (&set).into_iter().next()?;
        first.timestamp_nanos_opt()
    }

    /// The latest start in `(at - duration, at]`, walking the rule from a re-anchored `DTSTART`
    /// when `reanchor` is set (always, outside tests) and from the anchor otherwise.
    fn window_at(&self, at_ns: i64, reanchor: bool) -> Option<(i64, i64)> {
        if at_ns < self.dtstart_ns {
            return None;
        }
        let after_ns = at_ns.saturating_sub(self.duration_ns);
        let walk_from = if reanchor { self.walk_start(after_ns) } else { self.dtstart };
        let set = rrule::RRuleSet::new(walk_from).rrule(self.rule.clone()).limit();
        let stop_ns = at_ns.saturating_add(RRULE_ORDER_SLACK_NS);
        let mut latest: Option<i64> = None;
        for (step, start) in (&set).into_iter().enumerate() {
            if step >= MAX_RRULE_STEPS {
                // Unreachable within the compile-time limits. Should it happen, fail closed: an
                // instant we cannot decide is frozen for one duration.
                return Some((at_ns, at_ns.saturating_add(self.duration_ns)));
            }
            let Some(start_ns) = start.timestamp_nanos_opt() else { break };
            if start_ns > stop_ns {
                break;
            }
            if start_ns > after_ns && start_ns <= at_ns {
                latest = Some(latest.map_or(start_ns, |seen| seen.max(start_ns)));
            }
        }
        latest.map(|start_ns| (start_ns, start_ns.saturating_add(self.duration_ns)))
    }

    /// The `DTSTART` to walk from so that every start after `after_ns` is still produced: the
    /// beginning of the last period in phase with the anchor's (a whole number of `INTERVAL`
    /// periods after it) that lies a margin before `after_ns`. The rule's implicit parts are
    /// explicit (see [`with_anchor_defaults`]), so only the period's phase depends on `DTSTART`,
    /// and the walk yields exactly the starts the walk from the anchor would. A counted rule
    /// depends on every start since the anchor and is always walked from the anchor.
    fn walk_start(&self, after_ns: i64) -> DateTime<rrule::Tz> {
        if self.rule.get_count().is_some() {
            return self.dtstart;
        }
        let anchor = self.dtstart.naive_local();
        let Some(target) =
            self.tz.timestamp_nanos(after_ns).naive_local().checked_sub_signed(Duration::days(REANCHOR_MARGIN_DAYS))
        else {
            return self.dtstart;
        };
        if target <= anchor {
            return self.dtstart;
        }
        let freq = self.rule.get_freq();
        let week_start = self.rule.get_week_start();
        let interval = i64::from(self.rule.get_interval().max(1));
        let Some(periods) = periods_between(freq, week_start, anchor, target) else {
            return self.dtstart;
        };
        let whole_intervals = periods.div_euclid(interval);
        // A period that begins in a DST gap cannot be a `DTSTART`; fall back an interval or three.
        for back in 0..4 {
            let intervals = whole_intervals - back;
            if intervals <= 0 {
                break;
            }
            let Some(local) = intervals.checked_mul(interval).and_then(|n| period_start(freq, week_start, anchor, n))
            else {
                continue;
            };
            match rrule::Tz::Tz(self.tz).from_local_datetime(&local) {
                LocalResult::Single(start) | LocalResult::Ambiguous(start, _) => return start,
                LocalResult::None => continue,
            }
        }
        self.dtstart
    }
}

/// Whole periods of `freq` from the period holding `anchor` to the one holding `target`
/// (`target` > `anchor`). Periods are calendar years, months, weeks starting on `week_start`,
/// days, or wall-clock hours, as the rrule crate counts them.
fn periods_between(
    freq: rrule::Frequency,
    week_start: Weekday,
    anchor: NaiveDateTime,
    target: NaiveDateTime,
) -> Option<i64> {
    use rrule::Frequency;
    match freq {
        Frequency::Yearly => Some(i64::from(target.year()) - i64::from(anchor.year())),
        Frequency::Monthly => Some(month_index(target.date()) - month_index(anchor.date())),
        Frequency::Weekly => {
            let days = week_of(target.date(), week_start)?.signed_duration_since(week_of(anchor.date(), week_start)?);
            Some(days.num_days() / 7)
        }
        Frequency::Daily => Some(target.date().signed_duration_since(anchor.date()).num_days()),
        Frequency::Hourly => Some(target.signed_duration_since(hour_of(anchor)?).num_hours()),
        Frequency::Minutely | Frequency::Secondly => None,
    }
}

/// The local start of the period `periods` periods after the one holding `anchor`.
fn period_start(
    freq: rrule::Frequency,
    week_start: Weekday,
    anchor: NaiveDateTime,
    periods: i64,
) -> Option<NaiveDateTime> {
    use rrule::Frequency;
    let midnight = |date: NaiveDate| date.and_time(NaiveTime::MIN);
    match freq {
        Frequency::Yearly => {
            let year = i32::try_from(i64::from(anchor.year()).checked_add(periods)?).ok()?;
            NaiveDate::from_ymd_opt(year, 1, 1).map(midnight)
        }
        Frequency::Monthly => {
            let index = month_index(anchor.date()).checked_add(periods)?;
            let year = i32::try_from(index.div_euclid(12)).ok()?;
            let month = u32::try_from(index.rem_euclid(12) + 1).ok()?;
            NaiveDate::from_ymd_opt(year, month, 1).map(midnight)
        }
        Frequency::Weekly => {
            let days = Duration::try_days(periods.checked_mul(7)?)?;
            week_of(anchor.date(), week_start)?.checked_add_signed(days).map(midnight)
        }
        Frequency::Daily => anchor.date().checked_add_signed(Duration::try_days(periods)?).map(midnight),
        Frequency::Hourly => hour_of(anchor)?.checked_add_signed(Duration::try_hours(periods)?),
        Frequency::Minutely | Frequency::Secondly => None,
    }
}

fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// The first day of the week holding `date`, for weeks starting on `week_start`.
fn week_of(date: NaiveDate, week_start: Weekday) -> Option<NaiveDate> {
    let into_week = (date.weekday().num_days_from_monday() + 7 - week_start.num_days_from_monday()) % 7;
    date.checked_sub_signed(Duration::days(i64::from(into_week)))
}

fn hour_of(at: NaiveDateTime) -> Option<NaiveDateTime> {
    at.date().and_hms_opt(at.hour(), 0, 0)
}

fn compile_cron(
    pattern: &str,
    tz: chrono_tz::Tz,
    anchor: DateTime<chrono_tz::Tz>,
    anchor_ns: i64,
    duration_ns: i64,
) -> Result<CronSchedule, String> {
    const FIELD: &str = "recurrence.cron";
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    let cron = parser
        .parse(pattern)
        .map_err(|e| format!("{FIELD}: {:?} is not a 5-field cron pattern: {e}", clip(pattern)))?;
    if cron.find_next_occurrence(&anchor, true).is_err() {
        return Err(format!("{FIELD}: {:?} never matches on or after {} {tz}", clip(pattern), anchor.naive_local()));
    }
    Ok(CronSchedule { cron, tz, anchor_ns, duration_ns })
}

impl CronSchedule {
    /// The latest start in `(at - duration, at]`. croner searches forwards and backwards; the
    /// forward search from the window's earliest possible start decides whether any start
    /// covers `at`, and the backward search from `at` then finds the latest one.
    fn window_at(&self, at_ns: i64) -> Option<(i64, i64)> {
        if at_ns < self.anchor_ns {
            return None;
        }
        let earliest_ns = self.anchor_ns.max(at_ns.saturating_sub(self.duration_ns).saturating_add(1));
        // Cron starts fall on whole seconds: search from the first whole second at or after.
        let earliest_secs =
            earliest_ns.div_euclid(NS_PER_SECOND) + i64::from(earliest_ns.rem_euclid(NS_PER_SECOND) != 0);
        let earliest = self.tz.timestamp_opt(earliest_secs, 0).single()?;
        let first_ns = self.cron.find_next_occurrence(&earliest, true).ok()?.timestamp_nanos_opt()?;
        if first_ns > at_ns {
            return None;
        }
        let latest_ns = self
            .tz
            .timestamp_opt(at_ns.div_euclid(NS_PER_SECOND), 0)
            .single()
            .and_then(|at| self.cron.find_previous_occurrence(&at, true).ok())
            .and_then(|start| start.timestamp_nanos_opt())
            .filter(|start_ns| (first_ns..=at_ns).contains(start_ns))
            .unwrap_or(first_ns);
        Some((latest_ns, latest_ns.saturating_add(self.duration_ns)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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

    fn recurring(
        id: &str,
        rrule: Option<&str>,
        cron: Option<&str>,
        duration: u64,
        tz: &str,
    ) -> ChangeFreezeDeclaredData {
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
        let scoped =
            compile(one_off("prod-hold", &["prod", "prod-eu"], "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z"));
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
        check_berlin_weekends(&compile(recurring(
            "weekends",
            Some("FREQ=WEEKLY;BYDAY=SA,SU"),
            None,
            DAY,
            "Europe/Berlin",
        )));
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
            assert_eq!(
                (format_ns(start), format_ns(end)),
                ("2025-11-02T02:00:00Z".into(), "2025-11-02T10:00:00Z".into())
            );
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
        let by_rrule =
            compile(recurring("fold", Some("FREQ=DAILY;BYHOUR=1;BYMINUTE=30"), None, 1800, "America/New_York"));
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
        assert_eq!(
            frozen_until([&every_minute], "prod", at),
            Some((at + hops * 60 * NS_PER_SECOND, ids(&["minutes"])))
        );
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
        assert_eq!(
            window(&declared_late, "2025-03-07T23:45:00Z"),
            span("2025-03-07T23:00:00Z", "2025-03-08T23:00:00Z")
        );

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
            (
                with(&|d| recurrence(d).duration_seconds = 31 * DAY + 1),
                "recurrence.durationSeconds: 2678401 is outside",
            ),
            (with(&|d| recurrence(d).start = Some("2025-03-01 00:00".into())), "recurrence.start: "),
            (with(&|d| recurrence(d).start = Some("2025-03-01T00:00:00Z".into())), "recurrence.start: "),
            (with(&|d| d.freeze_id = "bad id".into()), "freezeId: \"bad id\" contains ' '"),
            (with(&|d| d.freeze_id = String::new()), "freezeId: must not be empty"),
            (with(&|d| d.freeze_id = "x".repeat(129)), "freezeId: longer than 128 bytes"),
            (with(&|d| d.environments = vec!["prod".into(), "eu/west".into()]), "environments[1]: "),
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
}
