//! The pack's reports for people, `report.md` and `report.html`: one document model rendered
//! twice, from the verified entries and the decisions re-derived from them only, so that the
//! verifier can render them again and compare byte for byte. Everything an event's author
//! wrote is escaped (Markdown: every ASCII punctuation character that could start markup;
//! HTML: the five special characters), and the HTML page loads nothing (its CSP allows only
//! its inline style).

use std::collections::BTreeSet;

use ledger::{Entry, EntryBody, ParsedEvent};
use projections::catalogue::{GovData, GovEvent};
use projections::evidence::{Rederived, Role};

use super::{Manifest, Pack, CHECKPOINT, LEDGER_KEY};

/// A block of the document.
enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table { head: Vec<&'static str>, rows: Vec<Vec<String>> },
}

/// The report, as blocks.
pub(super) struct Report {
    title: String,
    blocks: Vec<Block>,
}

fn when(ns: u64) -> String {
    ledger::time::format_recorded_at(ns)
}

fn parsed(entry: &Entry) -> Option<ParsedEvent> {
    ParsedEvent::parse(&entry.envelope()?.payload).ok()
}

fn agent(entry: &Entry) -> String {
    parsed(entry).map(|p| p.header.actor.agent_id).unwrap_or_default()
}

impl Report {
    pub(super) fn new(pack: &Pack, manifest: &Manifest, rederived: &Rederived) -> Self {
        let release = &rederived.release;
        let mut blocks = Vec::new();
        let title = format!("Evidence pack: release {} of tenant {}", pack.release, pack.tenant);

        // Summary.
        let mut summary = vec![
            format!("Status after the release's last entry: {}", release.status.as_str()),
            format!(
                "Log: {} (tenant {}), checkpoint of {} entries signed by ledger key {}",
                manifest.origin, pack.tenant, manifest.checkpoint_size, manifest.ledger_key_id
            ),
            format!(
                "Entries in this pack: {} ({} of the release, {} governance, {} context, {} redacted); decisions: {}",
                pack.entries.len(),
                count(pack, Role::Release),
                count(pack, Role::Governance),
                count(pack, Role::Context),
                count(pack, Role::Redacted),
                rederived.decisions.len()
            ),
        ];
        if let Some(intent) = &release.intent {
            let modules: Vec<String> =
                intent.data.modules.iter().map(|m| format!("{} {}", m.name, m.version)).collect();
            summary.push(format!(
                "Intent: seq {} at {} by {}: {} to {}",
                intent.seq,
                when(intent.recorded_at),
                intent.agent_id,
                modules.join(", "),
                intent.data.environment
            ));
        }
        if let Some(failure) = &release.failure {
            summary.push(format!("Failure: {failure}"));
        }
        blocks.push(Block::List(summary));
        blocks.push(Block::Para(
            "Every decision below was re-derived from this pack's entries alone, by the fold the ledger runs, \
             and is byte for byte the decision the ledger signed; every entry is proven included in the \
             checkpoint."
                .into(),
        ));

        // Decisions.
        blocks.push(Block::Heading(2, "Decisions".into()));
        if rederived.decisions.is_empty() {
            blocks.push(Block::Para("No decision yet.".into()));
        }
        for (seq, decision) in &rederived.decisions {
            blocks.push(Block::Heading(
                3,
                format!("Seq {seq}: {} at {}", decision.status.event_type().as_str(), decision.evaluated_at),
            ));
            let mut facts = vec![
                format!("Triggered by seq {}", decision.trigger),
                match decision.policy_version {
                    Some(v) => format!("Policy version {v}"),
                    None => "No policy in force".to_owned(),
                },
                format!("Risk score {} of 100", decision.risk_score),
                format!("Evidence: seqs {}", join(&decision.evidence)),
            ];
            if let Some(retry) = &decision.retry_after {
                facts.push(format!("Evaluated again after {retry}"));
            }
            if let Some(fix) = &decision.suggested_fix {
                facts.push(format!("Suggested fix: {fix}"));
            }
            blocks.push(Block::List(facts));
            if !decision.gates.is_empty() {
                // A custom gate that did not pass carries its policy's own code: a column then.
                let with_code = decision.gates.iter().any(|g| g.code.is_some());
                let mut head = vec!["gate", "target", "observed", "verdict"];
                if with_code {
                    head.push("code");
                }
                blocks.push(Block::Table {
                    head,
                    rows: decision
                        .gates
                        .iter()
                        .map(|g| {
                            let mut row =
                                vec![g.gate.clone(), g.target.clone(), g.observed.clone(), format!("{:?}", g.verdict)];
                            if with_code {
                                row.push(g.code.clone().unwrap_or_else(|| "-".into()));
                            }
                            row
                        })
                        .collect(),
                });
            }
            if !decision.reasons.is_empty() {
                blocks.push(Block::List(
                    decision
                        .reasons
                        .iter()
                        .map(|r| match &r.module {
                            Some(module) => format!("{} ({module}): {}", r.code, r.detail),
                            None => format!("{}: {}", r.code, r.detail),
                        })
                        .collect(),
                ));
            }
            if !decision.risk_factors.is_empty() {
                blocks.push(Block::Table {
                    head: vec!["risk factor", "value", "points"],
                    rows: decision
                        .risk_factors
                        .iter()
                        .map(|f| vec![f.factor.clone(), f.value.clone(), f.points.to_string()])
                        .collect(),
                });
            }
        }

        // Approvals.
        blocks.push(Block::Heading(2, "Approvals and rejections".into()));
        let counted: BTreeSet<u64> =
            rederived.decisions.last().map(|(_, d)| d.evidence.iter().copied().collect()).unwrap_or_default();
        if release.approvals.is_empty() {
            blocks.push(Block::Para("None.".into()));
        } else {
            blocks.push(Block::Table {
                head: vec!["seq", "recorded at", "by", "role", "verdict", "text", "counted by the latest decision"],
                rows: release
                    .approvals
                    .iter()
                    .map(|a| {
                        let counted = match release.invalidated.get(&a.seq) {
                            Some(by) => format!("no: withdrawn at seq {by}"),
                            None if counted.contains(&a.seq) => "yes".to_owned(),
                            None => "no (see the reasons)".to_owned(),
                        };
                        vec![
                            a.seq.to_string(),
                            when(a.recorded_at),
                            a.agent_id.clone(),
                            a.role.clone(),
                            if a.granted { "granted" } else { "rejected" }.to_owned(),
                            a.text.clone(),
                            counted,
                        ]
                    })
                    .collect(),
            });
        }

        // Freezes.
        blocks.push(Block::Heading(2, "Change freezes".into()));
        let mut freezes = Vec::new();
        for e in pack.entries.iter().filter(|e| e.role == Role::Governance) {
            let Some(event) = parsed(&e.entry).and_then(|p| GovEvent::parse(&p).ok()) else { continue };
            let (id, what) = match &event.data {
                GovData::FreezeDeclared(d) => {
                    let window = match (&d.from, &d.to, &d.recurrence) {
                        (_, _, Some(r)) => {
                            format!("recurring {}", r.rrule.as_deref().or(r.cron.as_deref()).unwrap_or_default())
                        }
                        (from, to, None) => {
                            format!("{} to {}", from.as_deref().unwrap_or("now"), to.as_deref().unwrap_or("lifted"))
                        }
                    };
                    (d.freeze_id.clone(), format!("declared for {}: {window}; {}", d.environments.join(", "), d.reason))
                }
                GovData::FreezeLifted(d) => (
                    d.freeze_id.clone(),
                    format!("lifted{}", d.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()),
                ),
                _ => continue,
            };
            freezes.push(vec![e.entry.seq.to_string(), when(e.entry.recorded_at), id, what]);
        }
        for o in &release.overrides {
            let at = pack.entries.iter().find(|e| e.entry.seq == o.seq).map(|e| when(e.entry.recorded_at));
            freezes.push(vec![
                o.seq.to_string(),
                at.unwrap_or_default(),
                o.freeze_id.clone(),
                format!("overridden for this release: {}", o.justification),
            ]);
        }
        if freezes.is_empty() {
            blocks.push(Block::Para("None declared.".into()));
        } else {
            blocks.push(Block::Table { head: vec!["seq", "recorded at", "freeze", "what"], rows: freezes });
        }

        // The release's entries.
        blocks.push(Block::Heading(2, "Timeline of the release".into()));
        blocks.push(Block::Table {
            head: vec!["seq", "recorded at", "type", "by", "summary"],
            rows: release
                .timeline
                .iter()
                .map(|t| {
                    vec![
                        t.seq.to_string(),
                        when(t.recorded_at),
                        t.event_type.clone(),
                        t.agent_id.clone(),
                        t.summary.clone(),
                    ]
                })
                .collect(),
        });
        if release.timeline_omitted > 0 {
            blocks.push(Block::Para(format!(
                "{} later entries of the release are in the pack but not in this timeline.",
                release.timeline_omitted
            )));
        }

        // Governance, context, redacted.
        for (role, heading, note) in [
            (Role::Governance, "Governance in force", "Keys, policies, freezes and redactions of the tenant up to the release's last entry."),
            (
                Role::Context,
                "Context from other releases",
                "Failures, rollbacks and first publications of the release's modules by other releases, which the risk score reads.",
            ),
            (Role::Redacted, "Redacted entries", "Erased payloads: only their hashes remain, proven in the checkpoint."),
        ] {
            let rows: Vec<Vec<String>> = pack
                .entries
                .iter()
                .filter(|e| e.role == role)
                .map(|e| {
                    let what = match e.entry.body {
                        EntryBody::Redacted { by_seq } => format!("redacted by seq {by_seq}"),
                        EntryBody::Present(_) => about(&e.entry),
                    };
                    vec![
                        e.entry.seq.to_string(),
                        when(e.entry.recorded_at),
                        super::event_type_of(&e.entry),
                        agent(&e.entry),
                        what,
                    ]
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            blocks.push(Block::Heading(2, heading.into()));
            blocks.push(Block::Para(note.into()));
            blocks.push(Block::Table { head: vec!["seq", "recorded at", "type", "by", "about"], rows });
        }

        blocks.push(Block::Heading(2, "Checking this pack".into()));
        blocks.push(Block::Para(format!(
            "Run ledger-audit verify-evidence DIR --ledger-key KEY: it checks every file of this directory with no \
             server: the checkpoint ({CHECKPOINT}) against the ledger key you trust (the pack's own is \
             {LEDGER_KEY}), each entry's inclusion proof, each attestation, and every decision re-derived from \
             the entries; then that this report is the one those entries give. The attestations are standard \
             in-toto statements in DSSE envelopes signed by the ledger key."
        )));
        Self { title, blocks }
    }

    pub(super) fn markdown(&self) -> String {
        let mut out = format!("# {}\n", md(&self.title));
        for block in &self.blocks {
            out.push('\n');
            match block {
                Block::Heading(level, text) => {
                    out.push_str(&format!("{} {}\n", "#".repeat(usize::from(*level)), md(text)));
                }
                Block::Para(text) => out.push_str(&format!("{}\n", md(text))),
                Block::List(items) => {
                    for item in items {
                        out.push_str(&format!("- {}\n", md(item)));
                    }
                }
                Block::Table { head, rows } => {
                    out.push_str(&format!("| {} |\n", head.join(" | ")));
                    out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                    for row in rows {
                        let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
                        out.push_str(&format!("| {} |\n", cells.join(" | ")));
                    }
                }
            }
        }
        out
    }

    pub(super) fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
        );
        out.push_str(&format!("<title>{}</title>\n", html(&self.title)));
        out.push_str(
            "<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}\
             table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;\
             text-align:left;vertical-align:top}th{background:#f3f3f3}code{background:#f3f3f3}</style>\n</head>\n<body>\n",
        );
        out.push_str(&format!("<h1>{}</h1>\n", html(&self.title)));
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => out.push_str(&format!("<h{level}>{}</h{level}>\n", html(text))),
                Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", html(text))),
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for item in items {
                        out.push_str(&format!("<li>{}</li>\n", html(item)));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table { head, rows } => {
                    out.push_str("<table>\n<tr>");
                    for cell in head {
                        out.push_str(&format!("<th>{}</th>", html(cell)));
                    }
                    out.push_str("</tr>\n");
                    for row in rows {
                        out.push_str("<tr>");
                        for cell in row {
                            out.push_str(&format!("<td>{}</td>", html(cell)));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</table>\n");
                }
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

/// One line on what a governance or context entry is about.
fn about(entry: &Entry) -> String {
    let Some(parsed) = parsed(entry) else { return String::new() };
    if let Some(release) = &parsed.header.release_id {
        return format!("release {release}");
    }
    let Ok(event) = GovEvent::parse(&parsed) else { return String::new() };
    match &event.data {
        GovData::KeyRegistered(d) => format!("key of {} (roles {})", d.agent_id, d.roles.join(", ")),
        GovData::KeyRevoked(d) => format!("revokes key {}: {}", d.key_id, d.reason),
        GovData::Policy(d) => format!("policy version {}", d.policy.version),
        GovData::FreezeDeclared(d) => format!("freeze {} over {}", d.freeze_id, d.environments.join(", ")),
        GovData::FreezeLifted(d) => format!("lifts freeze {}", d.freeze_id),
        GovData::Redacted(d) => format!("erases the payload of seq {}", d.seq),
        _ => String::new(),
    }
}

fn count(pack: &Pack, role: Role) -> usize {
    pack.entries.iter().filter(|e| e.role == role).count()
}

fn join(seqs: &[u64]) -> String {
    if seqs.is_empty() {
        return "none".into();
    }
    seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// Markdown text that stays text: the ASCII punctuation that opens inline markup (emphasis,
/// code, links, images, autolinks and raw HTML, tables, entities) is backslash-escaped
/// everywhere (CommonMark allows escaping any), what opens a block (`-`, `+`, `=`, `1.`) at
/// the start, and line breaks become spaces (a cell or item is one line).
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut leading_digits = true;
    for (i, c) in text.chars().enumerate() {
        let escape = match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '<' | '>' | '#' | '!' | '|' | '~' | '&' => true,
            '-' | '+' | '=' => i == 0,
            '.' | ')' => leading_digits && i > 0,
            _ => false,
        };
        leading_digits &= c.is_ascii_digit();
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => {
                if escape {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

/// HTML text.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{html, md};

    #[test]
    fn author_text_cannot_become_markup() {
        let hostile = "<script>alert(1)</script> [x](javascript:y) | *b* `c`\n# h";
        let escaped = md(hostile);
        assert!(!escaped.contains('\n'), "one line: {escaped}");
        for c in ['<', '>', '[', ']', '|', '*', '`', '#'] {
            let bare = escaped.match_indices(c).any(|(i, _)| i == 0 || escaped.as_bytes()[i - 1] != b'\\');
            assert!(!bare, "{c:?} unescaped in {escaped}");
        }
        let escaped = html(hostile);
        assert!(!escaped.contains('<') && !escaped.contains('>') && !escaped.contains('"'), "{escaped}");
        assert!(escaped.contains("&lt;script&gt;"));
        assert_eq!(md("- 1. x"), "\\- 1. x");
        assert_eq!(md("12. x"), "12\\. x");
    }
}
