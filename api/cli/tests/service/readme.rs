//! The README's shell examples, executed: the ```sh blocks of the sections "Walkthrough",
//! "Governance: a release from intent to publication", "Gates as policy code", "Auditing" and
//! "Backup and restore" run, in that order, as one bash script in a fresh directory (holding
//! the clone's `docs/gates/`, which the README's commands name) against a freshly started server
//! whose data dir is `./release-ledger-data`, as the README has it. So the README cannot drift
//! from the binary.
//!
//! How a block is read (a small extractor rather than `trycmd`: the examples are a story whose
//! commands share files and shell variables, and only key lines of their output are promised):
//! - a command is a line that is not a comment, with its `\` continuation lines and the body
//!   of a `<<'WORD'` here-document;
//! - `# → TEXT` under a command: TEXT must appear in its output (stdout or stderr);
//! - `# fails (exit N): TEXT` under a command: it must exit with N and say TEXT; every other
//!   command must exit 0;
//! - the lines setting `rl=` and `audit=` are replaced by the binaries under test, and the
//!   server's address comes from `RELEASE_LEDGER_SERVER` (the README's commands use the default);
//! - other comments are prose.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, Server};

/// The sections whose ```sh blocks run, in order.
const SECTIONS: &[&str] = &[
    "### Walkthrough",
    "### Governance: a release from intent to publication",
    "### Gates as policy code",
    "## Auditing",
    "### Backup and restore",
];

/// How long the whole README may take.
const DEADLINE: Duration = Duration::from_secs(180);

/// One command of the README and what it promises.
#[derive(Debug, Default)]
struct Step {
    command: String,
    /// Lines the output must contain.
    expected: Vec<String>,
    /// The exit code and message of a command shown failing on purpose.
    fails: Option<(i32, String)>,
}

/// The ```sh blocks of `section`: from its heading to the next heading of its level or higher
/// (lines in code blocks are not headings).
fn blocks(readme: &str, section: &str) -> Vec<String> {
    let level = section.chars().take_while(|c| *c == '#').count();
    let mut out = Vec::new();
    let (mut inside, mut found) = (false, false);
    // In a code block: whether it is a ```sh block of the section, and its text.
    let mut fence: Option<(bool, String)> = None;
    for line in readme.lines() {
        if let Some((run, text)) = &mut fence {
            if line.starts_with("```") {
                if *run {
                    out.push(std::mem::take(text));
                }
                fence = None;
            } else {
                text.push_str(line);
                text.push('\n');
            }
            continue;
        }
        if line.starts_with("```") {
            fence = Some((inside && line.trim() == "```sh", String::new()));
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if hashes > 0 && line[hashes..].starts_with(' ') {
            if line.starts_with(section) {
                inside = true;
                found = true;
            } else if hashes <= level {
                inside = false;
            }
        }
    }
    assert!(found, "README has no section {section:?}");
    assert!(!out.is_empty(), "section {section:?} has no ```sh block");
    out
}

/// The commands of a block.
fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = block.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("rl=") || trimmed.starts_with("audit=") {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim();
            let last = steps.last_mut();
            if let Some(text) = comment.strip_prefix("→ ") {
                last.expect("a `# →` line before any command").expected.push(text.trim().to_owned());
            } else if let Some(rest) = comment.strip_prefix("fails (exit ") {
                let (code, text) = rest.split_once("): ").expect("`# fails (exit N): TEXT`");
                last.expect("a `# fails` line before any command").fails =
                    Some((code.parse().expect("an exit code"), text.trim().to_owned()));
            }
            continue;
        }
        let mut command = line.to_owned();
        let mut current = line.to_owned();
        while current.trim_end().ends_with('\\') {
            current = lines.next().expect("a `\\` continuation at the end of a block").to_owned();
            command.push('\n');
            command.push_str(&current);
        }
        if let Some(at) = command.find("<<'") {
            let word = command[at + 3..].split('\'').next().unwrap().to_owned();
            loop {
                let body = lines.next().unwrap_or_else(|| panic!("here-document {word} never ends"));
                command.push('\n');
                command.push_str(body);
                if body == word {
                    break;
                }
            }
        }
        steps.push(Step { command, ..Step::default() });
    }
    steps
}

