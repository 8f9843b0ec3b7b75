//! The settings of `serve`: each comes from a flag, else its environment variable, else the
//! TOML config file, else its default. The command line parser (in the CLI) merges a flag with
//! its environment variable; [`resolve`] merges the layers it is given, first wins, with the
//! defaults and checks the result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::connections::ConnectionOptions;
use crate::server::{
    ServeOptions, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_METRICS_LISTEN,
    DEFAULT_SHUTDOWN_GRACE,
};
use crate::telemetry::LogFormat;
use crate::witnessing::{WitnessingOptions, DEFAULT_WITNESS_INTERVAL};

/// One layer of `serve` settings: the command line's, or the config file's (the same names,
/// as TOML keys). Unset is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Data dir.
    pub data_dir: Option<PathBuf>,
    /// gRPC address.
    pub listen: Option<SocketAddr>,
    /// Prometheus /metrics address.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest gRPC message, bytes.
    pub max_message_bytes: Option<usize>,
    /// Largest event payload, bytes.
    pub max_payload_bytes: Option<usize>,
    /// Seconds a graceful shutdown waits for open connections.
    pub shutdown_grace_seconds: Option<u64>,
    /// Free bytes the data dir's filesystem keeps in reserve.
    pub min_free_bytes: Option<u64>,
    /// Microseconds a lone single-event append waits awake for its answer.
    pub answer_spin_us: Option<u64>,
    /// Largest number of open gRPC connections.
    pub max_connections: Option<usize>,
    /// Seconds a new connection has to send the HTTP/2 preface.
    pub handshake_timeout_seconds: Option<u64>,
    /// Seconds without a byte before a connection is closed (0: never).
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds of quiet before the server PINGs a connection (0: off).
    pub keepalive_interval_seconds: Option<u64>,
    /// Seconds a PING may wait for its acknowledgement.
    pub keepalive_timeout_seconds: Option<u64>,
    /// Log format on stderr.
    pub log_format: Option<LogFormat>,
    /// Checkpoint origin prefix of a new store (a schema-less URL such as `ledger.example.com`).
    pub origin_prefix: Option<String>,
    /// C2SP tlog-tiles HTTP address (unset: no tiles served).
    pub tiles_listen: Option<SocketAddr>,
    /// The web console's HTTP address (unset: no console; docs/console.md).
    pub console_listen: Option<SocketAddr>,
    /// C2SP tlog-policy file: the witnesses to submit checkpoints to, and the quorum.
    pub witness_policy: Option<PathBuf>,
    /// Seconds between witnessing rounds.
    pub witness_interval_seconds: Option<u64>,
    /// TLS certificate chain (PEM) of the gRPC port.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that client certificates are verified against (mTLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Require a client certificate (with `tls_client_ca`).
    pub tls_require_client_cert: Option<bool>,
    /// Serve plaintext gRPC on a non-loopback address.
    pub insecure_plaintext: Option<bool>,
    /// Serve /metrics over TLS with the gRPC certificate.
    pub metrics_tls: Option<bool>,
    /// Checkpoints and proofs need a reader of the tenant too (default: public).
    pub private_transparency: Option<bool>,
    /// Longest reader token lifetime accepted, seconds.
    pub max_token_lifetime_seconds: Option<u64>,
    /// TOML file mapping client certificates to principals.
    pub client_principals: Option<PathBuf>,
    /// TOML file of trusted OIDC issuers.
    pub oidc: Option<PathBuf>,
    /// Cluster file: serve as one node of a replicated cluster (docs/replication.md).
    pub cluster: Option<PathBuf>,
}

