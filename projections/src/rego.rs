//! Gates written as policy code: Rego modules carried by `PolicyUpdated`, compiled and
//! evaluated in process by [`regorus`] (its register VM), deterministically and within a bound.
//!
//! The contract (docs/gates.md):
//! - a gate named `g` is the rule `data.gates.g.result`; its value is the gate's verdict object
//!   (read by [`crate::custom_gates`]);
//! - nothing a gate calls may read the clock, the network, the environment, the machine's time
//!   zone or randomness: [`compile`] refuses a module that calls a builtin outside
//!   [`ALLOWED_TIME_BUILTINS`] among the `time.*` ones, or any of [`REFUSED_BUILTINS`], with the
//!   builtin's name (regorus is built without `http.send`, `opa.runtime`, `uuid` and `net`, so
//!   those do not even compile);
//! - every evaluation stops after the policy's instruction limit ([`DEFAULT_INSTRUCTION_LIMIT`]
//!   unless the policy says otherwise): a count of VM instructions, not a time, so a slow
//!   auditor's machine stops exactly where the ledger's did and re-derives the same decision.
//!
//! A compiled policy is cached by the hash of its modules and gate names ([`compiled`]): the fold
//! evaluates the same policy for every release, and compiling is the expensive part.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::VmError;
use regorus::rvm::{Program, RegoVM};
use serde::{Deserialize, Serialize};

/// Instructions one gate may execute per evaluation, unless the policy sets its own.
pub const DEFAULT_INSTRUCTION_LIMIT: u64 = 250_000;

/// The highest `instructionLimit` a policy may set (about a second of VM time per gate on the
/// machine in BENCHMARKS.md: one release's evaluation must not stall its tenant's fold).
pub const MAX_INSTRUCTION_LIMIT: u64 = 10_000_000;

/// The most modules a policy may carry.
pub const MAX_MODULES: usize = 32;

/// The most source bytes, all modules together.
pub const MAX_SOURCE_BYTES: usize = 32 * 1024;

/// The deepest nesting of `[` and `{` in a module (strings and comments aside). The compiler's
/// time grows exponentially with the nesting of composite literals: on the machine of
/// BENCHMARKS.md, 32 KiB of the worst-shaped source compiles in 0.5 s at depth 5, 1 s at 6,
/// 30 s at 20. A policy is compiled when it is appended, before its signer's roles are checked,
/// so the bound is what any registered key can make one append cost.
pub const MAX_NESTING: usize = 6;

/// The most custom gates one environment may declare.
pub const MAX_GATES_PER_ENVIRONMENT: usize = 32;

/// The `time.*` builtins a gate may call: pure functions of their arguments. The others read
/// the clock (`time.now_ns`) or may read the machine's time zone (`"Local"` in `time.clock`,
/// `time.date`, `time.weekday`, `time.format`, `time.diff`, `time.parse_ns`).
pub const ALLOWED_TIME_BUILTINS: &[&str] = &["time.parse_rfc3339_ns", "time.parse_duration_ns", "time.add_date"];

/// Builtins refused outright, with why.
pub const REFUSED_BUILTINS: &[(&str, &str)] = &[
    ("rand.intn", "returns random numbers"),
    ("numbers.range", "builds its whole result in one step, before any bound can stop it"),
    ("numbers.range_step", "builds its whole result in one step, before any bound can stop it"),
    ("trace", "writes to the server's output"),
    ("print", "writes to the server's output"),
];

/// The Rego part of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegoPolicy {
    /// Module file name (`slo.rego`) → source. Rego v1 syntax (`if`, `contains`).
    pub modules: BTreeMap<String, String>,
    /// Instructions one gate may execute per evaluation (default
    /// [`DEFAULT_INSTRUCTION_LIMIT`], at most [`MAX_INSTRUCTION_LIMIT`]). Part of the signed
    /// policy, so every re-derivation stops at the same instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_limit: Option<u64>,
}

impl RegoPolicy {
    /// The limit in force.
    pub fn limit(&self) -> u64 {
        self.instruction_limit.unwrap_or(DEFAULT_INSTRUCTION_LIMIT)
    }
}

/// Checks a gate's name: `[a-z][a-z0-9_]*`, at most 63 bytes (a Rego package component).
pub fn check_gate_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    if !first_ok || name.len() > 63 || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(format!(
            "gate name {:?}: a lowercase letter, then lowercase letters, digits or _ (at most 63)",
            ledger::clip(name)
        ));
    }
    Ok(())
}

