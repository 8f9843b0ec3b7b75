//! The log commands: keys, appends, and reading the log back with every answer verified.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use ledger::{ExpectedVersion, KeyPair};
use ledger_client::retry::RetryPolicy;
use ledger_client::{self as client, refused, EventSpec, VerifyError};
use proto::v1 as pb;

use crate::args::{default_ledger_pub, load_key, rfc3339, LedgerKeyArg, ServerArg};
use crate::{print, Refusal};

/// Keys, appends and verified reads of the log.
#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Generates an Ed25519 key (PKCS#8 PEM, mode 0600).
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Registers, revokes or lists a tenant's agent keys (register and revoke are signed with
    /// the admin key, or a key holding KeyAdmin in the tenant).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Appends one signed event.
    Append(AppendArgs),
    /// Appends the events of a JSONL file atomically (all or none).
    AppendBatch {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Signing key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// One event per line: {"type", "stream", "data", optional "eventId", "releaseId", "traceId",
        /// "role", "occurredAt", "expectedVersion"}.
        #[arg(long)]
        file: PathBuf,
        /// Agent id to append as (default: the key's registered agent).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Prints entries, verifying each one's hashes and chain link; --follow keeps going live.
    Tail {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// First seq.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep streaming new entries.
        #[arg(long)]
        follow: bool,
    },
    /// Fetches and verifies the newest signed checkpoint; --out saves it for a later
    /// `ledger-audit consistency --old FILE`.
    Checkpoint {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        ledger_key: LedgerKeyArg,
        /// Also write the verified checkpoint note to FILE, byte for byte as the ledger signed
        /// it (written only once it verifies).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also verify the witnesses' cosignatures the server serves (its newest cosigned
        /// checkpoint) against this C2SP tlog-policy file, and report which witnesses cosigned.
        /// The log key is the policy's `log` line for the tenant's origin, or the ledger key if
        /// the policy lists no logs.
        #[arg(long)]
        witness_policy: Option<PathBuf>,
        /// Fail (exit 1) unless the cosigned checkpoint meets the policy's quorum.
        #[arg(long, requires = "witness_policy")]
        require_quorum: bool,
    },
    /// Fetches an inclusion proof of an entry (by seq or event id) and verifies it against a
    /// verified checkpoint; --out saves it as a C2SP tlog-proof file that
    /// `ledger-audit proof FILE` (or any RFC 6962 verifier) checks offline.
    Prove {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The entry's seq.
        #[arg(long, required_unless_present = "event_id", conflicts_with = "event_id")]
        seq: Option<u64>,
        /// The entry's event id.
        #[arg(long)]
        event_id: Option<String>,
        /// Also write the verified proof to FILE in the C2SP tlog-proof format (by convention
        /// FILE.tlog-proof; written only once it verifies).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        ledger_key: LedgerKeyArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Registers an agent key in a tenant.
    Register {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The agent the key belongs to.
        #[arg(long)]
        agent: String,
        /// Roles, comma-separated (KeyAdmin lets the key register and revoke keys).
        #[arg(long, value_delimiter = ',', default_value = "")]
        roles: Vec<String>,
        /// Allowed event types, comma-separated (default: any ordinary type).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// The public key: a PEM file (public or private) or base64 of the raw 32 bytes.
        #[arg(long)]
        public_key: String,
        /// Admin key (or a key holding KeyAdmin in the tenant).
        #[arg(long, default_value = "./release-ledger-data/keys/admin.pem")]
        admin_key: PathBuf,
        /// Create the tenant if it has no log yet (without it, an unknown tenant is refused:
        /// a typo would otherwise start a new tenant).
        #[arg(long)]
        create_tenant: bool,
    },
    /// Revokes an agent key: it can append nothing after this.
    Revoke {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Hex key id.
        #[arg(long)]
        key_id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Admin key (or a key holding KeyAdmin in the tenant).
        #[arg(long, default_value = "./release-ledger-data/keys/admin.pem")]
        admin_key: PathBuf,
    },
    /// Lists a tenant's keys.
    List {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AppendArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// Signing key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// Event type.
    #[arg(long = "type")]
    event_type: String,
    /// Stream.
    #[arg(long)]
    stream: String,
    /// The `data` object: JSON, or @FILE.
    #[arg(long, default_value = "{}")]
    data: String,
    /// Release id.
    #[arg(long)]
    release_id: Option<String>,
    /// Trace id.
    #[arg(long)]
    trace_id: Option<String>,
    /// Event id (default: a new UUIDv7).
    #[arg(long)]
    event_id: Option<String>,
    /// any, no-stream, or the stream's current version.
    #[arg(long)]
    expected_version: Option<String>,
    /// Agent id to append as (default: the key's registered agent).
    #[arg(long)]
    agent: Option<String>,
    /// Actor role.
    #[arg(long)]
    role: Option<String>,
    /// When it happened, RFC 3339 (default: now). With --event-id, running the same command
    /// again sends the same signed bytes: the ledger answers with the original receipt.
    #[arg(long, value_parser = rfc3339)]
    occurred_at: Option<String>,
    /// After appending, wait (at most --timeout-seconds) until the ledger has evaluated the
    /// event and print where the release of --release-id stands.
    #[arg(long, requires = "release_id")]
    wait: bool,
}

impl LogCommand {
    /// Runs the command.
    pub(crate) async fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Keygen { out } => {
                let key = KeyPair::generate();
                key.save_new(&out).with_context(|| format!("writing {}", out.display()))?;
                let value = serde_json::json!({
                    "path": out, "keyId": key.key_id().to_hex(), "publicKey": key.public_key_base64(),
                });
                print(json, value, || {
                    format!(
                        "wrote {}\nkey id      {}\npublic key  {}",
                        out.display(),
                        key.key_id(),
                        key.public_key_base64()
                    )
                });
                Ok(())
            }
            Self::Keys { command } => command.run(json).await,
            Self::Append(args) => {
                let key = load_key(&args.key)?;
                let mut client = args.server.connect().await?;
                let agent_id = match args.agent {
                    Some(agent) => agent,
                    None => client::agent_id_for(&mut client, &args.tenant, &key).await?,
                };
                let spec = EventSpec {
                    tenant: args.tenant,
                    stream: args.stream,
                    event_type: args.event_type,
                    data: client::read_data(&args.data)?,
                    event_id: args.event_id,
                    release_id: args.release_id,
                    trace_id: args.trace_id,
                    agent_id,
                    role: args.role,
                    occurred_at: args.occurred_at,
                };
                let expected = args.expected_version.as_deref().map(client::parse_expected_version).transpose()?;
                let release = spec.release_id.clone();
                let event =
                    client::signed_event(client::event_body(&spec)?, &key, expected.unwrap_or(ExpectedVersion::Any));
                let receipt = append_receipt(&mut client, event, &args.server.retry()).await?;
                print_receipts(json, std::slice::from_ref(&receipt));
                match release {
                    Some(release) if args.wait => {
                        crate::governance::print_standing(&args.server, &spec.tenant, &release, receipt.seq, json).await
                    }
                    _ => Ok(()),
                }
            }
            Self::AppendBatch { server, tenant, key, file, agent } => {
                let key = load_key(&key)?;
                let lines = client::read_batch_file(&file)?;
                let mut client = server.connect().await?;
                let agent_id = match agent {
                    Some(agent) => agent,
                    None => client::agent_id_for(&mut client, &tenant, &key).await?,
                };
                let events = lines
                    .into_iter()
                    .map(|(line, expected)| {
                        let spec = EventSpec {
                            tenant: tenant.clone(),
                            stream: line.stream,
                            event_type: line.event_type,
                            data: line.data,
                            event_id: line.event_id,
                            release_id: line.release_id,
                            trace_id: line.trace_id,
                            agent_id: agent_id.clone(),
                            role: line.role,
                            occurred_at: line.occurred_at,
                        };
                        Ok(client::signed_event(client::event_body(&spec)?, &key, expected))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                // The same signed batch on every attempt: a batch is atomic, and one that was
                // committed answers a retry with its original receipts.
                let request = pb::AppendBatchRequest { events };
                let receipts = server
                    .retry()
                    .call("append-batch", || {
                        let (mut client, request) = (client.clone(), request.clone());
                        async move { client.append_batch(request).await }
                    })
                    .await
                    .map_err(refused)?
                    .into_inner()
                    .receipts;
                print_receipts(json, &receipts);
                Ok(())
            }
            Self::Tail { server, tenant, from, follow } => {
                let mut client = server.connect().await?;
                let mut stream = if follow {
                    client.subscribe(pb::SubscribeRequest { tenant, from_seq: from }).await
                } else {
                    client.read(pb::ReadRequest { tenant, from_seq: from, to_seq: 0 }).await
                }
                .map_err(refused)?
                .into_inner();
                let mut previous: Option<ledger::Entry> = None;
                while let Some(item) = stream.next().await {
                    let entry = client::checked_entry(previous.as_ref(), item.map_err(refused)?)?;
                    let record = client::entry_json(&entry);
                    print(json, record.clone(), || {
                        let field = |name: &str| record.get(name).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
                        if record.get("redacted").is_some() {
                            format!(
                                "{:>8}  {}  (redacted by seq {})",
                                entry.seq,
                                field("recordedAt"),
                                record["redactedBy"]
                            )
                        } else {
                            format!(
                                "{:>8}  {}  {:<28} {:<32} {:<20} {}",
                                entry.seq,
                                field("recordedAt"),
                                field("type"),
                                field("stream"),
                                field("agentId"),
                                field("eventId")
                            )
                        }
                    });
                    previous = Some(entry);
                }
                Ok(())
            }
            Self::Checkpoint { server, tenant, ledger_key, out, witness_policy, require_quorum } => {
                let mut client = server.connect().await?;
                let (key, provenance) =
                    client::ledger_public_key(&mut client, ledger_key.ledger_key.as_deref(), &default_ledger_pub())
                        .await?;
                let wire = client
                    .get_checkpoint(pb::GetCheckpointRequest { tenant: tenant.clone(), size: 0 })
                    .await
                    .map_err(refused)?
                    .into_inner();
                let verified = client::verify_checkpoint(&wire.note, &key).map_err(wrong_ledger_key(
                    ledger::KeyId::of(&key).to_hex(),
                    &provenance,
                    &server.server,
                ))?;
                let witnessing = match &witness_policy {
                    Some(path) => Some(crate::witness::check_cosigned(
                        &tenant,
                        &verified.checkpoint.origin,
                        &wire.cosigned_note,
                        path,
                        &key,
                        require_quorum,
                    )?),
                    None => None,
                };
                if let Some(out) = &out {
                    std::fs::write(out, wire.note.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
                }
                let c = &verified.checkpoint;
                let value = serde_json::json!({
                    "origin": c.origin, "size": c.size, "rootHash": hex::encode(c.root),
                    "vkey": ledger::checkpoint::vkey(&c.origin, &key), "note": wire.note,
                    "verified": true, "ledgerKey": provenance, "out": out,
                    "witnessing": witnessing.as_ref().map(|w| w.json()),
                });
                print(json, value, || {
                    let saved = out.as_ref().map_or_else(String::new, |out| format!("\nsaved to {}", out.display()));
                    let witnessed = witnessing.as_ref().map_or_else(String::new, |w| format!("\n{}", w.human()));
                    format!(
                        "{}\nsignature verified with the ledger key {provenance}\nverifier key (vkey, for note verifiers and witnesses): {}{saved}{witnessed}",
                        wire.note.trim_end(),
                        ledger::checkpoint::vkey(&c.origin, &key)
                    )
                });
                Ok(())
            }
            Self::Prove { server, tenant, seq, event_id, out, ledger_key } => {
                let mut client = server.connect().await?;
                let (key, provenance) =
                    client::ledger_public_key(&mut client, ledger_key.ledger_key.as_deref(), &default_ledger_pub())
                        .await?;
                let seq = match (seq, event_id) {
                    (Some(seq), _) => seq,
                    (None, Some(event_id)) => {
                        let entry = client
                            .get_entry(pb::GetEntryRequest {
                                tenant: tenant.clone(),
                                key: Some(pb::get_entry_request::Key::EventId(event_id)),
                            })
                            .await
                            .map_err(refused)?
                            .into_inner();
                        client::checked_entry(None, entry)?.seq
                    }
                    (None, None) => anyhow::bail!("give --seq or --event-id"),
                };
                let wire = client
                    .get_checkpoint(pb::GetCheckpointRequest { tenant: tenant.clone(), size: 0 })
                    .await
                    .map_err(refused)?
                    .into_inner();
                let checkpoint = client::verify_checkpoint(&wire.note, &key).map_err(wrong_ledger_key(
                    ledger::KeyId::of(&key).to_hex(),
                    &provenance,
                    &server.server,
                ))?;
                let proof = client::prove_inclusion(&mut client, &tenant, seq, &checkpoint).await?;
                // The entry the proof is about must hash to the proven leaf.
                let entry = client
                    .get_entry(pb::GetEntryRequest { tenant, key: Some(pb::get_entry_request::Key::Seq(seq)) })
                    .await
                    .map_err(refused)?
                    .into_inner();
                let entry = client::checked_entry(None, entry)?;
                if entry.entry_hash.as_slice() != proof.entry_hash.as_slice() {
                    return Err(VerifyError::EntryMismatch { seq }.into());
                }
                if let Some(out) = &out {
                    let path: Vec<ledger::Hash32> = proof
                        .path
                        .iter()
                        .map(|node| node.as_slice().try_into())
                        .collect::<Result<_, _>>()
                        .map_err(|_| anyhow!("the server sent a proof node that is not 32 bytes"))?;
                    let file = ledger::tlog_proof::TlogProof {
                        extra: Some(
                            ledger::hash::entry_hash_input(
                                seq,
                                entry.recorded_at,
                                &entry.prev_hash,
                                &entry.payload_hash,
                            )
                            .to_vec(),
                        ),
                        index: seq,
                        path,
                        note: wire.note.clone(),
                    };
                    // Checked as an auditor will check it before it is written.
                    file.verify(&key).context("the proof file this command would write does not verify")?;
                    std::fs::write(out, file.to_text()).with_context(|| format!("writing {}", out.display()))?;
                }
                let value = serde_json::json!({
                    "seq": seq, "treeSize": proof.tree_size, "entryHash": hex::encode(entry.entry_hash),
                    "rootHash": hex::encode(checkpoint.checkpoint.root), "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
                    "verified": true, "ledgerKey": provenance, "out": out,
                });
                print(json, value, || {
                    let saved = out.as_ref().map_or_else(String::new, |out| {
                        format!(
                            "\nsaved to {} (C2SP tlog-proof: `ledger-audit proof {}`)",
                            out.display(),
                            out.display()
                        )
                    });
                    format!(
                        "seq {seq} is included in the tree of {} entries (root {})\nproof of {} nodes verified against a checkpoint signed by the ledger key {provenance}{saved}",
                        proof.tree_size,
                        hex::encode(checkpoint.checkpoint.root),
                        proof.path.len()
                    )
                });
                Ok(())
            }
        }
    }
}

pub(crate) fn print_receipts(json: bool, receipts: &[pb::Receipt]) {
    for receipt in receipts {
        // `recordedAt` stays nanoseconds since the epoch (scripts parse it);
        // `recordedAtRfc3339` is the same instant in the form every other output uses.
        let recorded_at = rfc3339_nanos(receipt.recorded_at_unix_nanos);
        let value = serde_json::json!({
            "tenant": receipt.tenant, "seq": receipt.seq, "entryHash": hex::encode(&receipt.entry_hash),
            "recordedAt": receipt.recorded_at_unix_nanos, "recordedAtRfc3339": recorded_at, "duplicate": receipt.duplicate,
        });
        print(json, value, || {
            format!(
                "appended seq {} to {} at {recorded_at} (entry {}){}",
                receipt.seq,
                receipt.tenant,
                hex::encode(&receipt.entry_hash),
                if receipt.duplicate { ", already present: original receipt" } else { "" }
            )
        });
    }
}

/// Nanoseconds since the epoch as RFC 3339 (UTC, nanoseconds), as `tail` prints `recordedAt`.
fn rfc3339_nanos(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl KeysCommand {
    /// Runs the command.
    async fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            KeysCommand::Register { server, tenant, agent, roles, types, public_key, admin_key, create_tenant } => {
                let admin = load_key(&admin_key)?;
                let public = client::read_public_key(&public_key)?;
                let roles: Vec<String> = roles.into_iter().filter(|r| !r.is_empty()).collect();
                let mut client = server.connect().await?;
                let key_id = ledger::KeyId::of(&public).to_hex();
                // One GetInfo names the tenants and the admin key (the tenant check lives here,
                // in the client, so that appending to a tenant stays what it is on the wire).
                let mut info = client.get_info(pb::GetInfoRequest {}).await.map_err(refused)?.into_inner();
                // The tenant list is an operator's: signed in with the admin key (unless a token
                // was given), ask again.
                if client::sign_in(&info, &tenant, &admin, client::SIGN_IN_TTL)? {
                    info = client.get_info(pb::GetInfoRequest {}).await.map_err(refused)?.into_inner();
                }
                let tenants = info.tenants.clone();
                if !tenants.contains(&tenant) {
                    if !create_tenant {
                        return Err(Refusal(format!(
                            "tenant {tenant} does not exist; pass --create-tenant to create it (existing tenants: {})",
                            if tenants.is_empty() { "none".to_owned() } else { tenants.join(", ") }
                        ))
                        .into());
                    }
                } else if let Some(existing) = tenant_key(&mut client, &tenant, &key_id).await? {
                    return already_registered(&tenant, &agent, &roles, &types, &existing, json);
                }
                let signer = if admin.key_id().to_hex() == info.admin_key_id {
                    "admin".to_owned()
                } else {
                    client::agent_id_for(&mut client, &tenant, &admin).await?
                };
                let spec = EventSpec {
                    tenant,
                    stream: "keys".into(),
                    event_type: "AgentKeyRegistered".into(),
                    data: serde_json::json!({
                        "agentId": agent, "publicKey": client::b64(public.as_bytes()), "roles": roles, "eventTypes": types,
                    }),
                    event_id: Some(format!("key-registered-{key_id}")),
                    agent_id: signer,
                    ..EventSpec::default()
                };
                append_admin(&mut client, &spec, &admin, &server.retry(), json).await
            }
            KeysCommand::Revoke { server, tenant, key_id, reason, admin_key } => {
                let admin = load_key(&admin_key)?;
                let mut client = server.connect().await?;
                if let Some(revoked_at) =
                    tenant_key(&mut client, &tenant, &key_id).await?.and_then(|k| k.revoked_at_seq)
                {
                    print(
                        json,
                        serde_json::json!({ "keyId": key_id, "tenant": tenant, "alreadyRevoked": true, "seq": revoked_at }),
                        || {
                            format!("key {key_id} is already revoked at seq {revoked_at} in tenant {tenant}; nothing appended")
                        },
                    );
                    return Ok(());
                }
                let signer = client::agent_id_for(&mut client, &tenant, &admin).await?;
                let spec = EventSpec {
                    tenant,
                    stream: "keys".into(),
                    event_type: "AgentKeyRevoked".into(),
                    data: serde_json::json!({ "keyId": key_id, "reason": reason }),
                    event_id: Some(format!("key-revoked-{key_id}")),
                    agent_id: signer,
                    ..EventSpec::default()
                };
                append_admin(&mut client, &spec, &admin, &server.retry(), json).await
            }
            KeysCommand::List { server, tenant } => {
                let mut client = server.connect().await?;
                let keys = client.list_keys(pb::ListKeysRequest { tenant }).await.map_err(refused)?.into_inner().keys;
                for key in keys {
                    let value = serde_json::json!({
                        "keyId": key.key_id, "agentId": key.agent_id, "roles": key.roles, "eventTypes": key.event_types,
                        "registeredAt": key.registered_at_seq, "revokedAt": key.revoked_at_seq,
                    });
                    print(json, value, || {
                        format!(
                            "{}  {:<20} roles={} types={} registered@{}{}",
                            key.key_id,
                            key.agent_id,
                            key.roles.join(","),
                            if key.event_types.is_empty() { "*".into() } else { key.event_types.join(",") },
                            key.registered_at_seq,
                            key.revoked_at_seq.map(|s| format!(" revoked@{s}")).unwrap_or_default()
                        )
                    });
                }
                Ok(())
            }
        }
    }
}

/// Signs an administrative event (no stream expectation) and appends it.
async fn append_admin(
    client: &mut client::Client,
    spec: &EventSpec,
    key: &KeyPair,
    retry: &RetryPolicy,
    json: bool,
) -> anyhow::Result<()> {
    let event = client::signed_event(client::event_body(spec)?, key, ExpectedVersion::Any);
    append_one(client, event, retry, json).await
}

/// Appends one signed event and prints its receipt.
async fn append_one(
    client: &mut client::Client,
    event: pb::AppendEvent,
    retry: &RetryPolicy,
    json: bool,
) -> anyhow::Result<()> {
    let receipt = append_receipt(client, event, retry).await?;
    print_receipts(json, &[receipt]);
    Ok(())
}

/// Appends one signed event, retrying transient failures with the same bytes (see
/// [`ledger_client::retry`]).
/// What a checkpoint that does not verify with the ledger key `key_id` means: the failure names
/// the key, where it came from, and the setting that chooses it (a wrong key looks exactly
/// like a forged checkpoint).
fn wrong_ledger_key(key_id: String, provenance: &str, server: &str) -> impl FnOnce(VerifyError) -> anyhow::Error {
    let context = format!(
        "the checkpoint of {server} does not verify with the ledger key {key_id} ({provenance}): either that is \
         not the ledger key of this server's data dir (pass its keys/ledger.pub with --ledger-key) or the \
         checkpoint is forged"
    );
    move |error| anyhow::Error::new(error).context(context)
}

/// The tenant's record of `key_id`, if it has one.
async fn tenant_key(client: &mut client::Client, tenant: &str, key_id: &str) -> anyhow::Result<Option<pb::KeyRecord>> {
    let keys =
        client.list_keys(pb::ListKeysRequest { tenant: tenant.to_owned() }).await.map_err(refused)?.into_inner().keys;
    Ok(keys.into_iter().find(|k| k.key_id == key_id))
}

/// `keys register` of a key the tenant already has: the same registration again is an
/// idempotent success (a re-run CI script), anything else is refused with what is registered.
fn already_registered(
    tenant: &str,
    agent: &str,
    roles: &[String],
    types: &[String],
    existing: &pb::KeyRecord,
    json: bool,
) -> anyhow::Result<()> {
    let (key_id, seq) = (&existing.key_id, existing.registered_at_seq);
    if let Some(revoked) = existing.revoked_at_seq {
        return Err(Refusal(format!(
            "key {key_id} was registered at seq {seq} and revoked at seq {revoked} in tenant {tenant}; \
             a revoked key stays revoked: generate a new key and register that"
        ))
        .into());
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if existing.agent_id != agent
        || sorted(&existing.roles) != sorted(roles)
        || sorted(&existing.event_types) != sorted(types)
    {
        return Err(Refusal(format!(
            "key {key_id} is already registered at seq {seq} in tenant {tenant} as agent {} with roles [{}] and types [{}]; \
             a key's registration cannot change: revoke it and register a new key",
            existing.agent_id,
            existing.roles.join(","),
            existing.event_types.join(",")
        ))
        .into());
    }
    print(
        json,
        serde_json::json!({ "keyId": key_id, "tenant": tenant, "alreadyRegistered": true, "seq": seq }),
        || {
            format!(
                "key {key_id} is already registered at seq {seq} in tenant {tenant} (agent {agent}); nothing appended"
            )
        },
    );
    Ok(())
}

pub(crate) async fn append_receipt(
    client: &mut client::Client,
    event: pb::AppendEvent,
    retry: &RetryPolicy,
) -> anyhow::Result<pb::Receipt> {
    let request = pb::AppendRequest { event: Some(event) };
    retry
        .call("append", || {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.append(request).await }
        })
        .await
        .map_err(refused)?
        .into_inner()
        .receipt
        .ok_or_else(|| anyhow!("server returned no receipt"))
}
