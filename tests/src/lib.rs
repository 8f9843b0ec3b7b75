//! The test kit: a temporary ledger, agent keys, and signed event builders, shared by the
//! integration tests and the benchmarks so both drive the ledger exactly as an agent would.

#![deny(missing_docs)]

pub mod corruption;
pub mod erasure;
pub mod gov;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ledger::{AppendEvent, Config, Envelope, ExpectedVersion, KeyPair, Ledger, ManualClock, Receipt};

/// The event timestamp every kit event carries (authors' `occurredAt` is informational).
pub const OCCURRED_AT: &str = "2025-05-23T09:32:00Z";

/// A ledger in a temporary data dir, with its admin key loaded and a manual clock.
#[derive(Debug)]
pub struct TestLedger {
    /// The open ledger.
    pub ledger: Ledger,
    /// The data dir's admin key (read from `keys/admin.pem`).
    pub admin: KeyPair,
    /// The clock the ledger reads.
    pub clock: Arc<ManualClock>,
    /// Keeps the data dir alive.
    pub dir: tempfile::TempDir,
}

/// A fresh temporary ledger with default settings.
pub fn temp_ledger() -> TestLedger {
    temp_ledger_with(Config::default())
}

/// A fresh temporary ledger with `config` (its clock is replaced by a manual one).
pub fn temp_ledger_with(mut config: Config) -> TestLedger {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000_000));
    config.clock = clock.clone();
    let ledger = Ledger::open(dir.path(), config).expect("open ledger");
    let admin = KeyPair::load(&dir.path().join("keys/admin.pem")).expect("admin key");
    TestLedger { ledger, admin, clock, dir }
}

impl TestLedger {
    /// Closes and reopens the ledger on the same data dir (same clock).
    pub fn reopen(self) -> Self {
        let TestLedger { ledger, admin, clock, dir } = self;
        let config = Config { clock: clock.clone(), ..ledger.config().clone() };
        drop(ledger);
        let ledger = Ledger::open(dir.path(), config).expect("reopen ledger");
        TestLedger { ledger, admin, clock, dir }
    }

    /// Registers a new agent key in `tenant` with `roles` and `types` (signed by the admin
    /// key) and returns it.
    pub fn agent(&self, tenant: &str, agent_id: &str, roles: &[&str], types: &[&str]) -> Agent {
        let key = KeyPair::generate();
        let body = register_key_body(tenant, agent_id, &key, roles, types);
        let _ = self.ledger.append(AppendEvent::new(Envelope::sign(body, &self.admin))).expect("register agent key");
        Agent { tenant: tenant.to_owned(), agent_id: agent_id.to_owned(), key, counter: Arc::new(AtomicU64::new(0)) }
    }
}

/// The body of an `AgentKeyRegistered` event for `key`.
pub fn register_key_body(tenant: &str, agent_id: &str, key: &KeyPair, roles: &[&str], types: &[&str]) -> Vec<u8> {
    body(
        tenant,
        "keys",
        "AgentKeyRegistered",
        &format!("register-{}", key.key_id()),
        "admin",
        serde_json::json!({
            "agentId": agent_id, "publicKey": key.public_key_base64(), "roles": roles, "eventTypes": types,
        }),
    )
}

/// An event body with the given header fields and `data`.
pub fn body(
    tenant: &str,
    stream: &str,
    event_type: &str,
    event_id: &str,
    agent_id: &str,
    data: serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "tenant": tenant, "stream": stream, "type": event_type, "eventId": event_id,
        "occurredAt": OCCURRED_AT, "traceId": "trace-1", "releaseId": "release-1",
        "actor": { "agentId": agent_id }, "data": data,
    }))
    .expect("serialise body")
}

/// A registered agent key and a counter for unique event ids.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Its tenant.
    pub tenant: String,
    /// Its agent id.
    pub agent_id: String,
    /// Its key.
    pub key: KeyPair,
    counter: Arc<AtomicU64>,
}

