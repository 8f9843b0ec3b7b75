//! Access control at the process boundary: every RPC of every service on the gRPC port, called
//! by each kind of caller, gets exactly the code the rule table says; the table covers every
//! method the server describes; TLS with an untrusted CA, and without a client certificate
//! where one is required, fails; a client certificate maps to its principal; plaintext on a
//! non-loopback address is refused and leaves nothing behind.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use ledger::KeyPair;
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use proto::v1::query_client::QueryClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::{body, mint, temp_data_dir, tests_passed, wire, Bearer, Server};

const TENANT: &str = "acme";
const OTHER: &str = "globex";

type Authed = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// The callers of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    OtherTenant,
    Expired,
    WrongAudience,
    RevokedKey,
    /// A key of the tenant without a reader role.
    Member,
    Reader,
    Operator,
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::OtherTenant,
    Caller::Expired,
    Caller::WrongAudience,
    Caller::RevokedKey,
    Caller::Member,
    Caller::Reader,
    Caller::Operator,
];

/// What a method needs, as the README's table says (independently of `api::access::RULES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    Reader,
    Member,
    AnyPrincipal,
    Signature,
    Operator,
}

fn needs(method: &str) -> Needs {
    let name = method.rsplit('/').next().unwrap();
    match name {
        "Append" | "AppendBatch" => Needs::Signature,
        "GetCheckpoint" | "GetInclusionProof" | "GetConsistencyProof" | "GetInfo" => Needs::Nothing,
        "Check" | "Watch" | "ServerReflectionInfo" => Needs::Nothing,
        "ListKeys" => Needs::Member,
        "Backup" | "ClusterStatus" | "AppendEntries" | "Vote" | "InstallSnapshot" => Needs::Operator,
        "Handshake"
        | "PollFlightInfo"
        | "DoPut"
        | "DoExchange"
        | "DoAction"
        | "ListActions"
        | "GetGovernanceStatus" => Needs::AnyPrincipal,
        _ => Needs::Reader,
    }
}

