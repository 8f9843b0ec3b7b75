//! The fold's modules form a DAG: each module of `projections/src` uses only modules of lower
//! layers (ARCHITECTURE.md, "Architecture Invariant"). Reads the sources: code only, without
//! comments and without the `#[cfg(test)]` modules at the end of a file.

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom first. A module may use the modules of the layers below its own, never its own layer
/// (other than itself) or one above.
const LAYERS: &[&[&str]] = &[
    &["rego"],
    &["event_type", "policy", "outbox", "freeze", "test_support"],
    &["decision"],
    &["catalogue"],
    &["state", "attestation"],
    &["oscal", "board"],
    &["risk", "custom_gates"],
    &["gates"],
    &["decide"],
    &["fold"],
    &["store", "evidence"],
    &["folder"],
    &["replay"],
    &["query"],
    &["worker"],
];

/// The top-level module a source file belongs to (`freeze/cron.rs` → `freeze`).
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

/// The modules a file's code names as `crate::x` (also in `use crate::{x, y}`).
fn uses(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                found.push(part.trim().split("::").next().unwrap_or_default().to_owned());
            }
        } else {
            found.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_of_the_fold_uses_one_above_it() {
    let layer: BTreeMap<&str, usize> =
        LAYERS.iter().enumerate().flat_map(|(i, modules)| modules.iter().map(move |m| (*m, i))).collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let module = module_of(relative);
        if module == "lib" {
            continue;
        }
        let Some(&own) = layer.get(module.as_str()) else {
            panic!("{}: module {module} is in no layer of this test", relative.display());
        };
        let source = std::fs::read_to_string(file).expect("read source");
        for used in uses(&source) {
            if used == module {
                continue;
            }
            match layer.get(used.as_str()) {
                Some(&below) if below < own => {}
                _ => upward.push(format!("{}: {module} uses {used}", relative.display())),
            }
        }
    }
    assert!(upward.is_empty(), "edges that are not downward:\n{}", upward.join("\n"));
}
