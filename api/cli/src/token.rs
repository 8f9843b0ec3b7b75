//! `release-ledger token`: mints a reader token, and the client credential flags every
//! client command takes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use ledger_client::auth::{Credentials, TokenSource};

use crate::args::{load_key, ServerArg};

/// How client commands authenticate and verify the server (each flag, else its environment
/// variable).
#[derive(Debug, Args)]
pub(crate) struct CredentialArgs {
    /// Bearer token sent with every request (mint one with `release-ledger token`).
    #[arg(long, global = true, env = "RELEASE_LEDGER_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the bearer token (read again every 10 s, so a renewed token is picked up).
    #[arg(long, global = true, env = "RELEASE_LEDGER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// CA bundle (PEM) that an https:// server's certificate is verified against (default:
    /// the system's roots).
    #[arg(long, global = true, env = "RELEASE_LEDGER_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for servers that ask for one (mTLS); with --client-key.
    #[arg(long, global = true, env = "RELEASE_LEDGER_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Client private key (PEM); with --client-cert.
    #[arg(long, global = true, env = "RELEASE_LEDGER_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

impl CredentialArgs {
    /// The process's credentials for every client this run makes.
    pub(crate) fn install(&self) {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(TokenSource::Value(token.trim().to_owned())),
            (None, Some(path)) => Some(TokenSource::File(path.clone())),
            (None, None) => None,
        };
        ledger_client::auth::set(Credentials {
            token,
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        });
    }
}

/// `release-ledger token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The signing key (PKCS#8 PEM; an encrypted one takes its passphrase from
    /// RELEASE_LEDGER_KEY_PASSPHRASE or RELEASE_LEDGER_KEY_PASSPHRASE_FILE): a key registered
    /// in --tenant's log (a Reader or Auditor role lets the token read the tenant), or the
    /// data dir's admin key without --tenant (an operator token: every tenant).
    #[arg(long)]
    key: PathBuf,
    /// The tenant whose registry holds the key.
    #[arg(long)]
    tenant: Option<String>,
    /// The agent id the key is registered to, as the token's subject (default: the key id,
    /// which the server accepts as well).
    #[arg(long, requires = "tenant")]
    agent: Option<String>,
    /// Lifetime: seconds, or a number with s, m or h (the server accepts at most its
    /// --max-token-lifetime-seconds, one hour by default).
    #[arg(long, default_value = "15m", value_parser = parse_ttl)]
    ttl: Duration,
    /// The ledger's origin prefix (the token's audience); default: asked of --server.
    #[arg(long)]
    audience: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

/// `15m`, `900s`, `1h`, `900`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("the lifetime must be at least 1 s".into());
    }
    Ok(duration)
}

/// `15m`, `900s`, `1h`, `900`, `0`: a duration in whole seconds, minutes or hours.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?}: give seconds, or a number with s, m or h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Mints and prints the token.
pub(crate) async fn token(args: TokenArgs, json: bool) -> anyhow::Result<()> {
    let key = load_key(&args.key)?;
    let audience = match args.audience {
        Some(audience) => audience,
        None => {
            let mut client = args.server.connect().await?;
            let info = client
                .get_info(proto::v1::GetInfoRequest {})
                .await
                .map_err(ledger_client::connect::refused)
                .context("asking the server for its origin prefix (or give --audience)")?
                .into_inner();
            info.origin_prefix
        }
    };
    let subject = match (&args.agent, &args.tenant) {
        (Some(agent), _) => agent.clone(),
        (None, Some(_)) => key.key_id().to_hex(),
        (None, None) => ledger_wire::token::ADMIN_SUBJECT.to_owned(),
    };
    let subject = subject.as_str();
    let now = ledger_wire::token::unix_now();
    let token = ledger_wire::token::mint(&key, subject, args.tenant.as_deref(), &audience, args.ttl, now)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "token": token, "keyId": key.key_id().to_hex(), "tenant": args.tenant, "subject": subject,
                "audience": audience, "expiresAt": now + args.ttl.as_secs(),
            })
        );
    } else {
        println!("{token}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_with_their_units() {
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("5d").is_err());
        assert!(parse_ttl("m").is_err());
    }
}
