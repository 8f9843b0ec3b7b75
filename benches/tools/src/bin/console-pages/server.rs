//! The server: `release-ledger serve` on loopback ports, an operator token, and the wait for
//! its governance worker to catch up.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::Value;

use crate::TENANT;

pub(crate) struct Server {
    child: Child,
    grpc: SocketAddr,
    pub(crate) console: SocketAddr,
}

impl Server {
    pub(crate) fn start(bin: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let log_path = data_dir.with_extension("server.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(bin)
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--console-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).context("reading the listening line")?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let parsed: Value = match serde_json::from_str(&line) {
            Ok(parsed) => parsed,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not start ({line:?}); see {}", log_path.display());
            }
        };
        let addr = |name: &str| -> anyhow::Result<SocketAddr> {
            parsed["server"][name].as_str().and_then(|a| a.parse().ok()).with_context(|| format!("no {name} in {line}"))
        };
        let (grpc, console) = match (addr("grpc"), addr("console")) {
            (Ok(grpc), Ok(console)) => (grpc, console),
            (Err(e), _) | (_, Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Self { child, grpc, console })
    }

    fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGTERM, and wait (SIGKILL after 30 s).
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An operator token from `release-ledger token`.
pub(crate) fn mint_token(bin: &Path, data_dir: &Path, server: &Server) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .args(["token", "--key"])
        .arg(data_dir.join("keys/admin.pem"))
        .args(["--ttl", "1h", "--server", &server.grpc_url()])
        .output()
        .context("running release-ledger token")?;
    ensure!(output.status.success(), "release-ledger token failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Polls `GetGovernanceStatus` until the tenant's lag is 0 on three polls in a row at the same
/// position; returns the position. Progress on stderr every 10 s.
pub(crate) fn wait_caught_up(server: &Server, token: &str, timeout: Duration) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let url = server.grpc_url();
    runtime.block_on(async {
        let started = Instant::now();
        let mut client = loop {
            match proto::v1::query_client::QueryClient::connect(url.clone()).await {
                Ok(client) => break client,
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => bail!("connecting to {url}: {e}"),
            }
        };
        let mut settled = (0u32, u64::MAX);
        let mut reported = Instant::now();
        loop {
            let mut request = tonic::Request::new(proto::v1::GetGovernanceStatusRequest {});
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
            match client.get_governance_status(request).await {
                Ok(status) => {
                    let status = status.into_inner();
                    let tenant = status.tenants.iter().find(|t| t.tenant == TENANT);
                    match tenant {
                        Some(t) if t.lag_entries == 0 => {
                            settled =
                                if settled.1 == t.position { (settled.0 + 1, t.position) } else { (1, t.position) };
                            if settled.0 >= 3 {
                                return Ok(t.position);
                            }
                        }
                        Some(t) => {
                            settled = (0, u64::MAX);
                            if reported.elapsed() > Duration::from_secs(10) {
                                eprintln!(
                                    "  catching up: position {}, lag {}, {:.0} s",
                                    t.position,
                                    t.lag_entries,
                                    started.elapsed().as_secs_f64()
                                );
                                reported = Instant::now();
                            }
                        }
                        None => settled = (0, u64::MAX),
                    }
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {}
                Err(s) => bail!("GetGovernanceStatus: {s}"),
            }
            ensure!(started.elapsed() < timeout, "not caught up after {} s", timeout.as_secs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
