//! RRULE recurrences (`rrule`): compiling a rule, and finding the window around an instant
//! without walking from a `DTSTART` long past (see the module docs of [`super`]).

use super::*;

pub(super) fn compile_rrule(
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
pub(super) fn with_anchor_defaults(
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
    pub(super) fn first_start_ns(&self) -> Option<i64> {
        let set = rrule::RRuleSet::new(self.dtstart).rrule(self.rule.clone()).limit();
        let first = (&set).into_iter().next()?;
        first.timestamp_nanos_opt()
    }

    /// The latest start in `(at - duration, at]`, walking the rule from a re-anchored `DTSTART`
    /// when `reanchor` is set (always, outside tests) and from the anchor otherwise.
    pub(super) fn window_at(&self, at_ns: i64, reanchor: bool) -> Option<(i64, i64)> {
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

    /// Pushes the windows overlapping `[from_ns, to_ns)` onto `out` (at most `max` in all).
    pub(super) fn starts_between(&self, from_ns: i64, to_ns: i64, max: usize, out: &mut Vec<(i64, i64)>) {
        let after_ns = from_ns.saturating_sub(self.duration_ns);
        let set = rrule::RRuleSet::new(self.walk_start(after_ns)).rrule(self.rule.clone()).limit();
        for (step, start) in (&set).into_iter().enumerate() {
            let Some(start_ns) = start.timestamp_nanos_opt() else { break };
            if step >= MAX_RRULE_STEPS || start_ns >= to_ns || out.len() >= max {
                break;
            }
            let end_ns = start_ns.saturating_add(self.duration_ns);
            if end_ns > from_ns && start_ns >= self.dtstart_ns {
                out.push((start_ns, end_ns));
            }
        }
    }

    /// The `DTSTART` to walk from so that every start after `after_ns` is still produced: the
    /// beginning of the last period in phase with the anchor's (a whole number of `INTERVAL`
    /// periods after it) that lies a margin before `after_ns`. The rule's implicit parts are
    /// explicit (see [`with_anchor_defaults`]), so only the period's phase depends on `DTSTART`,
    /// and the walk yields exactly the starts the walk from the anchor would. A counted rule
    /// depends on every start since the anchor and is always walked from the anchor.
    pub(super) fn walk_start(&self, after_ns: i64) -> DateTime<rrule::Tz> {
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
pub(super) fn periods_between(
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
pub(super) fn period_start(
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

pub(super) fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// The first day of the week holding `date`, for weeks starting on `week_start`.
pub(super) fn week_of(date: NaiveDate, week_start: Weekday) -> Option<NaiveDate> {
    let into_week = (date.weekday().num_days_from_monday() + 7 - week_start.num_days_from_monday()) % 7;
    date.checked_sub_signed(Duration::days(i64::from(into_week)))
}

pub(super) fn hour_of(at: NaiveDateTime) -> Option<NaiveDateTime> {
    at.date().and_hms_opt(at.hour(), 0, 0)
}