/// Checks that `[` and `{` nest at most [`MAX_NESTING`] deep outside strings and comments.
fn check_nesting(name: &str, source: &str) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => {
                            line += usize::from(c == '\n');
                            break;
                        }
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    line += usize::from(c == '\n');
                    if c == '`' {
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "rego.modules.{name}: brackets nested more than {MAX_NESTING} deep at line {line} (the \
                         compiler's time grows exponentially with nesting: split the expression into rules)"
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn check_module_name(name: &str) -> Result<(), String> {
    let stem = name.strip_suffix(".rego").unwrap_or_default();
    if stem.is_empty()
        || name.len() > 64
        || !stem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "module name {:?}: letters, digits, _ - . ending in .rego (at most 64)",
            ledger::clip(name)
        ));
    }
    Ok(())
}

/// A policy's gates, compiled: one VM program per gate.
#[derive(Debug)]
pub struct CompiledGates {
    programs: BTreeMap<String, Arc<Program>>,
    limit: usize,
}

/// Why a gate produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateError {
    /// The gate ran past the instruction limit.
    Stopped {
        /// The limit.
        limit: u64,
    },
    /// The evaluation failed (a runtime error, an undefined result, a conflict).
    Failed(String),
}

impl std::fmt::Display for GateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stopped { limit } => write!(f, "stopped after {limit} instructions (the policy's instructionLimit)"),
            Self::Failed(why) => f.write_str(why),
        }
    }
}

/// The first line of a regorus error, with its source location (errors carry a backtrace
/// and, for parse errors, a snippet: the snippet is kept, the backtrace is not).
fn message(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let text = text.split("\n\nStack backtrace:").next().unwrap_or_default();
    text.trim().to_owned()
}

/// Compiles `rego` for the gates `gates` (each must be a rule `data.gates.<name>.result`),
/// refusing what could make a decision depend on anything but the log.
pub fn compile(rego: &RegoPolicy, gates: &BTreeSet<String>) -> Result<CompiledGates, String> {
    // A panic in the interpreter's compiler refuses the policy; it must not take down the
    // caller (an append's thread, the worker, the auditor).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compile_unguarded(rego, gates)))
        .unwrap_or_else(|_| Err("rego.modules: the Rego compiler failed on this policy (it panicked)".into()))
}

fn compile_unguarded(rego: &RegoPolicy, gates: &BTreeSet<String>) -> Result<CompiledGates, String> {
    if rego.modules.is_empty() {
        return Err("rego.modules: empty (give at least one module, or leave rego out)".into());
    }
    if rego.modules.len() > MAX_MODULES {
        return Err(format!("rego.modules: {} modules, at most {MAX_MODULES}", rego.modules.len()));
    }
    let bytes: usize = rego.modules.values().map(String::len).sum();
    if bytes > MAX_SOURCE_BYTES {
        return Err(format!("rego.modules: {bytes} bytes of source, at most {MAX_SOURCE_BYTES}"));
    }
    let limit = rego.limit();
    if limit == 0 || limit > MAX_INSTRUCTION_LIMIT {
        return Err(format!("rego.instructionLimit: {limit} is not within 1 to {MAX_INSTRUCTION_LIMIT}"));
    }
    let mut engine = regorus::Engine::new();
    for (name, source) in &rego.modules {
        check_module_name(name).map_err(|e| format!("rego.modules: {e}"))?;
        check_nesting(name, source)?;
        engine
            .add_policy(name.clone(), source.clone())
            .map_err(|e| format!("rego.modules.{name} does not compile: {}", message(&e)))?;
    }
    let mut programs = BTreeMap::new();
    for gate in gates {
        check_gate_name(gate)?;
        let entry = format!("data.gates.{gate}.result");
        let rule: regorus::Rc<str> = entry.as_str().into();
        let mut engine = engine.clone();
        let compiled = engine.compile_with_entrypoint(&rule).map_err(|e| {
            let why = message(&e);
            if why.contains("not a valid rule path") {
                format!("gate {gate}: no rule {entry} in rego.modules (declare `package gates.{gate}` with a `result` rule)")
            } else {
                format!("gate {gate} does not compile: {why}")
            }
        })?;
        let program = Compiler::compile_from_policy(&compiled, &[entry.as_str()])
            .map_err(|e| format!("gate {gate} does not compile: {}", message(&e)))?;
        for builtin in &program.builtin_info_table {
            refuse_builtin(gate, &builtin.name)?;
        }
        programs.insert(gate.clone(), program);
    }
    Ok(CompiledGates { programs, limit: usize::try_from(limit).unwrap_or(usize::MAX) })
}

