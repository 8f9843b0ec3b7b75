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
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Weekday,
};
use ledger::clip;
use ledger::ids::{Environment, FreezeId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// The longest window a recurrence may open, in seconds (31 days).
pub const MAX_DURATION_SECONDS: u64 = 31 * 24 * 60 * 60;
/// The longest freeze id or environment name, in bytes.
pub const MAX_NAME_BYTES: usize = ledger::ids::MAX_CATALOGUE_NAME_BYTES;
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
    /// `freezeId` and environment names follow [`FreezeId`] and [`Environment`]'s rules
    /// (1..=128 bytes of `[A-Za-z0-9._+/:-]`, a freeze id starting with a letter or digit).
    ///
    /// # Errors
    /// A message that starts with the offending field, e.g.
    /// `recurrence.timeZone: "Mars/Olympus" is not an IANA time zone`.
    pub fn compile(data: ChangeFreezeDeclaredData, declared_occurred_at: &str) -> Result<Freeze, String> {
        FreezeId::check_named("freezeId", &data.freeze_id)?;
        for (index, environment) in data.environments.iter().enumerate() {
            Environment::check_named(&format!("environments[{index}]"), environment)?;
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

impl Freeze {
    /// The windows `(start_ns, end_ns)` that overlap `[from_ns, to_ns)`, in start order, at most
    /// `max` of them: what a calendar shows. A one-off freeze has at most one; a recurring one is
    /// walked from the first start that can still cover `from_ns`.
    pub fn windows_between(&self, from_ns: i64, to_ns: i64, max: usize) -> Vec<(i64, i64)> {
        let mut windows = Vec::new();
        if from_ns >= to_ns || max == 0 {
            return windows;
        }
        match &self.schedule {
            Schedule::OneOff { start_ns, end_ns } => {
                if *start_ns < to_ns && *end_ns > from_ns {
                    windows.push((*start_ns, *end_ns));
                }
            }
            Schedule::Rrule(schedule) => schedule.starts_between(from_ns, to_ns, max, &mut windows),
            Schedule::Cron(schedule) => schedule.starts_between(from_ns, to_ns, max, &mut windows),
        }
        windows
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

pub use ledger::time::{format_ns, parse_rfc3339_ns};

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

mod cron;
mod recurrence;
#[cfg(test)]
mod tests;

use cron::compile_cron;
use recurrence::compile_rrule;