/// The code `caller` gets for `method` (`ok` is the code of the call when allowed).
fn expected(method: &str, caller: Caller, ok: Code) -> Code {
    let bad_credential = matches!(caller, Caller::Expired | Caller::WrongAudience | Caller::RevokedKey);
    if bad_credential {
        // A credential that does not verify is refused whatever the method.
        return Code::Unauthenticated;
    }
    match (needs(method), caller) {
        // A transport principal must belong to the tenant it writes to.
        (Needs::Signature, Caller::OtherTenant) => Code::PermissionDenied,
        (Needs::Nothing | Needs::Signature, _) => ok,
        (_, Caller::Anonymous) => Code::Unauthenticated,
        (_, Caller::Operator) => ok,
        (Needs::Operator, _) => Code::PermissionDenied,
        (Needs::AnyPrincipal, _) => ok,
        (Needs::Member, Caller::Member | Caller::Reader) => ok,
        (Needs::Reader, Caller::Reader) => ok,
        _ => Code::PermissionDenied,
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Calls `method` with a request about [`TENANT`]; the code of the answer, and the code a
/// caller allowed to call it gets.
async fn call(method: &str, channel: Authed, event: &pb::AppendEvent) -> (Code, Code) {
    let mut ledger = LedgerClient::new(channel.clone());
    let mut query = QueryClient::new(channel.clone());
    let mut flight = FlightServiceClient::new(channel.clone());
    let t = || TENANT.to_owned();
    let release = || "release-none".to_owned();
    let entries = arrow_flight::FlightDescriptor::new_path(vec![TENANT.into(), "entries".into()]);
    let ticket = || ledger_wire::FlightTicket::new(TENANT, ledger_tools::Table::Entries).to_ticket().unwrap();
    let name = method.trim_start_matches('/');
    match name {
        "release_ledger.v1.Ledger/Append" => {
            // The same signed event every time: the first append stores it, the rest are
            // answered with its receipt.
            (code(ledger.append(pb::AppendRequest { event: Some(event.clone()) }).await), Code::Ok)
        }
        "release_ledger.v1.Ledger/AppendBatch" => {
            (code(ledger.append_batch(pb::AppendBatchRequest { events: vec![event.clone()] }).await), Code::Ok)
        }
        "release_ledger.v1.Ledger/Read" => {
            (code(ledger.read(pb::ReadRequest { tenant: t(), from_seq: 0, to_seq: 1 }).await), Code::Ok)
        }
        "release_ledger.v1.Ledger/Subscribe" => {
            (code(ledger.subscribe(pb::SubscribeRequest { tenant: t(), from_seq: 0 }).await), Code::Ok)
        }
        "release_ledger.v1.Ledger/GetEntry" => (
            code(
                ledger
                    .get_entry(pb::GetEntryRequest { tenant: t(), key: Some(pb::get_entry_request::Key::Seq(0)) })
                    .await,
            ),
            Code::Ok,
        ),
        "release_ledger.v1.Ledger/GetCheckpoint" => {
            (code(ledger.get_checkpoint(pb::GetCheckpointRequest { tenant: t(), size: 0 }).await), Code::Ok)
        }
        "release_ledger.v1.Ledger/GetInclusionProof" => (
            code(ledger.get_inclusion_proof(pb::GetInclusionProofRequest { tenant: t(), seq: 0, tree_size: 0 }).await),
            Code::Ok,
        ),
        "release_ledger.v1.Ledger/GetConsistencyProof" => (
            code(
                ledger
                    .get_consistency_proof(pb::GetConsistencyProofRequest { tenant: t(), old_size: 1, new_size: 0 })
                    .await,
            ),
            Code::Ok,
        ),
        "release_ledger.v1.Ledger/GetInfo" => (code(ledger.get_info(pb::GetInfoRequest {}).await), Code::Ok),
        "release_ledger.v1.Ledger/ListKeys" => {
            (code(ledger.list_keys(pb::ListKeysRequest { tenant: t() }).await), Code::Ok)
        }
        "release_ledger.v1.Query/GetReleaseSummary" => (
            code(query.get_release_summary(pb::GetReleaseSummaryRequest { tenant: t(), release_id: release() }).await),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/ListReleases" => {
            (code(query.list_releases(pb::ListReleasesRequest { tenant: t(), ..Default::default() }).await), Code::Ok)
        }
        "release_ledger.v1.Query/ListReleaseHistory" => (
            code(
                query
                    .list_release_history(pb::ListReleaseHistoryRequest {
                        tenant: t(),
                        module: "billing".into(),
                        environment: "production".into(),
                    })
                    .await,
            ),
            Code::Ok,
        ),
        "release_ledger.v1.Query/ListApprovals" => (
            code(query.list_approvals(pb::ListApprovalsRequest { tenant: t(), release_id: release() }).await),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/GetRiskScore" => (
            code(query.get_risk_score(pb::GetRiskScoreRequest { tenant: t(), release_id: release() }).await),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/ExplainDecision" => (
            code(
                query
                    .explain_decision(pb::ExplainDecisionRequest { tenant: t(), release_id: release(), seq: None })
                    .await,
            ),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/GetReleaseTimeline" => (
            code(
                query.get_release_timeline(pb::GetReleaseTimelineRequest { tenant: t(), release_id: release() }).await,
            ),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/ReplayAsOf" => (
            code(
                query
                    .replay_as_of(pb::ReplayAsOfRequest {
                        tenant: t(),
                        release_id: release(),
                        as_of: Some(pb::replay_as_of_request::AsOf::Seq(0)),
                    })
                    .await,
            ),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/GetAttestations" => (
            code(
                query
                    .get_attestations(pb::GetAttestationsRequest {
                        tenant: t(),
                        release_id: release(),
                        seq: None,
                        all: false,
                    })
                    .await,
            ),
            Code::NotFound,
        ),
        "release_ledger.v1.Query/GetGovernanceStatus" => {
            (code(query.get_governance_status(pb::GetGovernanceStatusRequest {}).await), Code::Ok)
        }
        "arrow.flight.protocol.FlightService/Handshake" => (
            code(flight.handshake(futures::stream::iter(vec![arrow_flight::HandshakeRequest::default()])).await),
            Code::Unimplemented,
        ),
        "arrow.flight.protocol.FlightService/ListFlights" => (
            code(flight.list_flights(arrow_flight::Criteria { expression: TENANT.as_bytes().to_vec().into() }).await),
            Code::Ok,
        ),
        "arrow.flight.protocol.FlightService/GetFlightInfo" => {
            (code(flight.get_flight_info(entries.clone()).await), Code::Ok)
        }
        "arrow.flight.protocol.FlightService/PollFlightInfo" => {
            (code(flight.poll_flight_info(entries.clone()).await), Code::Unimplemented)
        }
        "arrow.flight.protocol.FlightService/GetSchema" => (code(flight.get_schema(entries.clone()).await), Code::Ok),
        "arrow.flight.protocol.FlightService/DoGet" => (code(flight.do_get(ticket()).await), Code::Ok),
        "arrow.flight.protocol.FlightService/DoPut" => (
            code(flight.do_put(futures::stream::iter(vec![arrow_flight::FlightData::default()])).await),
            Code::Unimplemented,
        ),
        "arrow.flight.protocol.FlightService/DoExchange" => (
            code(flight.do_exchange(futures::stream::iter(vec![arrow_flight::FlightData::default()])).await),
            Code::Unimplemented,
        ),
        "arrow.flight.protocol.FlightService/DoAction" => {
            (code(flight.do_action(arrow_flight::Action::default()).await), Code::Unimplemented)
        }
        "arrow.flight.protocol.FlightService/ListActions" => {
            (code(flight.list_actions(arrow_flight::Empty {}).await), Code::Unimplemented)
        }
        "release_ledger.v1.Admin/Backup" => {
            // The stream is not read: dropping it ends the backup, and its staged copy with it.
            let mut admin = pb::admin_client::AdminClient::new(channel.clone());
            (code(admin.backup(pb::BackupRequest {}).await), Code::Ok)
        }
        "release_ledger.v1.Admin/ClusterStatus" => {
            let mut admin = pb::admin_client::AdminClient::new(channel.clone());
            (code(admin.cluster_status(pb::ClusterStatusRequest {}).await), Code::Ok)
        }
        // A single node serves no Raft: past the access layer, the method is not there.
        "release_ledger.v1.Raft/AppendEntries" => {
            let mut raft = pb::raft_client::RaftClient::new(channel.clone());
            (code(raft.append_entries(pb::RaftMessage::default()).await), Code::Unimplemented)
        }
        "release_ledger.v1.Raft/Vote" => {
            let mut raft = pb::raft_client::RaftClient::new(channel.clone());
            (code(raft.vote(pb::RaftMessage::default()).await), Code::Unimplemented)
        }
        "release_ledger.v1.Raft/InstallSnapshot" => {
            let mut raft = pb::raft_client::RaftClient::new(channel.clone());
            (code(raft.install_snapshot(pb::RaftMessage::default()).await), Code::Unimplemented)
        }
        "grpc.health.v1.Health/Check" => {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
            (code(health.check(request).await), Code::Ok)
        }
        "grpc.health.v1.Health/Watch" => {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
            (code(health.watch(request).await), Code::Ok)
        }
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo" => {
            use tonic_reflection::pb::v1 as r;
            let mut client = r::server_reflection_client::ServerReflectionClient::new(channel.clone());
            let request = r::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(r::server_reflection_request::MessageRequest::ListServices(String::new())),
            };
            (code(client.server_reflection_info(futures::stream::iter(vec![request])).await), Code::Ok)
        }
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => {
            use tonic_reflection::pb::v1alpha as r;
            let mut client = r::server_reflection_client::ServerReflectionClient::new(channel.clone());
            let request = r::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(r::server_reflection_request::MessageRequest::ListServices(String::new())),
            };
            (code(client.server_reflection_info(futures::stream::iter(vec![request])).await), Code::Ok)
        }
        other => panic!("the access test does not call {other}: add it"),
    }
}