fn refuse_builtin(gate: &str, name: &str) -> Result<(), String> {
    if let Some((_, why)) = REFUSED_BUILTINS.iter().find(|(n, _)| *n == name) {
        return Err(format!("gate {gate} calls {name}, which {why}: a gate must be a function of its input"));
    }
    if name.starts_with("time.") && !ALLOWED_TIME_BUILTINS.contains(&name) {
        return Err(format!(
            "gate {gate} calls {name}, which reads the clock or the machine's time zone: a decision must be \
             re-derivable from the log alone (use input.evaluation.atNs, the trigger's recordedAt; allowed: {})",
            ALLOWED_TIME_BUILTINS.join(", ")
        ));
    }
    Ok(())
}

impl CompiledGates {
    /// Evaluates `gate` on `input` (the JSON text of the gate input, [`crate::custom_gates`]).
    pub fn evaluate(&self, gate: &str, input: &regorus::Value) -> Result<serde_json::Value, GateError> {
        let program = self
            .programs
            .get(gate)
            .ok_or_else(|| GateError::Failed(format!("gate {gate} is not in the compiled policy")))?;
        let mut vm = RegoVM::new();
        vm.load_program(program.clone());
        vm.set_max_instructions(self.limit);
        vm.set_input(input.clone());
        // A panic inside the interpreter is an error of this gate, not of the evaluation.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.execute()));
        let value = match run {
            Ok(Ok(value)) => value,
            Ok(Err(VmError::InstructionLimitExceeded { .. })) => {
                return Err(GateError::Stopped { limit: self.limit as u64 })
            }
            Ok(Err(e)) => return Err(GateError::Failed(message(&e))),
            Err(_) => return Err(GateError::Failed("the Rego interpreter panicked".into())),
        };
        if value == regorus::Value::Undefined {
            return Err(GateError::Failed(format!("data.gates.{gate}.result is undefined for this input")));
        }
        serde_json::to_value(&value).map_err(|e| GateError::Failed(format!("result is not JSON: {e}")))
    }

    /// The gates compiled.
    pub fn gates(&self) -> impl Iterator<Item = &str> {
        self.programs.keys().map(String::as_str)
    }
}

/// Converts the gate input to the interpreter's value (once per evaluation, shared by every
/// gate of it).
pub fn input_value(input: &serde_json::Value) -> Result<regorus::Value, String> {
    let text = serde_json::to_string(input).map_err(|e| e.to_string())?;
    regorus::Value::from_json_str(&text).map_err(|e| message(&e))
}

/// Compiled policies, most recently used first.
static CACHE: Mutex<Vec<([u8; 32], Arc<CompiledGates>)>> = Mutex::new(Vec::new());
/// One entry per policy in use: a tenant's policy at a time, and a fold of history meets its
/// older versions one after another. With 8 entries, nine tenants evaluated in turn recompiled
/// on every evaluation (2.4 ms instead of 0.2 ms: BENCHMARKS.md, "Custom gates").
const CACHE_ENTRIES: usize = 64;

