//! Step 3: the pages. The board's first page checked against the fill, then each page timed
//! (warm-up, then samples, rotating through its URLs), the deep-page walk, the explain fragment.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::ensure;
use testkit::gov::Rng;

use crate::args::Args;
use crate::html::{board_ids, count_of, href_of};
use crate::http::Http;
use crate::measure::{summarise, Measure, PageResult};
use crate::server::Server;
use crate::workload::{module_name, release, release_id};
use crate::TENANT;

/// What the pages showed, and their times.
pub(crate) struct Pages {
    /// The counts on the board's first page, by status (`All` too).
    pub(crate) counts: BTreeMap<String, Option<u64>>,
    /// The statuses whose count differs from the fill's plans.
    pub(crate) mismatched: Vec<String>,
    /// Modules by how many releases ship them in prod: the most, the median, the fewest.
    pub(crate) busiest: String,
    pub(crate) median: String,
    pub(crate) rarest: String,
    pub(crate) results: Vec<PageResult>,
}

/// Times every page on `server` with an operator `token`; `position` is the log's length.
pub(crate) fn run(args: &Args, server: &Server, token: &str, position: u64) -> anyhow::Result<Pages> {
    let mut http = Http::new(server.console, token);
    let base = format!("/t/{TENANT}");
    let first = http.get(&base, false)?;
    ensure!(first.status == 200, "the board answered {}: {}", first.status, first.text());
    let first_html = first.text().into_owned();
    // The counts the board shows against the plans of the fill.
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for index in 0..args.releases {
        *expected.entry(release(index).plan.status()).or_insert(0) += 1;
    }
    let mut counts = BTreeMap::new();
    for status in ["All", "Planned", "Delayed", "Approved", "Rejected", "Published", "Failed", "RolledBack"] {
        counts.insert(status.to_owned(), count_of(&first_html, status));
    }
    let mismatched: Vec<String> = expected
        .iter()
        .filter(|(status, n)| counts.get(**status).copied().flatten() != Some(**n))
        .map(|(status, n)| format!("{status}: board {:?}, fill {n}", counts.get(*status).copied().flatten()))
        .collect();
    if mismatched.is_empty() {
        eprintln!("board counts match the fill: {counts:?}");
    } else {
        eprintln!("board counts differ from the fill's plans: {}", mismatched.join("; "));
    }
    let recent = board_ids(&first_html);
    ensure!(!recent.is_empty(), "the board's first page lists no release");

    let mut rng = Rng::new(0x00C0_FFEE);
    let n = args.releases;
    let mut random_ids: Vec<String> = (0..args.samples + args.warmup).map(|_| release_id(rng.below(n))).collect();
    random_ids.sort_unstable();
    random_ids.dedup();
    let seqs: Vec<u64> = (0..args.samples + args.warmup).map(|_| rng.below(position)).collect();
    // Modules by how many releases ship them in prod.
    let mut per_module: BTreeMap<String, u64> = BTreeMap::new();
    for index in 0..n {
        let r = release(index);
        if r.environment == "prod" {
            for m in r.modules {
                *per_module.entry(m).or_insert(0) += 1;
            }
        }
    }
    let mut by_use: Vec<(String, u64)> = per_module.into_iter().collect();
    by_use.sort_by_key(|(name, count)| (std::cmp::Reverse(*count), name.clone()));
    let busiest = by_use.first().map(|(m, _)| m.clone()).unwrap_or_else(|| module_name(0));
    let median = by_use.get(by_use.len() / 2).map(|(m, _)| m.clone()).unwrap_or_else(|| module_name(1));
    let rarest = by_use.last().map(|(m, _)| m.clone()).unwrap_or_else(|| module_name(2));

    let mut results = Vec::new();
    let mut m = Measure { http: &mut http, warmup: args.warmup, samples: args.samples };
    results.push(m.page("board, first page", "data-count=\"All\"", false, &mut |_| base.clone())?);
    results
        .push(m.page("board, status=Delayed", "data-count=\"All\"", false, &mut |_| format!("{base}?status=Delayed"))?);
    results
        .push(m.page("board, status=Failed", "data-count=\"All\"", false, &mut |_| format!("{base}?status=Failed"))?);
    results.push(m.page("board, environment=staging-eu", "data-count=\"All\"", false, &mut |_| {
        format!("{base}?environment=staging-eu")
    })?);
    results.push(m.page(&format!("board, module={median} (median)"), "data-count=\"All\"", false, &mut |_| {
        format!("{base}?module={median}")
    })?);
    results.push(m.page(&format!("board, module={rarest} (rarest)"), "data-count=\"All\"", false, &mut |_| {
        format!("{base}?module={rarest}")
    })?);
    // An exact release id redirects to its page (one read); a prefix filters the index.
    let prefix = |id: &str| id[..id.len().saturating_sub(1)].to_owned();
    results.push(m.page_with(
        "board, q=<exact random release id> (303 to its page)",
        "303",
        false,
        &mut |i| format!("{base}?q={}", random_ids[i % random_ids.len()]),
        None,
    )?);
    results.push(m.page_with(
        "board, q=<prefix of an id on the first page>",
        "data-count=\"All\"",
        false,
        &mut |i| format!("{base}?q={}", prefix(&recent[i % recent.len()])),
        Some(&|i| recent[i % recent.len()].clone()),
    )?);
    results.push(m.page_with(
        "board, q=<prefix of a random release id>",
        "data-count=\"All\"",
        false,
        &mut |i| format!("{base}?q={}", prefix(&random_ids[i % random_ids.len()])),
        Some(&|i| random_ids[i % random_ids.len()].clone()),
    )?);

    // The deep page: follow a#next-page `deep_pages` times from the first page; each hop timed.
    results.push(deep_walk(m.http, &base, args)?);

    results.push(m.page("release page (random release)", "id=\"status\"", false, &mut |i| {
        format!("{base}/releases/{}", random_ids[i % random_ids.len()])
    })?);
    results.push(m.page("entry page (random seq)", "id=\"verify-result\"", false, &mut |i| {
        format!("{base}/entries/{}", seqs[i % seqs.len()])
    })?);
    results.push(m.page("proof.json (random seq)", "\"inclusion\"", false, &mut |i| {
        format!("{base}/entries/{}/proof.json", seqs[i % seqs.len()])
    })?);
    results.push(m.page("freezes", "id=\"freezes\"", false, &mut |_| format!("{base}/freezes"))?);
    results.push(m.page(
        &format!("module history, {median} in prod (median)"),
        "id=\"history\"",
        false,
        &mut |_| format!("{base}/modules/{median}?environment=prod"),
    )?);
    results.push(m.page(
        &format!("module history, {busiest} in prod (busiest)"),
        "id=\"history\"",
        false,
        &mut |_| format!("{base}/modules/{busiest}?environment=prod"),
    )?);
    results.push(m.page("operator", "id=\"tenants\"", false, &mut |_| "/operator".to_owned())?);

    // The explain fragment: folds the log up to the decision; no warm-up, few samples.
    {
        let mut x = Measure { http: &mut *m.http, warmup: 0, samples: args.explain_samples };
        let picks = [recent[0].clone(), release_id(n / 2), release_id(0)];
        results.push(x.page(
            &format!("explain fragment ({}, newest)", picks[0]),
            "id=\"explain\"",
            true,
            &mut |_| format!("{base}/releases/{}/explain", picks[0]),
        )?);
        results.push(x.page(
            &format!("explain fragment ({}, middle)", picks[1]),
            "id=\"explain\"",
            true,
            &mut |_| format!("{base}/releases/{}/explain", picks[1]),
        )?);
    }

    Ok(Pages { counts, mismatched, busiest, median, rarest, results })
}