impl ServeSettings {
    /// Reads a TOML config file (unknown keys are refused).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Parses TOML config text (unknown keys are refused).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Each setting of `self`, else of `lower`.
    pub fn or(self, lower: Self) -> Self {
        Self {
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            metrics_listen: self.metrics_listen.or(lower.metrics_listen),
            max_message_bytes: self.max_message_bytes.or(lower.max_message_bytes),
            max_payload_bytes: self.max_payload_bytes.or(lower.max_payload_bytes),
            shutdown_grace_seconds: self.shutdown_grace_seconds.or(lower.shutdown_grace_seconds),
            min_free_bytes: self.min_free_bytes.or(lower.min_free_bytes),
            answer_spin_us: self.answer_spin_us.or(lower.answer_spin_us),
            max_connections: self.max_connections.or(lower.max_connections),
            handshake_timeout_seconds: self.handshake_timeout_seconds.or(lower.handshake_timeout_seconds),
            idle_timeout_seconds: self.idle_timeout_seconds.or(lower.idle_timeout_seconds),
            keepalive_interval_seconds: self.keepalive_interval_seconds.or(lower.keepalive_interval_seconds),
            keepalive_timeout_seconds: self.keepalive_timeout_seconds.or(lower.keepalive_timeout_seconds),
            log_format: self.log_format.or(lower.log_format),
            origin_prefix: self.origin_prefix.or(lower.origin_prefix),
            tiles_listen: self.tiles_listen.or(lower.tiles_listen),
            console_listen: self.console_listen.or(lower.console_listen),
            witness_policy: self.witness_policy.or(lower.witness_policy),
            witness_interval_seconds: self.witness_interval_seconds.or(lower.witness_interval_seconds),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_client_ca: self.tls_client_ca.or(lower.tls_client_ca),
            tls_require_client_cert: self.tls_require_client_cert.or(lower.tls_require_client_cert),
            insecure_plaintext: self.insecure_plaintext.or(lower.insecure_plaintext),
            metrics_tls: self.metrics_tls.or(lower.metrics_tls),
            private_transparency: self.private_transparency.or(lower.private_transparency),
            max_token_lifetime_seconds: self.max_token_lifetime_seconds.or(lower.max_token_lifetime_seconds),
            client_principals: self.client_principals.or(lower.client_principals),
            oidc: self.oidc.or(lower.oidc),
            cluster: self.cluster.or(lower.cluster),
        }
    }
}

/// What `serve` runs with: the options and the log format.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The server's options.
    pub options: ServeOptions,
    /// The log format.
    pub log_format: LogFormat,
}

/// Merges `layers` (highest precedence first: flag, environment, file), then the defaults,
/// and checks the result; a zero idle timeout or keepalive interval turns it off.
pub fn resolve(layers: impl IntoIterator<Item = ServeSettings>) -> anyhow::Result<Resolved> {
    let s = layers.into_iter().fold(ServeSettings::default(), |merged, lower| merged.or(lower));
    let parse =
        |text: &str| -> anyhow::Result<SocketAddr> { text.parse().with_context(|| format!("bad address {text}")) };
    let options = ServeOptions {
        data_dir: s.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen: match s.listen {
            Some(addr) => addr,
            None => parse(DEFAULT_LISTEN)?,
        },
        metrics_listen: match s.metrics_listen {
            Some(addr) => addr,
            None => parse(DEFAULT_METRICS_LISTEN)?,
        },
        max_message_bytes: s.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        max_payload_bytes: s.max_payload_bytes.unwrap_or(ledger::event::DEFAULT_MAX_PAYLOAD_BYTES),
        shutdown_grace: s.shutdown_grace_seconds.map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_secs),
        min_free_bytes: s.min_free_bytes.unwrap_or(ledger::store::DEFAULT_MIN_FREE_BYTES),
        answer_spin: s.answer_spin_us.map_or(ledger::store::DEFAULT_ANSWER_SPIN, Duration::from_micros),
        connections: connection_options(&s)?,
        origin_prefix: match s.origin_prefix.clone() {
            Some(prefix) => {
                ledger::store::check_origin_prefix(&prefix).map_err(anyhow::Error::msg)?;
                Some(prefix)
            }
            None => None,
        },
        tiles_listen: match s.tiles_listen {
            Some(_) if s.private_transparency.unwrap_or(false) => {
                bail!("tiles are served to anyone: with private_transparency, serve no tiles (drop tiles_listen)")
            }
            tiles => tiles,
        },
        console_listen: s.console_listen,
        witnessing: witnessing_options(&s)?,
        tls: tls_files(&s)?,
        insecure_plaintext: s.insecure_plaintext.unwrap_or(false),
        metrics_tls: match (s.metrics_tls.unwrap_or(false), &s.tls_cert) {
            (true, None) => bail!("metrics_tls needs tls_cert and tls_key"),
            (on, _) => on,
        },
        access: access_policy(&s)?,
        cluster: s.cluster.as_deref().map(crate::cluster::ClusterConfig::load).transpose()?,
    };
    Ok(Resolved { options, log_format: s.log_format.unwrap_or(LogFormat::Text) })
}

/// The TLS files: certificate and key together; client CA settings need them.
fn tls_files(s: &ServeSettings) -> anyhow::Result<Option<crate::tls::TlsFiles>> {
    let require = s.tls_require_client_cert.unwrap_or(false);
    match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => {
            if require && s.tls_client_ca.is_none() {
                bail!("tls_require_client_cert needs tls_client_ca (the CA bundle client certificates are verified against)");
            }
            Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: s.tls_client_ca.clone(),
                require_client_cert: require,
            }))
        }
        (None, None) => {
            if s.tls_client_ca.is_some() || require {
                bail!("client certificates need TLS: give tls_cert and tls_key too");
            }
            Ok(None)
        }
        (Some(_), None) => bail!("tls_cert needs tls_key"),
        (None, Some(_)) => bail!("tls_key needs tls_cert"),
    }
}