impl Agent {
    /// An agent signing with `key` as `agent_id` in `tenant`, registered or not (to test what a
    /// key that is not registered can do).
    pub fn from_key(tenant: &str, agent_id: &str, key: KeyPair) -> Self {
        Self { tenant: tenant.to_owned(), agent_id: agent_id.to_owned(), key, counter: Arc::new(AtomicU64::new(0)) }
    }

    /// A signed `TestsPassed` event on `stream` with a fresh event id and about
    /// `payload_bytes` of padding in `data`.
    pub fn event(&self, stream: &str, payload_bytes: usize) -> AppendEvent {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.event_with_id(stream, &format!("{}-{n}", self.agent_id), payload_bytes)
    }

    /// A signed `TestsPassed` event with a given event id.
    pub fn event_with_id(&self, stream: &str, event_id: &str, payload_bytes: usize) -> AppendEvent {
        let data = serde_json::json!({
            "module": "billing", "version": "1.4.2", "suite": "unit", "passed": 120, "failed": 0,
            "notes": "x".repeat(payload_bytes),
        });
        let payload = body(&self.tenant, stream, "TestsPassed", event_id, &self.agent_id, data);
        AppendEvent::new(Envelope::sign(payload, &self.key))
    }

    /// Signs an arbitrary body with this agent's key.
    pub fn sign(&self, payload: Vec<u8>) -> AppendEvent {
        AppendEvent::new(Envelope::sign(payload, &self.key))
    }
}

/// Sets the expected version of an event.
pub fn expecting(mut event: AppendEvent, expected: ExpectedVersion) -> AppendEvent {
    event.expected_version = expected;
    event
}

/// Appends and returns the receipt, panicking with the error on failure.
pub fn must_append(ledger: &Ledger, event: AppendEvent) -> Receipt {
    ledger.append(event).unwrap_or_else(|e| panic!("append failed: {e}"))
}

/// Reads a whole tenant log (for assertions).
pub fn all_entries(ledger: &Ledger, tenant: &str) -> Vec<ledger::Entry> {
    ledger.entries(tenant, 0, u64::MAX).expect("entries").map(|e| e.expect("entry")).collect()
}

/// The size of a data dir on disk, in bytes.
pub fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Appends, panicking with the error on failure; for set-up steps whose receipt is not needed.
pub fn append_ok(ledger: &Ledger, event: AppendEvent) {
    let _ = must_append(ledger, event);
}

/// `tests/interop/` of the workspace: the Python interop checks.
pub fn interop_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// The interop venv's python (made by `scripts/setup.sh --python`, at `$RELEASE_LEDGER_VENV`,
/// by default `/var/tmp/release-ledger-venv`), checked to be built from the current
/// `requirements.txt`. Panics with the fix when it is missing or stale: interop tests fail,
/// never skip.
pub fn interop_python() -> std::path::PathBuf {
    use std::process::Command;
    let venv = std::env::var_os("RELEASE_LEDGER_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/var/tmp/release-ledger-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "the Python interop venv is missing ({} does not exist): run scripts/setup.sh --python",
        python.display()
    );
    let stamp = std::fs::read_to_string(venv.join(".requirements.sha256")).unwrap_or_default();
    let requirements = interop_dir().join("requirements.txt");
    let digest = Command::new(&python)
        .args(["-c", "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())"])
        .arg(&requirements)
        .output()
        .expect("run the venv's python");
    assert!(digest.status.success(), "{} does not run: run scripts/setup.sh --python", python.display());
    assert_eq!(
        stamp.trim(),
        String::from_utf8_lossy(&digest.stdout).trim(),
        "the Python interop venv {} was not built from the current {}: run scripts/setup.sh --python",
        venv.display(),
        requirements.display()
    );
    python
}