/// `--deep-pages` hops along `a#next-page` from the first board page, a warm-up walk and then
/// enough timed walks for `--samples` hops.
fn deep_walk(http: &mut Http, base: &str, args: &Args) -> anyhow::Result<PageResult> {
    let load = bench_harness::load_average();
    let walks = args.samples.div_ceil(args.deep_pages.max(1)).max(1);
    let mut ms = Vec::new();
    let (mut bytes, mut unexpected, mut deepest) = (0usize, 0usize, String::new());
    for walk in 0..=walks {
        let mut url = base.to_owned();
        let mut page = http_get_next(http, &url)?;
        for _ in 0..args.deep_pages {
            let Some(next) = page.1 else { break };
            url = next;
            let started = Instant::now();
            let answer = http.get(&url, false)?;
            let elapsed = started.elapsed().as_secs_f64() * 1e3;
            let html = answer.text().into_owned();
            // Walk 0 warms up.
            if walk > 0 {
                ms.push(elapsed);
                bytes += answer.body.len();
                if answer.status != 200 || !html.contains("data-release=") {
                    unexpected += 1;
                }
            }
            page = (answer.status, href_of(&html, "next-page"));
        }
        deepest = url;
    }
    Ok(summarise(
        &format!("board, pages 2..{} via a#next-page", args.deep_pages + 1),
        deepest,
        ms,
        bytes,
        unexpected,
        args.deep_pages,
        load,
        format!("{walks} walks of {} hops", args.deep_pages),
    ))
}

/// The first board page and its next-page link.
fn http_get_next(http: &mut Http, url: &str) -> anyhow::Result<(u16, Option<String>)> {
    let answer = http.get(url, false)?;
    let next = href_of(&answer.text(), "next-page");
    Ok((answer.status, next))
}
