//! Timing a page: warm-up requests, then timed ones, each answer checked; percentiles.

use std::time::Instant;

use crate::http::Http;

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageResult {
    pub(crate) page: String,
    pub(crate) example: String,
    pub(crate) samples: usize,
    pub(crate) warmup: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) mean_bytes: f64,
    /// Answers that were not 200 or lacked the page's hook.
    pub(crate) unexpected: usize,
    pub(crate) load_average_before: String,
    pub(crate) note: String,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) struct Measure<'a> {
    pub(crate) http: &'a mut Http,
    pub(crate) warmup: usize,
    pub(crate) samples: usize,
}

impl Measure<'_> {
    /// `warmup` then `samples` requests of `url(i)` (i counting from 0 over both), each answer
    /// checked to be 200 with `hook` in it.
    pub(crate) fn page(
        &mut self,
        page: &str,
        hook: &str,
        fragment: bool,
        url: &mut dyn FnMut(usize) -> String,
    ) -> anyhow::Result<PageResult> {
        self.page_with(page, hook, fragment, url, None)
    }

    /// [`Measure::page`], also counting the answers that do not list the row `row(i)` (a
    /// release id searched for).
    pub(crate) fn page_with(
        &mut self,
        page: &str,
        hook: &str,
        fragment: bool,
        url: &mut dyn FnMut(usize) -> String,
        row: Option<&dyn Fn(usize) -> String>,
    ) -> anyhow::Result<PageResult> {
        let load = bench_harness::load_average();
        let example = url(0);
        for i in 0..self.warmup {
            let _ = self.http.get(&url(i), fragment)?;
        }
        let mut ms = Vec::with_capacity(self.samples);
        let (mut bytes, mut unexpected, mut found) = (0usize, 0usize, 0usize);
        for i in 0..self.samples {
            let path = url(self.warmup + i);
            let started = Instant::now();
            let answer = self.http.get(&path, fragment)?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            bytes += answer.body.len();
            // `hook` "303": a redirect is the expected answer (an exact release id searched).
            let expected =
                if hook == "303" { answer.status == 303 } else { answer.status == 200 && answer.text().contains(hook) };
            if !expected {
                if unexpected < 3 {
                    let text = answer.text();
                    eprintln!("  unexpected answer to {path}: {} {}", answer.status, &text[..text.len().min(300)]);
                }
                unexpected += 1;
            }
            if let Some(row) = row {
                if answer.text().contains(&format!("data-release=\"{}\"", row(self.warmup + i))) {
                    found += 1;
                }
            }
        }
        let note = match row {
            Some(_) => format!("the release searched for was on the answered page {found} times of {}", self.samples),
            None => String::new(),
        };
        Ok(summarise(page, example, ms, bytes, unexpected, self.warmup, load, note))
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn summarise(
    page: &str,
    example: String,
    mut ms: Vec<f64>,
    bytes: usize,
    unexpected: usize,
    warmup: usize,
    load: String,
    note: String,
) -> PageResult {
    ms.sort_by(f64::total_cmp);
    let n = ms.len().max(1) as f64;
    let result = PageResult {
        page: page.to_owned(),
        example,
        samples: ms.len(),
        warmup,
        p50_ms: percentile(&ms, 0.5),
        p90_ms: percentile(&ms, 0.9),
        p99_ms: percentile(&ms, 0.99),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
        mean_ms: ms.iter().sum::<f64>() / n,
        mean_bytes: bytes as f64 / n,
        unexpected,
        load_average_before: load,
        note,
    };
    eprintln!(
        "  {:<40} p50 {:>8.2} p99 {:>8.2} max {:>8.2} ms, {:>9.0} B{}",
        result.page,
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        result.mean_bytes,
        if unexpected > 0 { format!(" ({unexpected} unexpected)") } else { String::new() }
    );
    result
}