/// `rego` compiled for `gates`, from the cache when it was compiled before.
pub fn compiled(rego: &RegoPolicy, gates: &BTreeSet<String>) -> Result<Arc<CompiledGates>, String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&serde_json::to_vec(rego).unwrap_or_default());
    for gate in gates {
        hasher.update(gate.as_bytes()).update(b"\n");
    }
    let key = *hasher.finalize().as_bytes();
    {
        let mut cache = CACHE.lock();
        if let Some(at) = cache.iter().position(|(k, _)| *k == key) {
            let hit = cache.remove(at);
            let compiled = hit.1.clone();
            cache.insert(0, hit);
            return Ok(compiled);
        }
    }
    let compiled = Arc::new(compile(rego, gates)?);
    let mut cache = CACHE.lock();
    cache.insert(0, (key, compiled.clone()));
    cache.truncate(CACHE_ENTRIES);
    Ok(compiled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(source: &str) -> RegoPolicy {
        RegoPolicy { modules: BTreeMap::from([("g.rego".to_owned(), source.to_owned())]), instruction_limit: None }
    }

    fn gates(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_gate_evaluates_its_input() {
        let p = policy("package gates.sum\nresult := {\"verdict\": \"pass\", \"observed\": sum(input.xs)} if { sum(input.xs) > 2 }\n");
        let compiled = compile(&p, &gates(&["sum"])).unwrap();
        let input = input_value(&serde_json::json!({"xs": [1, 2, 3]})).unwrap();
        assert_eq!(compiled.evaluate("sum", &input).unwrap(), serde_json::json!({"verdict": "pass", "observed": 6}));
        let small = input_value(&serde_json::json!({"xs": [1]})).unwrap();
        let err = compiled.evaluate("sum", &small).unwrap_err();
        assert!(matches!(&err, GateError::Failed(m) if m.contains("undefined")), "{err:?}");
    }

    #[test]
    fn compile_errors_name_the_module_and_the_place() {
        let err =
            compile(&policy("package gates.x\nresult := {\"verdict\": \"pass\" if {\n"), &gates(&["x"])).unwrap_err();
        assert!(err.starts_with("rego.modules.g.rego does not compile"), "{err}");
        assert!(err.contains("g.rego:2:"), "{err}");
        let err = compile(&policy("package gates.x\nresult := 1\n"), &gates(&["y"])).unwrap_err();
        assert!(err.contains("no rule data.gates.y.result"), "{err}");
        let err = compile(&policy("package gates.x\nresult := foo.bar(1)\n"), &gates(&["x"])).unwrap_err();
        assert!(err.contains("foo.bar"), "{err}");
    }

    #[test]
    fn non_deterministic_builtins_are_refused_by_name() {
        for (call, expect) in [
            ("time.now_ns()", "time.now_ns"),
            ("rand.intn(\"x\", 10)", "rand.intn"),
            ("time.clock([0, \"Local\"])", "time.clock"),
            ("count(numbers.range(1, 10))", "numbers.range"),
        ] {
            let err = compile(&policy(&format!("package gates.x\nresult := {call}\n")), &gates(&["x"])).unwrap_err();
            assert!(err.contains(expect), "{call}: {err}");
        }
        for call in ["http.send({})", "opa.runtime()", "uuid.rfc4122(\"a\")"] {
            let err = compile(&policy(&format!("package gates.x\nresult := {call}\n")), &gates(&["x"])).unwrap_err();
            assert!(err.contains("Unknown function"), "{call}: {err}");
        }
        compile(
            &policy("package gates.x\nresult := time.parse_rfc3339_ns(\"2026-01-01T00:00:00Z\")\n"),
            &gates(&["x"]),
        )
        .unwrap();
    }

    #[test]
    fn a_gate_that_runs_too_long_is_stopped_at_the_same_instruction_every_time() {
        let mut p = policy(
            "package gates.spin\nxs := [i | some i, _ in input.xs]\nresult := count([1 | some a in xs; some b in xs; some c in xs])\n",
        );
        p.instruction_limit = Some(10_000);
        let compiled = compile(&p, &gates(&["spin"])).unwrap();
        let input = input_value(&serde_json::json!({"xs": vec![0; 100]})).unwrap();
        for _ in 0..3 {
            assert_eq!(compiled.evaluate("spin", &input).unwrap_err(), GateError::Stopped { limit: 10_000 });
        }
        let tiny = input_value(&serde_json::json!({"xs": [0, 0]})).unwrap();
        assert_eq!(compiled.evaluate("spin", &tiny).unwrap(), serde_json::json!(8));
    }

    #[test]
    fn deep_nesting_is_refused_before_the_compiler_sees_it() {
        let deep = format!("package gates.x\nresult := {}1{}\n", "[".repeat(20), "]".repeat(20));
        let started = std::time::Instant::now();
        let err = compile(&policy(&deep), &gates(&["x"])).unwrap_err();
        assert!(err.contains("nested more than 6 deep at line 2"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused only after compiling");
        // Brackets in strings and comments do not count; six levels compile.
        let fine = "package gates.x\n# [[[[[[[[[[\nresult := {\"a\": [[[[\"]]]]]]]]]]]][[[[[[[[[\"]]]]}\n";
        compile(&policy(fine), &gates(&["x"])).unwrap();
    }

    #[test]
    fn limits_are_checked() {
        let mut p = policy("package gates.x\nresult := 1\n");
        p.instruction_limit = Some(MAX_INSTRUCTION_LIMIT + 1);
        assert!(compile(&p, &gates(&["x"])).unwrap_err().contains("instructionLimit"));
        assert!(check_gate_name("Slo").is_err() && check_gate_name("9a").is_err() && check_gate_name("").is_err());
        check_gate_name("slo_error_budget").unwrap();
        let bad = RegoPolicy {
            modules: BTreeMap::from([("x.txt".into(), "package gates.x".into())]),
            instruction_limit: None,
        };
        assert!(compile(&bad, &gates(&["x"])).unwrap_err().contains("module name"));
    }

    #[test]
    fn the_cache_returns_the_same_compilation() {
        let p = policy("package gates.c\nresult := 7\n");
        let a = compiled(&p, &gates(&["c"])).unwrap();
        let b = compiled(&p, &gates(&["c"])).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