/// The ledger-audit binary: built into the same directory as release-ledger by a workspace
/// build (cargo gives a test only its own package's binaries).
pub(crate) fn audit_binary() -> std::path::PathBuf {
    let path = Path::new(binary()).with_file_name("ledger-audit");
    assert!(
        path.exists(),
        "{} is missing: the README's audit examples need it (cargo build --release --workspace)",
        path.display()
    );
    path
}

#[test]
fn the_readme_walkthrough_governance_and_audit_examples_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let steps: Vec<Step> =
        SECTIONS.iter().flat_map(|section| blocks(&readme, section)).flat_map(|block| steps(&block)).collect();
    assert!(steps.len() > 40, "only {} commands found: is the extractor reading the README?", steps.len());

    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // The README runs from the clone: its gate examples read the Rego of docs/gates/.
    let gates = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/gates");
    std::fs::create_dir_all(cwd.join("docs/gates")).unwrap();
    for file in std::fs::read_dir(gates).unwrap() {
        let path = file.unwrap().path();
        std::fs::copy(&path, cwd.join("docs/gates").join(path.file_name().unwrap())).unwrap();
    }
    let server = Server::start(&cwd.join("release-ledger-data"), &[]);
    let outputs = cwd.join(".readme-outputs");
    std::fs::create_dir(&outputs).unwrap();
    let mut script = format!("rl={}\naudit={}\n", binary(), audit_binary().display());
    for (i, step) in steps.iter().enumerate() {
        let out = outputs.join(i.to_string());
        let out = out.display();
        script.push_str(&format!("{{ {}\n}} >{out}.out 2>{out}.err </dev/null; echo $? >{out}.rc\n", step.command));
    }
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", server.url())
        .env_remove("RELEASE_LEDGER_KEY_PASSPHRASE")
        .env_remove("RELEASE_LEDGER_KEY_PASSPHRASE_FILE")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the README's examples did not finish within {} s", DEADLINE.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut failures = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let read = |ext: &str| std::fs::read_to_string(outputs.join(format!("{i}.{ext}"))).unwrap_or_default();
        let (stdout, stderr) = (read("out"), read("err"));
        let code: i32 = read("rc").trim().parse().unwrap_or(-1);
        let output = format!("{stdout}{stderr}");
        let mut problems = Vec::new();
        match &step.fails {
            None if code != 0 => problems.push(format!("exited {code}, the README shows it succeeding")),
            Some((expected, _)) if code != *expected => {
                problems.push(format!("exited {code}, the README says it fails with exit {expected}"));
            }
            Some((_, says)) if !stderr.contains(says.as_str()) => {
                problems.push(format!("does not fail saying {says:?}"));
            }
            _ => {}
        }
        for line in &step.expected {
            if !output.contains(line.as_str()) {
                problems.push(format!("does not print {line:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "command {i}:\n{}\n  {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                step.command,
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the README's examples drifted:\n\n{}\nserver log:\n{}",
        failures.join("\n"),
        server.log()
    );
}

#[test]
fn the_readme_extractor_reads_commands_continuations_here_documents_and_promises() {
    let block = "rl=/somewhere\n# prose\n$rl a --x \\\n    --y\n# → printed\n#   → also\ncat > f <<'JSON'\n{\"a\": 1}\nJSON\n$rl b\n# fails (exit 1): no such thing\n";
    let steps = steps(block);
    let commands: Vec<&str> = steps.iter().map(|s| s.command.as_str()).collect();
    assert_eq!(commands, ["$rl a --x \\\n    --y", "cat > f <<'JSON'\n{\"a\": 1}\nJSON", "$rl b"]);
    assert_eq!(steps[0].expected, ["printed", "also"]);
    assert_eq!(steps[2].fails, Some((1, "no such thing".to_owned())));
    assert!(steps[1].expected.is_empty() && steps[1].fails.is_none());
}