/// Who may call what.
fn access_policy(s: &ServeSettings) -> anyhow::Result<crate::access::AccessPolicy> {
    let max_token_lifetime = match s.max_token_lifetime_seconds {
        Some(0) => bail!("max_token_lifetime_seconds must be at least 1"),
        Some(seconds) => Duration::from_secs(seconds),
        None => ledger_wire::token::DEFAULT_MAX_LIFETIME,
    };
    let certificates = match &s.client_principals {
        Some(path) => {
            if s.tls_client_ca.is_none() {
                bail!("client_principals needs tls_client_ca: without it no client certificate is asked for");
            }
            crate::access::CertificatePrincipals::load(path)?
        }
        None => crate::access::CertificatePrincipals::default(),
    };
    let oidc = match &s.oidc {
        Some(path) => crate::oidc::Oidc::new(crate::oidc::OidcConfig::load(path)?)?,
        None => crate::oidc::Oidc::default(),
    };
    Ok(crate::access::AccessPolicy {
        public_transparency: !s.private_transparency.unwrap_or(false),
        max_token_lifetime,
        certificates: std::sync::Arc::new(certificates),
        oidc: std::sync::Arc::new(oidc),
    })
}

/// The witnessing settings: a policy file (read and checked now, so a bad one stops the start)
/// and the interval.
fn witnessing_options(s: &ServeSettings) -> anyhow::Result<Option<WitnessingOptions>> {
    let interval = s.witness_interval_seconds.map_or(DEFAULT_WITNESS_INTERVAL, Duration::from_secs);
    if interval.is_zero() {
        bail!("witness_interval_seconds must be at least 1");
    }
    let Some(path) = &s.witness_policy else {
        if s.witness_interval_seconds.is_some() {
            bail!("witness_interval_seconds needs witness_policy");
        }
        return Ok(None);
    };
    let policy = witness::Policy::from_file(path)?;
    if policy.witnesses.iter().all(|w| w.url.is_none()) {
        bail!("witness policy {}: no witness has a URL to submit checkpoints to", path.display());
    }
    Ok(Some(WitnessingOptions { policy, interval }))
}