/// Go's reference transparency-log code as a command: `tests/interop/go/tlogcheck` (over
/// `golang.org/x/mod/sumdb/{note,tlog}` from Debian's `golang-golang-x-mod-dev`, installed by
/// `scripts/setup.sh --python`), built in GOPATH mode, offline. Panics with the fix when Go or
/// the package is missing: interop tests fail, never skip.
///
/// The binary is kept in `bin/` of the directory that holds Go's build cache
/// (`RELEASE_LEDGER_GOCACHE`, default `/var/tmp/release-ledger-gocache`; if it is cleared, the
/// next test builds it again) under a name that is a BLAKE3 of what it is built from
/// (the command's sources, the x/mod packages it uses and `go version`), so that every test
/// process reuses it and a change to any of them builds a new one. It was built into a
/// temporary directory per test process, held by a `static`, which is never dropped: each run
/// of the test command left six in TMPDIR.
pub fn go_tlogcheck() -> std::path::PathBuf {
    use std::process::Command;
    use std::sync::OnceLock;
    static BUILT: OnceLock<std::path::PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            const GOPATH: &str = "/usr/share/gocode";
            let xmod = Path::new(GOPATH).join("src/golang.org/x/mod/sumdb");
            assert!(
                xmod.join("tlog").is_dir(),
                "golang.org/x/mod is missing from {GOPATH}: run scripts/setup.sh --python \
                 (it installs golang-go and golang-golang-x-mod-dev)"
            );
            let source = interop_dir().join("go/tlogcheck");
            let go_version = Command::new("go")
                .arg("version")
                .output()
                .unwrap_or_else(|e| panic!("cannot run go ({e}): run scripts/setup.sh --python"));
            let mut hasher = blake3::Hasher::new();
            hasher.update(&go_version.stdout);
            for dir in [source.clone(), xmod.join("tlog"), xmod.join("note")] {
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
                    .map(|entry| entry.expect("directory entry").path())
                    .filter(|path| path.extension().is_some_and(|e| e == "go"))
                    .collect();
                files.sort();
                for file in files {
                    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
                    hasher.update(file.to_string_lossy().as_bytes());
                    hasher.update(&(bytes.len() as u64).to_le_bytes());
                    hasher.update(&bytes);
                }
            }
            let gocache: std::path::PathBuf = std::env::var_os("RELEASE_LEDGER_GOCACHE")
                .unwrap_or_else(|| "/var/tmp/release-ledger-gocache".into())
                .into();
            let bin = gocache.join("bin");
            let binary = bin.join(format!("tlogcheck-{}", &hasher.finalize().to_hex()[..16]));
            if binary.is_file() {
                return binary;
            }
            std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("cannot create {}: {e}", bin.display()));
            // Built under a name of this process's own, then renamed into place: test
            // processes running at once each build, and the last rename wins with the same bytes.
            let partial = bin.join(format!(".tlogcheck-{}", std::process::id()));
            let output = Command::new("go")
                .args(["build", "-o"])
                .arg(&partial)
                .arg(".")
                .current_dir(&source)
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOFLAGS", "")
                .env("GOPROXY", "off")
                .env("GOCACHE", &gocache)
                .output()
                .unwrap_or_else(|e| panic!("cannot run go ({e}): run scripts/setup.sh --python"));
            assert!(output.status.success(), "go build tlogcheck failed:\n{}", String::from_utf8_lossy(&output.stderr));
            std::fs::rename(&partial, &binary)
                .unwrap_or_else(|e| panic!("cannot move {} to {}: {e}", partial.display(), binary.display()));
            binary
        })
        .clone()
}

/// Runs [`go_tlogcheck`] with `args`, `stdin` written to it; its output (exit status 0: the
/// artefact verifies, 1: it does not, reason on stderr).
pub fn run_go_tlogcheck<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(go_tlogcheck())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tlogcheck");
    child.stdin.take().expect("stdin piped").write_all(stdin.as_bytes()).expect("write tlogcheck's stdin");
    child.wait_with_output().expect("tlogcheck's output")
}
