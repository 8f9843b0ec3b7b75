//! `cluster init-keys` and `cluster status` (docs/replication.md).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use ledger::{KeyPair, KeyPaths};
use ledger_client::backup::admin_client;

use crate::args::ServerArg;
use crate::{print, Refusal};

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    pub(crate) command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Creates the keys every node of a new cluster shares (one ledger key, one admin key) in
    /// each given data dir, before the nodes' first start: the nodes sign the same checkpoints
    /// and authenticate to each other with operator tokens of the admin key. On separate
    /// machines, create them in one directory and copy its keys/ to each node securely.
    InitKeys {
        /// A node's data dir (repeat per node); each must hold no keys yet.
        #[arg(long = "data-dir", required = true)]
        data_dirs: Vec<PathBuf>,
    },
    /// Where a node stands in its cluster: role, leader, term, the Raft log it holds and has
    /// applied, and, asked of the leader, how far each member has replicated. Operators only.
    Status {
        #[command(flatten)]
        server: ServerArg,
        /// Sign in with the data dir's admin key, unless a token is given.
        #[arg(long)]
        admin_key: Option<PathBuf>,
    },
}

pub(crate) async fn run(args: ClusterArgs, json: bool) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::InitKeys { data_dirs } => init_keys(&data_dirs, json),
        ClusterCommand::Status { server, admin_key } => status(server, admin_key, json).await,
    }
}

fn init_keys(data_dirs: &[PathBuf], json: bool) -> anyhow::Result<()> {
    for dir in data_dirs {
        let paths = KeyPaths::new(dir);
        for path in [&paths.ledger, &paths.admin, &paths.ledger_pub] {
            if path.exists() {
                bail!(Refusal(format!(
                    "{} exists: init-keys never replaces a key; nothing was written",
                    path.display()
                )));
            }
        }
        if dir.join("db").exists() {
            bail!(Refusal(format!(
                "{} already holds a store: a cluster starts from data dirs holding only its keys; nothing was written",
                dir.display()
            )));
        }
    }
    let (ledger_key, admin_key) = (KeyPair::generate(), KeyPair::generate());
    for dir in data_dirs {
        let paths = KeyPaths::new(dir);
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).with_context(|| format!("creating {}", keys.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", keys.display()))?;
        }
        ledger_key.save_new(&paths.ledger)?;
        admin_key.save_new(&paths.admin)?;
        std::fs::write(&paths.ledger_pub, ledger_key.public_key_pem()?)
            .with_context(|| format!("writing {}", paths.ledger_pub.display()))?;
    }
    let value = serde_json::json!({
        "dataDirs": data_dirs, "ledgerKeyId": ledger_key.key_id().to_hex(), "adminKeyId": admin_key.key_id().to_hex(),
    });
    print(json, value, || {
        format!(
            "wrote the cluster's ledger key (id {}) and admin key (id {}) into {} data dirs",
            ledger_key.key_id().to_hex(),
            admin_key.key_id().to_hex(),
            data_dirs.len()
        )
    });
    Ok(())
}

async fn status(server: ServerArg, admin_key: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let channel = server.channel().await?;
    if let Some(path) = &admin_key {
        crate::args::sign_in_as_operator(&channel, path).await?;
    }
    let status = admin_client(channel)
        .cluster_status(proto::v1::ClusterStatusRequest {})
        .await
        .map_err(ledger_client::refused)?
        .into_inner();
    let members: Vec<_> = status
        .members
        .iter()
        .map(|m| serde_json::json!({ "id": m.id, "address": m.address, "matchedIndex": m.matched_index }))
        .collect();
    let value = serde_json::json!({
        "clustered": status.clustered, "nodeId": status.node_id, "role": status.role, "leaderId": status.leader_id,
        "leaderAddress": status.leader_address, "term": status.term, "lastLogIndex": status.last_log_index,
        "appliedIndex": status.applied_index, "members": members, "millisSinceQuorumAck": status.millis_since_quorum_ack,
    });
    print(json, value, || {
        if !status.clustered {
            return "a single node (not a cluster)".to_owned();
        }
        let index = |i: Option<u64>| i.map_or("-".to_owned(), |i| i.to_string());
        let mut lines = vec![format!(
            "node {} is {} in term {}; leader: {}; Raft log {} held, {} applied",
            status.node_id,
            status.role,
            status.term,
            status.leader_id.map_or("none known".to_owned(), |id| format!("node {id} at {}", status.leader_address)),
            index(status.last_log_index),
            index(status.applied_index),
        )];
        for m in &status.members {
            // Only the leader knows how far each member has replicated.
            let matched = m.matched_index.map(|i| format!(": holds up to {i}")).unwrap_or_default();
            lines.push(format!("  node {} at {}{matched}", m.id, m.address));
        }
        lines.join("\n")
    });
    Ok(())
}
