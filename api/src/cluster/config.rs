//! The cluster file (`serve --cluster cluster.toml`, docs/replication.md):
//!
//! ```toml
//! node_id = 1                       # this node
//! [[node]]
//! id = 1
//! address = "127.0.0.1:50061"       # its gRPC address: clients and peers
//! [[node]]
//! id = 2
//! address = "127.0.0.1:50062"
//! [[node]]
//! id = 3
//! address = "127.0.0.1:50063"
//! # optional
//! heartbeat_ms = 150
//! election_timeout_ms = [1000, 2000]
//! commit_timeout_ms = 5000
//! peer_ca_cert = "ca.pem"           # verifies https:// peers (default: the system's roots)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use super::{Member, NodeId};

/// A member as the file names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Its id (at least 1).
    pub id: NodeId,
    /// Its gRPC address: `host:port` (plaintext) or an `http(s)://` URL.
    pub address: String,
}

fn default_heartbeat_ms() -> u64 {
    150
}

fn default_election_timeout_ms() -> [u64; 2] {
    [1000, 2000]
}

fn default_commit_timeout_ms() -> u64 {
    5000
}

/// A parsed, checked cluster file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node.
    pub node_id: NodeId,
    /// Every member, this node included.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
    /// How often the leader heartbeats, ms.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// A follower that hears no leader for a random time in this range starts an election, ms.
    #[serde(default = "default_election_timeout_ms")]
    pub election_timeout_ms: [u64; 2],
    /// How long an append waits for its record to commit before answering UNAVAILABLE (it may
    /// still commit: the client retries with the same signed bytes), ms.
    #[serde(default = "default_commit_timeout_ms")]
    pub commit_timeout_ms: u64,
    /// CA bundle (PEM) verifying `https://` peers; none: the system's roots.
    #[serde(default)]
    pub peer_ca_cert: Option<PathBuf>,
}

impl ClusterConfig {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading cluster file {}", path.display()))?;
        let mut config: Self = toml::from_str(&text).with_context(|| format!("cluster file {}", path.display()))?;
        if let Some(ca) = &config.peer_ca_cert {
            if ca.is_relative() {
                config.peer_ca_cert = Some(path.parent().unwrap_or(Path::new(".")).join(ca));
            }
        }
        config.check().with_context(|| format!("cluster file {}", path.display()))?;
        Ok(config)
    }

    /// The rules a cluster file must follow.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.nodes.is_empty() {
            anyhow::bail!("no [[node]] entries");
        }
        let mut ids = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for node in &self.nodes {
            if node.id == 0 {
                anyhow::bail!("node ids start at 1 (node with address {:?} has id 0)", node.address);
            }
            if !ids.insert(node.id) {
                anyhow::bail!("node id {} is listed twice", node.id);
            }
            if node.address.trim().is_empty() {
                anyhow::bail!("node {} has no address", node.id);
            }
            if !addresses.insert(node.address.clone()) {
                anyhow::bail!("address {} is listed twice", node.address);
            }
        }
        if !ids.contains(&self.node_id) {
            anyhow::bail!("node_id {} is not one of the [[node]] entries ({ids:?})", self.node_id);
        }
        let [min, max] = self.election_timeout_ms;
        if self.heartbeat_ms == 0 || min <= self.heartbeat_ms || max <= min {
            anyhow::bail!(
                "timeouts: need 0 < heartbeat_ms ({}) < election_timeout_ms[0] ({min}) < election_timeout_ms[1] ({max})",
                self.heartbeat_ms
            );
        }
        if self.commit_timeout_ms == 0 {
            anyhow::bail!("commit_timeout_ms must be positive");
        }
        Ok(())
    }

    /// The members, as openraft's membership.
    pub fn members(&self) -> BTreeMap<NodeId, Member> {
        self.nodes.iter().map(|n| (n.id, Member { address: n.address.clone() })).collect()
    }

    /// The address of member `id`.
    pub fn address(&self, id: NodeId) -> Option<String> {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.address.clone())
    }

    /// The node that initialises a fresh cluster's membership: the lowest id.
    pub fn initialising_node(&self) -> NodeId {
        self.nodes.iter().map(|n| n.id).min().unwrap_or(self.node_id)
    }

    /// How `https://` peers are verified.
    pub fn peer_tls(&self) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
        let Some(path) = &self.peer_ca_cert else { return Ok(None) };
        let pem = std::fs::read(path).with_context(|| format!("reading peer CA bundle {}", path.display()))?;
        Ok(Some(tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ClusterConfig> {
        let config: ClusterConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    const THREE: &str = r#"
node_id = 2
[[node]]
id = 1
address = "127.0.0.1:50061"
[[node]]
id = 2
address = "127.0.0.1:50062"
[[node]]
id = 3
address = "127.0.0.1:50063"
"#;

    #[test]
    fn a_three_node_file_parses_with_defaults() {
        let config = parse(THREE).unwrap();
        assert_eq!(config.node_id, 2);
        assert_eq!(config.members().len(), 3);
        assert_eq!(config.address(3).as_deref(), Some("127.0.0.1:50063"));
        assert_eq!(config.initialising_node(), 1);
        assert_eq!((config.heartbeat_ms, config.election_timeout_ms), (150, [1000, 2000]));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            (THREE.replace("node_id = 2", "node_id = 4"), "node_id 4 is not one of"),
            (THREE.replace("id = 3", "id = 2"), "node id 2 is listed twice"),
            (THREE.replace("50063", "50062"), "address 127.0.0.1:50062 is listed twice"),
            (THREE.replace("id = 1\n", "id = 0\n"), "node ids start at 1"),
            (format!("heartbeat_ms = 2000\n{THREE}"), "timeouts"),
            (format!("election_timeout_ms = [900, 800]\n{THREE}"), "timeouts"),
            (format!("colour = \"blue\"\n{THREE}"), "unknown field"),
            ("node_id = 1\nnode = []\n".to_owned(), "no [[node]] entries"),
        ];
        for (text, expected) in cases {
            let error = format!("{:#}", parse(&text).unwrap_err());
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