/// The connection settings, defaults applied and checked.
fn connection_options(s: &ServeSettings) -> anyhow::Result<ConnectionOptions> {
    let defaults = ConnectionOptions::default();
    let max_connections = s.max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    let handshake_timeout = s.handshake_timeout_seconds.map_or(defaults.handshake_timeout, Duration::from_secs);
    if handshake_timeout.is_zero() {
        bail!("handshake_timeout_seconds must be at least 1");
    }
    let keepalive_timeout = s.keepalive_timeout_seconds.map_or(defaults.keepalive_timeout, Duration::from_secs);
    if keepalive_timeout.is_zero() {
        bail!("keepalive_timeout_seconds must be at least 1");
    }
    let off_when_zero = |value: Option<u64>, default: Option<Duration>| match value {
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds)),
        None => default,
    };
    Ok(ConnectionOptions {
        max_connections,
        handshake_timeout,
        idle_timeout: off_when_zero(s.idle_timeout_seconds, defaults.idle_timeout),
        keepalive_interval: off_when_zero(s.keepalive_interval_seconds, defaults.keepalive_interval),
        keepalive_timeout,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn listen(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn a_flag_beats_the_environment_beats_the_file_beats_the_default() {
        let flag = ServeSettings { listen: listen(1), ..ServeSettings::default() };
        let env = ServeSettings { listen: listen(2), max_connections: Some(20), ..ServeSettings::default() };
        let file = ServeSettings {
            listen: listen(3),
            max_connections: Some(30),
            min_free_bytes: Some(33),
            answer_spin_us: Some(0),
            ..ServeSettings::default()
        };
        let resolved = resolve([flag.clone(), env.clone(), file.clone()]).unwrap().options;
        assert_eq!(resolved.listen, listen(1).unwrap());
        assert_eq!(resolved.connections.max_connections, 20);
        assert_eq!(resolved.min_free_bytes, 33);
        assert_eq!(resolved.answer_spin, Duration::ZERO);
        assert_eq!(resolved.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(resolved.metrics_listen, DEFAULT_METRICS_LISTEN.parse().unwrap());

        let without_flag = resolve([ServeSettings::default(), env, file.clone()]).unwrap().options;
        assert_eq!(without_flag.listen, listen(2).unwrap());
        let file_only = resolve([ServeSettings::default(), ServeSettings::default(), file]).unwrap().options;
        assert_eq!(file_only.listen, listen(3).unwrap());
        assert_eq!(file_only.connections.max_connections, 30);

        let defaults = resolve([]).unwrap();
        assert_eq!(defaults.options.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(defaults.options.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(defaults.options.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(defaults.options.max_payload_bytes, ledger::event::DEFAULT_MAX_PAYLOAD_BYTES);
        assert_eq!(defaults.options.min_free_bytes, ledger::store::DEFAULT_MIN_FREE_BYTES);
        assert_eq!(defaults.options.answer_spin, ledger::store::DEFAULT_ANSWER_SPIN);
        assert_eq!(defaults.options.connections, ConnectionOptions::default());
        assert_eq!(defaults.log_format, LogFormat::Text);
    }

    #[test]
    fn the_config_file_is_toml_with_the_flag_names_and_nothing_else() {
        let file = ServeSettings::from_toml(
            "data_dir = \"/srv/ledger\"\nlisten = \"0.0.0.0:7000\"\nidle_timeout_seconds = 0\nlog_format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(file.data_dir, Some(PathBuf::from("/srv/ledger")));
        assert_eq!(file.log_format, Some(LogFormat::Json));
        let resolved = resolve([ServeSettings::default(), file]).unwrap();
        assert_eq!(resolved.options.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(resolved.log_format, LogFormat::Json);
        // Zero turns the idle timeout off.
        assert_eq!(resolved.options.connections.idle_timeout, None);
        assert!(ServeSettings::from_toml("listen_address = \"0.0.0.0:1\"\n").is_err());
        assert!(ServeSettings::from_toml("listen = \"not an address\"\n").is_err());
    }

    #[test]
    fn a_witness_policy_is_read_and_checked_when_the_settings_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let vkey = witness::Cosigner::new("w.example", ledger::KeyPair::from_seed(&[1; 32])).unwrap().vkey().clone();
        let with_url = dir.path().join("policy.txt");
        std::fs::write(&with_url, format!("witness W {vkey} http://127.0.0.1:7380\nquorum W\n")).unwrap();
        let settings = |policy: &Path, interval: Option<u64>| ServeSettings {
            witness_policy: Some(policy.to_owned()),
            witness_interval_seconds: interval,
            ..ServeSettings::default()
        };
        let witnessing = resolve([settings(&with_url, None)]).unwrap().options.witnessing.unwrap();
        assert_eq!(witnessing.interval, DEFAULT_WITNESS_INTERVAL);
        assert_eq!(witnessing.policy.witnesses[0].url.as_deref(), Some("http://127.0.0.1:7380"));
        assert_eq!(resolve([settings(&with_url, Some(3))]).unwrap().options.witnessing.unwrap().interval.as_secs(), 3);
        assert!(resolve([]).unwrap().options.witnessing.is_none());

        let no_url = dir.path().join("offline.txt");
        std::fs::write(&no_url, format!("witness W {vkey}\nquorum W\n")).unwrap();
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, format!("witness W {vkey}\nquorum X\n")).unwrap();
        for (layer, expected) in [
            (settings(&no_url, None), "no witness has a URL"),
            (settings(&bad, None), "line 2: quorum X is not defined"),
            (settings(&dir.path().join("missing.txt"), None), "reading policy"),
            (settings(&with_url, Some(0)), "witness_interval_seconds must be at least 1"),
            (ServeSettings { witness_interval_seconds: Some(5), ..ServeSettings::default() }, "needs witness_policy"),
        ] {
            let error = format!("{:#}", resolve([layer]).unwrap_err());
            assert!(error.contains(expected), "{error}");
        }
        let file =
            ServeSettings::from_toml("witness_policy = \"/etc/policy\"\nwitness_interval_seconds = 60\n").unwrap();
        assert_eq!(file.witness_interval_seconds, Some(60));
    }

    #[test]
    fn zero_turns_off_the_idle_timeout_and_keepalive_and_is_refused_elsewhere() {
        let flags = ServeSettings {
            idle_timeout_seconds: Some(0),
            keepalive_interval_seconds: Some(0),
            ..ServeSettings::default()
        };
        let file = ServeSettings {
            idle_timeout_seconds: Some(60),
            keepalive_interval_seconds: Some(60),
            ..ServeSettings::default()
        };
        let connections = resolve([flags, file]).unwrap().options.connections;
        assert_eq!((connections.idle_timeout, connections.keepalive_interval), (None, None));
        for (bad, name) in [
            (ServeSettings { max_connections: Some(0), ..ServeSettings::default() }, "max_connections"),
            (ServeSettings { handshake_timeout_seconds: Some(0), ..ServeSettings::default() }, "handshake_timeout"),
            (ServeSettings { keepalive_timeout_seconds: Some(0), ..ServeSettings::default() }, "keepalive_timeout"),
        ] {
            let error = resolve([bad]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{error}");
        }
    }
}