/// Every method of every service the server describes (its descriptor sets).
fn described_methods() -> Vec<String> {
    use prost::Message as _;
    let mut methods = Vec::new();
    for set in [
        proto::FILE_DESCRIPTOR_SET,
        proto::FLIGHT_FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(set).unwrap();
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    methods.sort();
    methods.dedup();
    methods
}

#[test]
fn the_rule_table_names_every_method_the_server_describes_and_nothing_else() {
    let described = described_methods();
    let mut ruled: Vec<String> = api::access::RULES.iter().map(|(path, _)| (*path).to_owned()).collect();
    ruled.sort();
    assert!(described.len() > 30, "{described:?}");
    assert_eq!(ruled, described, "api::access::RULES and the services' descriptors differ");
}

fn now() -> u64 {
    ledger_wire::token::unix_now()
}

/// Registers `key` as `agent` in `tenant` with `roles`, signed by the admin.
async fn register(
    client: &mut LedgerClient<Authed>,
    admin: &KeyPair,
    tenant: &str,
    agent: &str,
    key: &KeyPair,
    roles: &[&str],
) {
    let data = serde_json::json!({"agentId": agent, "publicKey": key.public_key_base64(), "roles": roles, "eventTypes": ["TestsPassed"]});
    let body = body(tenant, "keys", "AgentKeyRegistered", &format!("reg-{agent}"), "admin", data);
    client.append(pb::AppendRequest { event: Some(wire(body, admin)) }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_every_kind_of_caller_with_the_code_the_table_says() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut admin_client = server.client().await;
    let admin = server.admin();
    let origin = admin_client.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner().origin_prefix;
    let (reader, member, revoked, other) =
        (KeyPair::generate(), KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
    register(&mut admin_client, &admin, TENANT, "auditor", &reader, &["Auditor"]).await;
    register(&mut admin_client, &admin, TENANT, "qa", &member, &["QA"]).await;
    register(&mut admin_client, &admin, TENANT, "old", &revoked, &["Reader"]).await;
    register(&mut admin_client, &admin, OTHER, "auditor", &other, &["Reader"]).await;
    let revoke = body(
        TENANT,
        "keys",
        "AgentKeyRevoked",
        "revoke-old",
        "admin",
        serde_json::json!({"keyId": revoked.key_id().to_hex()}),
    );
    admin_client.append(pb::AppendRequest { event: Some(wire(revoke, &admin)) }).await.unwrap();
    let event = wire(body(TENANT, "s", "TestsPassed", "matrix-1", "qa", tests_passed(1)), &member);
    // The projections must have loaded (Query answers UNAVAILABLE before).
    server.wait_for_projections().await;

    let token = |caller: Caller| -> Option<String> {
        let hour = Duration::from_secs(3600);
        Some(match caller {
            Caller::Anonymous => return None,
            Caller::OtherTenant => {
                ledger_wire::token::mint(&other, "auditor", Some(OTHER), &origin, hour, now()).unwrap()
            }
            Caller::Expired => ledger_wire::token::mint(
                &reader,
                "auditor",
                Some(TENANT),
                &origin,
                Duration::from_secs(60),
                now() - 7200,
            )
            .unwrap(),
            Caller::WrongAudience => {
                ledger_wire::token::mint(&reader, "auditor", Some(TENANT), "other.example/ledger", hour, now()).unwrap()
            }
            Caller::RevokedKey => {
                ledger_wire::token::mint(&revoked, "old", Some(TENANT), &origin, hour, now()).unwrap()
            }
            Caller::Member => ledger_wire::token::mint(&member, "qa", Some(TENANT), &origin, hour, now()).unwrap(),
            Caller::Reader => mint(&reader, "auditor", Some(TENANT), &origin),
            Caller::Operator => server.token.clone(),
        })
    };
    let plain = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut failures = Vec::new();
    for method in described_methods() {
        for caller in CALLERS {
            let bearer = token(caller).map_or(Bearer(None), |t| Bearer::new(&t));
            let channel = tonic::service::interceptor::InterceptedService::new(plain.clone(), bearer);
            let (got, ok) = call(&method, channel, &event).await;
            let want = expected(&method, caller, ok);
            if got != want {
                failures.push(format!("{method} as {caller:?}: {got:?}, want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of the matrix differ:\n{}", failures.len(), failures.join("\n"));

    // The refusals say which; none says whether another tenant exists.
    let as_reader = Bearer::new(&token(Caller::Reader).unwrap());
    let mut reader_client =
        LedgerClient::new(tonic::service::interceptor::InterceptedService::new(plain.clone(), as_reader));
    let existing =
        reader_client.read(pb::ReadRequest { tenant: OTHER.into(), from_seq: 0, to_seq: 1 }).await.unwrap_err();
    let missing =
        reader_client.read(pb::ReadRequest { tenant: "nobody".into(), from_seq: 0, to_seq: 1 }).await.unwrap_err();
    assert_eq!(existing.code(), Code::PermissionDenied);
    assert_eq!(existing.message().replace(OTHER, "T"), missing.message().replace("nobody", "T"));
    let info = reader_client.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner();
    assert!(info.tenants.is_empty(), "a reader learns no tenant list: {:?}", info.tenants);
    let info = admin_client.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.tenants, [TENANT, OTHER]);
    let revoked_status = {
        let bearer = Bearer::new(&token(Caller::RevokedKey).unwrap());
        let mut client = LedgerClient::new(tonic::service::interceptor::InterceptedService::new(plain.clone(), bearer));
        client.read(pb::ReadRequest { tenant: TENANT.into(), from_seq: 0, to_seq: 1 }).await.unwrap_err()
    };
    assert!(revoked_status.message().contains("was revoked"), "{revoked_status:?}");

    // A token that verified before is refused once its key is revoked (the signature check is
    // cached, the registry is read on every request).
    let reader_token = token(Caller::Reader).unwrap();
    let read_as = |token: String| {
        let channel = tonic::service::interceptor::InterceptedService::new(plain.clone(), Bearer::new(&token));
        async move {
            LedgerClient::new(channel).read(pb::ReadRequest { tenant: TENANT.into(), from_seq: 0, to_seq: 1 }).await
        }
    };
    assert!(read_as(reader_token.clone()).await.is_ok());
    assert!(read_as(reader_token.clone()).await.is_ok());
    let revoke = body(
        TENANT,
        "keys",
        "AgentKeyRevoked",
        "revoke-auditor",
        "admin",
        serde_json::json!({"keyId": reader.key_id().to_hex()}),
    );
    admin_client.append(pb::AppendRequest { event: Some(wire(revoke, &admin)) }).await.unwrap();
    let refused = read_as(reader_token).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("was revoked"), "{refused:?}");

    // Every decision is counted.
    let metrics = crate::metrics::scrape(server.metrics);
    assert!(
        metrics.contains(
            "ledger_access_decisions_total{method=\"/release_ledger.v1.Ledger/Read\",outcome=\"permission_denied\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"unauthenticated\""));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written to `dir`.
pub(crate) fn certificates(
    dir: &Path,
    client_cn: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair as CertKey, SanType};
    let ca_key = CertKey::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "release-ledger test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = CertKey::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let client_key = CertKey::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params.distinguished_name.push(DnType::CommonName, client_cn);
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    (
        write("ca.pem", ca.pem()),
        write("server.pem", server_cert.pem()),
        write("server.key", server_key.serialize_pem()),
        write("client.pem", client_cert.pem()),
        write("client.key", client_key.serialize_pem()),
    )
}

async fn tls_channel(
    url: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls
            .identity(tonic::transport::Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    }
    Channel::from_shared(url.to_owned()).unwrap().tls_config(tls).unwrap().connect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_maps_principals_and_refuses_what_it_cannot_verify() {
    let (dir, data) = temp_data_dir();
    let (ca, cert, key, client_cert, client_key) = certificates(dir.path(), "acme-auditor");
    let principals = dir.path().join("principals.toml");
    std::fs::write(
        &principals,
        format!("[[principal]]\nsubject = \"acme-auditor\"\ntenant = \"{TENANT}\"\nroles = [\"Auditor\"]\n"),
    )
    .unwrap();
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            ca.to_str().unwrap(),
            "--tls-require-client-cert",
            "--client-principals",
            principals.to_str().unwrap(),
        ],
    );
    let url = format!("https://{}", server.grpc);

    // The client certificate is the credential: a reader of acme, nothing else.
    let channel = tls_channel(&url, &ca, Some((&client_cert, &client_key))).await.unwrap();
    let mut client = LedgerClient::new(channel.clone());
    // An append over TLS (signed by the admin: the signature authenticates it) creates the tenant.
    let data = serde_json::json!({"agentId": "qa", "publicKey": KeyPair::generate().public_key_base64(), "roles": ["QA"], "eventTypes": ["TestsPassed"]});
    let registration = wire(body(TENANT, "keys", "AgentKeyRegistered", "reg-qa", "admin", data), &server.admin());
    client.append(pb::AppendRequest { event: Some(registration) }).await.unwrap();
    let read = client.read(pb::ReadRequest { tenant: TENANT.into(), from_seq: 0, to_seq: 1 }).await;
    assert!(read.is_ok(), "the certificate's principal reads its tenant: {read:?}");
    let other = client.read(pb::ReadRequest { tenant: OTHER.into(), from_seq: 0, to_seq: 0 }).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert!(other.message().contains("certificate CN=acme-auditor"), "{other:?}");

    // Without a client certificate the handshake fails where one is required.
    let no_identity = match tls_channel(&url, &ca, None).await {
        Err(_) => true,
        Ok(channel) => LedgerClient::new(channel).get_info(pb::GetInfoRequest {}).await.is_err(),
    };
    assert!(no_identity, "a client without a certificate got an answer");

    // A server certificate from a CA the client does not trust: refused by the client.
    let (other_dir, _) = temp_data_dir();
    let (untrusted_ca, ..) = certificates(other_dir.path(), "x");
    assert!(tls_channel(&url, &untrusted_ca, Some((&client_cert, &client_key))).await.is_err());

    // Plaintext to a TLS port gets nothing.
    let plaintext = Channel::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await;
    if let Ok(channel) = plaintext {
        assert!(LedgerClient::new(channel).get_info(pb::GetInfoRequest {}).await.is_err());
    }

    // The CLI speaks TLS with the same files.
    let out = std::process::Command::new(crate::binary())
        .args(["checkpoint", "--tenant", TENANT, "--server", &url])
        .args([
            "--ca-cert",
            ca.to_str().unwrap(),
            "--client-cert",
            client_cert.to_str().unwrap(),
            "--client-key",
            client_key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature verified"), "{out:?}");
    drop(channel);
}

#[test]
fn plaintext_on_a_reachable_address_is_refused_and_stores_nothing() {
    let (_dir, data) = temp_data_dir();
    let out = std::process::Command::new(crate::binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("refusing to serve plaintext gRPC on 0.0.0.0:0") && said.contains("--insecure-plaintext"),
        "{said}"
    );
    assert!(!data.exists(), "the refused start created {}", data.display());
    let address: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let server = Server::start_at(&data, address, &["--insecure-plaintext"]);
    assert!(server.log().contains("serving plaintext gRPC on a non-loopback address"), "{}", server.log());
}

/// Serves `body` as JSON to every HTTP request on a loopback port (a test OIDC issuer's JWKS).
fn serve_json(body: String) -> SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_id_token_from_a_trusted_issuer_reads_the_tenant_its_claim_names() {
    use base64::Engine as _;
    let issuer_key = KeyPair::generate();
    let public = ledger::keys::public_key_from_base64(&issuer_key.public_key_base64()).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_bytes());
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ci-1", "alg": "EdDSA", "use": "sig"}]});
    let jwks_at = serve_json(jwks.to_string());
    let (dir, data) = temp_data_dir();
    let config = dir.path().join("oidc.toml");
    std::fs::write(
        &config,
        format!(
            "[[issuer]]\nissuer = \"https://ci.example\"\naudience = \"release-ledger\"\njwks_url = \"http://{jwks_at}/jwks\"\n\
             tenant_claim = \"repository_owner\"\nroles = [\"Reader\"]\nonly_mapped = true\n[issuer.tenants]\n\"Acme-Corp\" = \"{TENANT}\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&data, &["--oidc", config.to_str().unwrap()]);
    let mut admin_client = server.client().await;
    for tenant in [TENANT, OTHER] {
        let data = serde_json::json!({"agentId": "qa", "publicKey": KeyPair::generate().public_key_base64(), "roles": ["QA"], "eventTypes": ["TestsPassed"]});
        let registration = wire(body(tenant, "keys", "AgentKeyRegistered", "reg-qa", "admin", data), &server.admin());
        admin_client.append(pb::AppendRequest { event: Some(registration) }).await.unwrap();
    }
    let id_token = |issuer: &str, audience: &str, owner: &str, kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({
            "iss": issuer, "aud": audience, "sub": "repo:acme-corp/billing:ref:refs/heads/main",
            "repository_owner": owner, "iat": now(), "exp": now() + 300,
        });
        let key = jsonwebtoken::EncodingKey::from_ed_pem(issuer_key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let plain = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let read = |token: String, tenant: &'static str| {
        let channel = tonic::service::interceptor::InterceptedService::new(plain.clone(), Bearer::new(&token));
        async move {
            LedgerClient::new(channel).read(pb::ReadRequest { tenant: tenant.into(), from_seq: 0, to_seq: 1 }).await
        }
    };
    let good = id_token("https://ci.example", "release-ledger", "Acme-Corp", "ci-1");
    assert!(read(good.clone(), TENANT).await.is_ok(), "the mapped tenant reads");
    let other = read(good, OTHER).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert!(other.message().contains("https://ci.example subject"), "{other:?}");
    for (token, why) in [
        (id_token("https://ci.example", "someone-else", "Acme-Corp", "ci-1"), "audience"),
        (id_token("https://evil.example", "release-ledger", "Acme-Corp", "ci-1"), "not trusted"),
        (id_token("https://ci.example", "release-ledger", "Unmapped-Org", "ci-1"), "not mapped"),
        (id_token("https://ci.example", "release-ledger", "Acme-Corp", "ci-unknown"), "has no key"),
    ] {
        let refused = read(token, TENANT).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{why}: {refused:?}");
        assert!(refused.message().contains(why), "{why}: {refused:?}");
    }
    // Signed by another key under the issuer's key id: the signature does not verify.
    let forged = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("ci-1".into());
        let claims = serde_json::json!({"iss": "https://ci.example", "aud": "release-ledger", "repository_owner": "Acme-Corp", "exp": now() + 300});
        let key =
            jsonwebtoken::EncodingKey::from_ed_pem(KeyPair::generate().to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let refused = read(forged, TENANT).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("signature"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_after_sighup_and_a_broken_one_keeps_the_old() {
    let (dir, data) = temp_data_dir();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let (ca1, cert1, key1, ..) = certificates(&first, "x");
    let (ca2, cert2, key2, ..) = certificates(&second, "x");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let server = Server::start(&data, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let url = format!("https://{}", server.grpc);
    let answers = |ca: std::path::PathBuf| {
        let url = url.clone();
        async move {
            match tls_channel(&url, &ca, None).await {
                Ok(channel) => LedgerClient::new(channel).get_info(pb::GetInfoRequest {}).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    assert!(answers(ca1.clone()).await && !answers(ca2.clone()).await, "served with the first certificate");

    // A broken key file and a SIGHUP: the reload fails, is logged, and the first certificate stays.
    std::fs::write(&key, "not a key").unwrap();
    let hup = |pid: u32| std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(hup(server.child.id()).success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("TLS configuration not reloaded") {
        assert!(std::time::Instant::now() < deadline, "no reload failure logged: {}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answers(ca1.clone()).await, "the configuration in force stays after a failed reload");

    // The second certificate and key, then SIGHUP: new connections get it.
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    assert!(hup(server.child.id()).success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !answers(ca2.clone()).await {
        assert!(std::time::Instant::now() < deadline, "the new certificate is not served: {}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!answers(ca1).await, "the old certificate is no longer served");
    // The reload is logged after the new configuration is in force (`api::tls`): a client can
    // be served the new certificate a moment before the line is written.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("TLS configuration reloaded") {
        assert!(std::time::Instant::now() < deadline, "no reload logged: {}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_transparency_makes_checkpoints_and_proofs_need_a_reader_and_refuses_tiles() {
    let (_dir, data) = temp_data_dir();
    let refused = std::process::Command::new(crate::binary())
        .args(["serve", "--private-transparency", "--tiles-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("serve no tiles"), "{refused:?}");
    assert!(!data.exists());

    let server = Server::start(&data, &["--private-transparency"]);
    let mut admin_client = server.client().await;
    let data_json = serde_json::json!({"agentId": "qa", "publicKey": KeyPair::generate().public_key_base64(), "roles": ["QA"], "eventTypes": ["TestsPassed"]});
    let registration = wire(body(TENANT, "keys", "AgentKeyRegistered", "reg-qa", "admin", data_json), &server.admin());
    admin_client.append(pb::AppendRequest { event: Some(registration) }).await.unwrap();
    let plain = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut anonymous = LedgerClient::new(plain);
    let status =
        anonymous.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let proof = anonymous
        .get_inclusion_proof(pb::GetInclusionProofRequest { tenant: TENANT.into(), seq: 0, tree_size: 0 })
        .await
        .unwrap_err();
    assert_eq!(proof.code(), Code::Unauthenticated, "{proof:?}");
    assert!(admin_client.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 }).await.is_ok());
}

/// `GET /metrics` over TLS to `address`, trusting `ca`: the response, or the error.
async fn scrape_tls(address: SocketAddr, ca: &Path) -> std::io::Result<String> {
    use rustls_pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_tls_with_metrics_tls() {
    let (dir, data) = temp_data_dir();
    let (ca, cert, key, ..) = certificates(dir.path(), "x");
    let server = Server::start(
        &data,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--metrics-tls"],
    );
    let response = scrape_tls(server.metrics, &ca).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("ledger_connections_open"), "{response}");
    // Plaintext gets no metrics.
    let plain = {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(server.metrics).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(!plain.contains("ledger_connections_open"), "{plain}");
    // Another CA's client refuses the server's certificate.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (other_ca, ..) = certificates(&other, "x");
    assert!(scrape_tls(server.metrics, &other_ca).await.is_err());
}

#[test]
fn the_cli_signs_in_with_its_signing_key_and_mints_tokens_for_readers() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    let admin_key = data.join("keys/admin.pem");
    // No token anywhere: the CLI signs its own reads with the key it signs events with.
    let run = |args: &[&str]| {
        std::process::Command::new(crate::binary())
            .current_dir(cwd)
            .env_remove("RELEASE_LEDGER_TOKEN")
            .env_remove("RELEASE_LEDGER_TOKEN_FILE")
            .env("RELEASE_LEDGER_SERVER", server.url())
            .args(args)
            .output()
            .unwrap()
    };
    for name in ["qa", "aud"] {
        assert!(run(&["keygen", "--out", &format!("{name}.pem")]).status.success());
    }
    let admin = admin_key.to_str().unwrap();
    let register = |agent: &str, roles: &str, key: &str, create: bool| {
        let mut args = vec!["keys", "register", "--tenant", TENANT, "--agent", agent, "--roles", roles];
        args.extend(["--public-key", key, "--admin-key", admin, "--types", "TestsPassed"]);
        if create {
            args.push("--create-tenant");
        }
        run(&args)
    };
    let out = register("qa", "QA", "qa.pem", true);
    assert!(out.status.success(), "{out:?}");
    // The tenant exists now: the admin's sign-in sees it (anonymous, GetInfo lists no tenant).
    let out = register("auditor", "Auditor", "aud.pem", false);
    assert!(out.status.success(), "{out:?}");
    // An agent appends with its own key and no token (its registration is looked up with a
    // token it signs itself).
    let out = run(&[
        "append",
        "--tenant",
        TENANT,
        "--key",
        "qa.pem",
        "--type",
        "TestsPassed",
        "--stream",
        "s",
        "--release-id",
        "r1",
        "--data",
        r#"{"module":"billing","version":"1.0.0","suite":"unit","passed":1,"failed":0}"#,
    ]);
    assert!(out.status.success(), "{out:?}");
    // Reading needs a credential.
    let out = run(&["tail", "--tenant", TENANT]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"), "{out:?}");
    // The auditor mints a token with its key, and reads its tenant, and only it.
    // As the issue has it: no --agent (the subject is the key id).
    let out = run(&["token", "--key", "aud.pem", "--tenant", TENANT, "--ttl", "15m"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = run(&["tail", "--tenant", TENANT, "--token", &token]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("TestsPassed"), "{out:?}");
    let out = run(&["tail", "--tenant", OTHER, "--token", &token]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"), "{out:?}");
    // A lifetime beyond the server's maximum is refused when used.
    let out = run(&["token", "--key", "aud.pem", "--tenant", TENANT, "--agent", "auditor", "--ttl", "2h"]);
    let long = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = run(&["tail", "--tenant", TENANT, "--token", &long]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepts at most 3600 s"), "{out:?}");
}
