//! A `release-ledger serve` child on loopback ports: started, waited for (its
//! `{"event":"listening",...}` line), stopped with SIGTERM and measured, or killed.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde::Serialize;

use crate::procfs::dir_bytes;

/// Where the server's stderr (its log) goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerLog {
    /// To `DATA_DIR.server.log` (or `server.log` beside a temporary data dir): counted and
    /// sampled by [`SpawnedServer::stop_and_measure`], quoted when the server does not start.
    File,
    /// Nowhere.
    Discard,
}

/// `release-ledger` next to this executable.
pub fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let bin = exe.with_file_name("release-ledger");
    if !bin.is_file() {
        bail!(
            "no release-ledger next to {} (build it: cargo build --release -p api --bins), or pass --server-bin",
            exe.display()
        );
    }
    Ok(bin)
}

/// A `release-ledger serve` child; SIGKILLed when dropped unless stopped first.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    bin: PathBuf,
    grpc: std::net::SocketAddr,
    data_dir: PathBuf,
    log: Option<PathBuf>,
    /// The temporary dir holding the data dir and log, when no data dir was given.
    _temp: Option<tempfile::TempDir>,
}

/// How the spawned server ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// From SIGTERM to exit.
    pub seconds: f64,
    /// Its exit status.
    pub exit: String,
    /// Whether it exited successfully.
    pub clean: bool,
    /// Bytes in the data dir before it was removed.
    pub data_dir_bytes: u64,
    /// Lines of its log at WARN or ERROR level.
    pub log_warnings: usize,
    /// The first few of them.
    pub log_warning_samples: Vec<String>,
}

impl SpawnedServer {
    /// How long after SIGTERM before SIGKILL (the server's own grace period is 10 s).
    const STOP_TIMEOUT: Duration = Duration::from_secs(20);

    /// Starts `bin serve` on loopback ports over `data_dir` (default: a fresh temp dir, deleted
    /// when this is dropped) and waits up to `start_timeout` for its listening line.
    pub fn start(bin: &Path, data_dir: Option<&Path>, log: ServerLog, start_timeout: Duration) -> anyhow::Result<Self> {
        let (temp, data_dir, log_path) = match data_dir {
            Some(dir) => (None, dir.to_path_buf(), dir.with_extension("server.log")),
            None => {
                let temp = tempfile::Builder::new().prefix("ledger-bench-").tempdir().context("creating a temp dir")?;
                let data = temp.path().join("data");
                let log = temp.path().join("server.log");
                (Some(temp), data, log)
            }
        };
        let (stderr, log) = match log {
            ServerLog::File => {
                let file =
                    std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
                (Stdio::from(file), Some(log_path))
            }
            ServerLog::Discard => (Stdio::null(), None),
        };
        let mut child = Command::new(bin)
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("the server's stdout was not captured")?;
        // Read the first line on a thread (with a timeout), then keep draining stdout.
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = line_tx.send(read);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server =
            Self { child, bin: bin.to_path_buf(), grpc: ([127, 0, 0, 1], 0).into(), data_dir, log, _temp: temp };
        let line = match line_rx.recv_timeout(start_timeout) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(server.startup_failure(&format!("reading its stdout: {e}"))),
            Err(_) => {
                let what = format!("no listening line within {} s", start_timeout.as_secs());
                return Err(server.startup_failure(&what));
            }
        };
        let parsed: serde_json::Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(_) if line.is_empty() => return Err(server.startup_failure("it printed nothing and closed its stdout")),
            Err(_) => return Err(server.startup_failure(&format!("unexpected first line {line:?}"))),
        };
        let grpc = parsed["server"]["grpc"].as_str().and_then(|addr| addr.parse().ok());
        match (parsed["event"].as_str(), grpc) {
            (Some("listening"), Some(grpc)) => server.grpc = grpc,
            _ => return Err(server.startup_failure(&format!("unexpected first line {line:?}"))),
        }
        Ok(server)
    }

    /// The binary that runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Its gRPC URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// An error naming why the server did not start, with the tail of its log.
    fn startup_failure(&mut self, what: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let Some(log) = &self.log else {
            return anyhow!("the server {} did not start ({what}; {status})", self.bin.display());
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        anyhow!(
            "the server {} did not start ({what}; {status}); log {}:\n{}",
            self.bin.display(),
            log.display(),
            tail.join("\n")
        )
    }

    /// SIGKILL (a crash, as `kill -9`), and wait for the exit.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the server")?;
        self.child.wait().context("waiting for the killed server")?;
        Ok(())
    }

    /// SIGTERM, wait for the exit (SIGKILL after 20 s), and report.
    pub fn stop_and_measure(&mut self) -> anyhow::Result<Shutdown> {
        let pid = self.child.id().to_string();
        let started = Instant::now();
        let exited_early = self.child.try_wait().context("checking on the server")?;
        if exited_early.is_none() {
            let status = Command::new("kill").args(["-TERM", &pid]).status().context("running kill -TERM")?;
            if !status.success() {
                bail!("kill -TERM {pid} failed ({status})");
            }
        }
        let exit = loop {
            if let Some(exit) = self.child.try_wait().context("waiting for the server")? {
                break exit;
            }
            if started.elapsed() > Self::STOP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the server did not exit within {:?} of SIGTERM; killed it", Self::STOP_TIMEOUT);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let seconds = started.elapsed().as_secs_f64();
        let log = self.log.as_ref().and_then(|log| std::fs::read_to_string(log).ok()).unwrap_or_default();
        let warnings: Vec<&str> =
            log.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
        Ok(Shutdown {
            seconds,
            exit: match exited_early {
                Some(_) => format!("{exit} (before the bench asked it to stop)"),
                None => exit.to_string(),
            },
            clean: exited_early.is_none() && exit.success(),
            data_dir_bytes: dir_bytes(&self.data_dir),
            log_warnings: warnings.len(),
            log_warning_samples: warnings.iter().take(5).map(|line| (*line).to_owned()).collect(),
        })
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
