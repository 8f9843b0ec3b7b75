//! Arguments several commands share: the server to talk to, who signs, which release, the
//! ledger key to verify with; and the signing keys they load.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use api::server::{DEFAULT_DATA_DIR, DEFAULT_MAX_MESSAGE_BYTES};
use clap::Args;
use ledger::KeyPair;
use ledger_client::retry::RetryPolicy;

pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// A release to query.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArg {
    #[command(flatten)]
    pub(crate) server: ServerArg,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Release id.
    #[arg(long)]
    pub(crate) release: String,
}

/// Who signs a governance event.
#[derive(Debug, Args)]
pub(crate) struct SignerArgs {
    #[command(flatten)]
    pub(crate) server: ServerArg,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Signing key (PKCS#8 PEM).
    #[arg(long, default_value = "./release-ledger-data/keys/admin.pem")]
    pub(crate) key: PathBuf,
    /// Agent id to append as (default: the key's registered agent).
    #[arg(long)]
    pub(crate) agent: Option<String>,
}

/// Who signs an event about a release.
#[derive(Debug, Args)]
pub(crate) struct ReleaseSigner {
    #[command(flatten)]
    pub(crate) signer: SignerArgs,
    /// Release id.
    #[arg(long)]
    pub(crate) release: String,
    /// After appending, wait (at most --timeout-seconds) until the ledger has evaluated the
    /// event and print where the release stands, e.g. "release-001731 is Delayed:
    /// ChangeFreezeActive". Decisions are made asynchronously; without --wait a `summary` right
    /// after may not show this event's effect yet.
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArg {
    /// Server URL.
    #[arg(long, env = "RELEASE_LEDGER_SERVER", default_value = DEFAULT_SERVER)]
    pub(crate) server: String,
    /// Retries of a connection or call that failed transiently (no connection, UNAVAILABLE,
    /// timeout, server pushback); appends are retried with the same signed bytes, so a retry
    /// never appends twice. 0 tries once.
    #[arg(long, env = "RELEASE_LEDGER_RETRIES", default_value_t = RetryPolicy::default().retries)]
    pub(crate) retries: u32,
    /// How long one connection attempt or call may take before it is retried.
    #[arg(long, env = "RELEASE_LEDGER_TIMEOUT_SECONDS", default_value_t = RetryPolicy::default().timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_seconds: u64,
}

impl ServerArg {
    pub(crate) fn retry(&self) -> RetryPolicy {
        RetryPolicy { retries: self.retries, timeout: std::time::Duration::from_secs(self.timeout_seconds) }
    }

    pub(crate) async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        self.retry().channel(&self.server).await
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<ledger_client::Client> {
        Ok(ledger_client::ledger_client(self.channel().await?, DEFAULT_MAX_MESSAGE_BYTES))
    }

    pub(crate) async fn connect_query(&self) -> anyhow::Result<ledger_client::QueryClient> {
        Ok(ledger_client::query_client(self.channel().await?, DEFAULT_MAX_MESSAGE_BYTES))
    }
}

#[derive(Debug, Args)]
pub(crate) struct LedgerKeyArg {
    /// The ledger public key to verify with (default: ./release-ledger-data/keys/ledger.pub if
    /// present, else the key the server reports, flagged as unpinned).
    #[arg(long)]
    pub(crate) ledger_key: Option<PathBuf>,
}

/// What a command that verifies a release's entries works with: a ledger client, a query
/// client, and the ledger public key with where it came from.
pub(crate) struct Verifying {
    pub(crate) client: ledger_client::Client,
    pub(crate) query: ledger_client::QueryClient,
    pub(crate) key: ed25519_dalek::VerifyingKey,
    pub(crate) provenance: String,
}

impl LedgerKeyArg {
    /// Connects to `server` and settles the ledger key to verify with.
    pub(crate) async fn connect(&self, server: &ServerArg) -> anyhow::Result<Verifying> {
        let mut client = server.connect().await?;
        let query = server.connect_query().await?;
        let (key, provenance) =
            ledger_client::ledger_public_key(&mut client, self.ledger_key.as_deref(), &default_ledger_pub()).await?;
        Ok(Verifying { client, query, key, provenance })
    }
}

/// An RFC 3339 timestamp, as given.
pub(crate) fn rfc3339(text: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not an RFC 3339 timestamp such as 2026-05-23T09:32:00Z: {e}"))
}

/// A signing key: PKCS#8 PEM, plain or encrypted. An encrypted key's passphrase comes from
/// `RELEASE_LEDGER_KEY_PASSPHRASE` or from the file `RELEASE_LEDGER_KEY_PASSPHRASE_FILE`
/// names (one trailing newline dropped), never from a flag, which other users could read
/// in the process list.
pub(crate) fn load_key(path: &Path) -> anyhow::Result<KeyPair> {
    let passphrase = key_passphrase()?;
    KeyPair::load_with_passphrase(path, passphrase.as_deref())
        .with_context(|| format!("loading key {}", path.display()))
}

/// Signs this process in as an operator with the server's admin key at `path` (its token then
/// goes with every request); a key that is not the server's is refused before anything else.
pub(crate) async fn sign_in_as_operator(channel: &tonic::transport::Channel, path: &Path) -> anyhow::Result<()> {
    let key = load_key(path)?;
    let mut client = ledger_client::ledger_client(channel.clone(), ledger_client::DEFAULT_MAX_MESSAGE_BYTES);
    let info = client.get_info(proto::v1::GetInfoRequest {}).await.map_err(ledger_client::refused)?.into_inner();
    if key.key_id().to_hex() != info.admin_key_id {
        anyhow::bail!(crate::Refusal(format!(
            "{} is not the server's admin key ({})",
            path.display(),
            info.admin_key_id
        )));
    }
    ledger_client::sign_in(&info, "", &key, ledger_client::SIGN_IN_TTL)?;
    Ok(())
}

pub(crate) fn key_passphrase() -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(passphrase) = std::env::var_os("RELEASE_LEDGER_KEY_PASSPHRASE") {
        return Ok(Some(passphrase.into_encoded_bytes()));
    }
    let Some(file) = std::env::var_os("RELEASE_LEDGER_KEY_PASSPHRASE_FILE") else { return Ok(None) };
    let mut bytes = std::fs::read(&file)
        .with_context(|| format!("reading RELEASE_LEDGER_KEY_PASSPHRASE_FILE {}", Path::new(&file).display()))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(Some(bytes))
}

pub(crate) fn default_ledger_pub() -> PathBuf {
    Path::new(DEFAULT_DATA_DIR).join("keys/ledger.pub")
}
