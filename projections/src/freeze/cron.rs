//! Cron recurrences (`croner`): compiling a pattern, and the window around an instant (one
//! forward search and at most one backward search).

use super::*;

pub(super) fn compile_cron(
    pattern: &str,
    tz: chrono_tz::Tz,
    anchor: DateTime<chrono_tz::Tz>,
    anchor_ns: i64,
    duration_ns: i64,
) -> Result<CronSchedule, String> {
    const FIELD: &str = "recurrence.cron";
    // A minute, hour or month field of commas only is an empty set: croner parses it and then
    // searches every hour or day up to its year limit before it reports that the pattern never
    // matches (1 s of CPU for ", 22 * * *", on the caller's thread, before any signature check;
    // found by the `projection_rows` fuzz target). Such a pattern was always refused as never
    // matching, so refusing it first refuses nothing that was accepted. Not the day fields:
    // with both restricted cron matches either (`0 0 , * 1` is every Monday, and was accepted).
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    let empty = |field: &str| field.bytes().all(|b| b == b',');
    if fields.len() == 5 {
        if let Some(&index) = [0usize, 1, 3].iter().find(|&&i| empty(fields[i])) {
            return Err(format!("{FIELD}: {:?}: field {} lists no values", clip(pattern), index + 1));
        }
        // The day fields, as croner matches them: by the restricted one when the other is `*`
        // or `?`, by either when both are restricted (both, after a `+` before the weekdays).
        // An empty one (commas only) then matches no day unless the other is restricted, not
        // empty, and ORed with it: else croner searches up to its year limit (50 ms, found by
        // the `projection_rows` fuzz hour) before calling the pattern never matching.
        let (dom, dow) = (fields[2], fields[4]);
        let (and, dow) = dow.strip_prefix('+').map_or((false, dow), |rest| (true, rest));
        let any = |field: &str| field == "*" || field == "?";
        let no_day = match (empty(dom), empty(dow)) {
            (true, _) if any(dow) || empty(dow) || and => Some(3),
            (_, true) if any(dom) || and => Some(5),
            _ => None,
        };
        if let Some(field) = no_day {
            return Err(format!("{FIELD}: {:?}: field {field} lists no values, so it matches no day", clip(pattern)));
        }
    }
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
    /// Pushes the windows overlapping `[from_ns, to_ns)` onto `out` (at most `max` in all).
    pub(super) fn starts_between(&self, from_ns: i64, to_ns: i64, max: usize, out: &mut Vec<(i64, i64)>) {
        // The first start that can still cover `from_ns`, on a whole second.
        let earliest_ns = self.anchor_ns.max(from_ns.saturating_sub(self.duration_ns).saturating_add(1));
        let mut secs = earliest_ns.div_euclid(NS_PER_SECOND) + i64::from(earliest_ns.rem_euclid(NS_PER_SECOND) != 0);
        let mut inclusive = true;
        while out.len() < max {
            let Some(at) = self.tz.timestamp_opt(secs, 0).single() else { break };
            let Some(start_ns) =
                self.cron.find_next_occurrence(&at, inclusive).ok().and_then(|start| start.timestamp_nanos_opt())
            else {
                break;
            };
            if start_ns >= to_ns {
                break;
            }
            out.push((start_ns, start_ns.saturating_add(self.duration_ns)));
            secs = start_ns.div_euclid(NS_PER_SECOND);
            inclusive = false;
        }
    }

    /// The latest start in `(at - duration, at]`. croner searches forwards and backwards; the
    /// forward search from the window's earliest possible start decides whether any start
    /// covers `at`, and the backward search from `at` then finds the latest one.
    pub(super) fn window_at(&self, at_ns: i64) -> Option<(i64, i64)> {
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
