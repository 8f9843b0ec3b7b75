//! The web console over HTTP, without a browser: who may see which page (every page refuses a
//! reader of another tenant, the same way whether the tenant exists or not), sign-in and its
//! cookie, the security headers, and the two approval endpoints through the ledger's own
//! checks — a refused append stores nothing. The browser tests are console.rs.

use std::path::Path;

use ledger::KeyPair;
use proto::v1 as pb;

use super::{cli_register_agent, mint, temp_data_dir, Server};

/// An HTTP answer: status, headers we look at, body.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().into()
}

fn answer(response: Result<http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.expect("the console answers");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer { status, location, set_cookie, headers, body }
}

/// GET `path` with `auth` (a bearer token, or `cookie:VALUE`), no redirects followed.
fn get(base: &str, path: &str, auth: Option<&str>) -> Answer {
    let mut request = agent().get(format!("{base}{path}"));
    match auth {
        Some(cookie) if cookie.starts_with("cookie:") => {
            request = request.header("cookie", &cookie["cookie:".len()..]);
        }
        Some(token) => request = request.header("authorization", &format!("Bearer {token}")),
        None => {}
    }
    answer(request.call())
}

/// POST a JSON body with a bearer token.
fn post_json(base: &str, path: &str, token: &str, body: &serde_json::Value) -> Answer {
    answer(
        agent()
            .post(format!("{base}{path}"))
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .send(body.to_string()),
    )
}

fn key(cwd: &Path, agent: &str) -> KeyPair {
    KeyPair::load(&cwd.join(format!("{agent}.pem"))).unwrap()
}

/// The tenant's log size, over gRPC.
async fn size(server: &Server, tenant: &str) -> u64 {
    let mut client = server.client().await;
    let checkpoint =
        client.get_checkpoint(pb::GetCheckpointRequest { tenant: tenant.into(), size: 0 }).await.unwrap().into_inner();
    checkpoint.size
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

/// A started server with a console, tenants `acme` (an Auditor, a QA key without a reader
/// role) and `globex` (a Reader), and the audience of tokens.
async fn setup(dir: &Path, data: &Path) -> (Server, String, String) {
    let server = Server::start(data, &["--console-listen", "127.0.0.1:0"]);
    let console = format!("http://{}", server.console.expect("the start line names the console address"));
    cli_register_agent(&server, dir, "acme", "auditor", "Auditor", "");
    cli_register_agent(&server, dir, "acme", "qa-lead", "QA", "");
    cli_register_agent(&server, dir, "globex", "g-reader", "Reader", "");
    let info = server.client().await.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner();
    let audience = info.origin_prefix;
    // Pages answer 503 until the projections have loaded (just after the start).
    for _ in 0..100 {
        if get(&console, "/t/acme", Some(&server.token)).status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (server, console, audience)
}

/// Checked by breaking it: `Console::reader` without its `check` (any principal reads any
/// tenant) fails here.
#[tokio::test(flavor = "multi_thread")]
async fn every_console_page_refuses_a_reader_of_another_tenant_and_asks_strangers_to_sign_in() {
    let (dir, data) = temp_data_dir();
    let (server, console, audience) = setup(dir.path(), &data).await;
    let cwd = dir.path();
    let auditor = mint(&key(cwd, "auditor"), "auditor", Some("acme"), &audience);
    let qa = mint(&key(cwd, "qa-lead"), "qa-lead", Some("acme"), &audience);
    let stranger = mint(&key(cwd, "g-reader"), "g-reader", Some("globex"), &audience);
    let pages = [
        "/t/acme",
        "/t/acme/releases/release-1",
        "/t/acme/releases/release-1/explain",
        "/t/acme/entries/0",
        "/t/acme/freezes",
        "/t/acme/modules/billing?environment=prod",
    ];
    let data_endpoints = [
        "/t/acme/entries/0/proof.json",
        "/t/acme/releases/release-1/attestation.json",
        "/t/acme/releases/release-1/evidence.tar",
        "/t/acme/events",
    ];
    for page in pages {
        // Nobody: to the sign-in page, coming back here afterwards.
        let anonymous = get(&console, page, None);
        assert_eq!(anonymous.status, 303, "{page}: {}", anonymous.body);
        let location = anonymous.location.unwrap();
        assert!(location.starts_with("/login?next=%2Ft%2Facme"), "{page}: {location}");
        // A reader of globex: refused, with the gRPC port's words, the same for a tenant that
        // does not exist.
        let refused = get(&console, page, Some(&stranger));
        assert_eq!(refused.status, 403, "{page}: {}", refused.body);
        assert!(refused.body.contains("id=\"refused\""), "{page}: {}", refused.body);
        assert!(refused.body.contains("may not read tenant acme"), "{page}: {}", refused.body);
        let nowhere = get(&console, &page.replace("/t/acme", "/t/nosuch"), Some(&stranger));
        assert_eq!(nowhere.status, 403, "{page}");
        assert_eq!(
            nowhere.body.replace("nosuch", "acme"),
            refused.body,
            "{page}: a tenant that does not exist is refused in the same words"
        );
        // A key of acme without a reader role.
        let no_role = get(&console, page, Some(&qa));
        assert_eq!(no_role.status, 403, "{page}");
        assert!(no_role.body.contains("holds no reader role"), "{page}: {}", no_role.body);
        // A forged token: back to sign-in, saying why.
        let mut forged = auditor.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        let bad = get(&console, page, Some(&forged));
        assert_eq!(bad.status, 303, "{page}");
        assert!(bad.location.unwrap().contains("&problem="), "{page}");
    }
    for endpoint in data_endpoints {
        assert_eq!(get(&console, endpoint, None).status, 401, "{endpoint}");
        let refused = get(&console, endpoint, Some(&stranger));
        assert_eq!(refused.status, 403, "{endpoint}: {}", refused.body);
        let error: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(error["code"], "PermissionDenied", "{endpoint}");
        assert!(error["message"].as_str().unwrap().contains("may not read tenant acme"), "{endpoint}");
    }
    // The tenant's own reader sees its pages.
    for page in ["/t/acme", "/t/acme/entries/0", "/t/acme/freezes", "/t/acme/modules/billing?environment=prod"] {
        let seen = get(&console, page, Some(&auditor));
        assert_eq!(seen.status, 200, "{page}: {}", seen.body);
        assert!(seen.body.starts_with("<!DOCTYPE html><html lang=\"en\">"), "{page}");
    }
    assert_eq!(get(&console, "/t/acme/releases/release-1", Some(&auditor)).status, 404);
    let proof = get(&console, "/t/acme/entries/0/proof.json", Some(&auditor));
    assert_eq!(proof.status, 200, "{}", proof.body);
    let proof: serde_json::Value = serde_json::from_str(&proof.body).unwrap();
    assert_eq!(proof["seq"], 0);
    assert!(proof["checkpoint"].as_str().unwrap().starts_with(&format!("{audience}/acme\n")));
    // The operator view is for operators.
    let operator = get(&console, "/operator", Some(&auditor));
    assert_eq!(operator.status, 403);
    assert!(operator.body.contains("is not one"), "{}", operator.body);
    let operator = get(&console, "/operator", Some(&server.token));
    assert_eq!(operator.status, 200);
    assert!(operator.body.contains("data-tenant=\"acme\"") && operator.body.contains("data-tenant=\"globex\""));
    // Home: a reader goes to its tenant; an operator sees every tenant.
    assert_eq!(get(&console, "/", Some(&auditor)).location.as_deref(), Some("/t/acme"));
    let home = get(&console, "/", Some(&server.token));
    assert!(home.body.contains("href=\"/t/acme\"") && home.body.contains("href=\"/t/globex\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_keeps_the_token_in_a_strict_cookie_and_pages_carry_the_security_headers() {
    let (dir, data) = temp_data_dir();
    let (_server, console, audience) = setup(dir.path(), &data).await;
    let auditor = mint(&key(dir.path(), "auditor"), "auditor", Some("acme"), &audience);
    let form = |token: &str, next: &str| {
        answer(agent().post(format!("{console}/login")).send_form([("token", token), ("next", next)]))
    };
    let signed_in = form(&auditor, "/t/acme/freezes");
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location.as_deref(), Some("/t/acme/freezes"));
    let cookie = signed_in.set_cookie.unwrap();
    assert!(cookie.starts_with(&format!("rl_token={auditor};")), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plaintext loopback: no Secure attribute: {cookie}");
    // It expires with the token (minted for an hour).
    let max_age: u64 = cookie.split("; Max-Age=").nth(1).and_then(|v| v.split(';').next()).unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&max_age), "Max-Age {max_age}: {cookie}");
    let with_cookie = get(&console, "/t/acme/freezes", Some(&format!("cookie:rl_token={auditor}")));
    assert_eq!(with_cookie.status, 200);
    // `next` never leaves the site.
    assert_eq!(form(&auditor, "//evil.example/x").location.as_deref(), Some("/"));
    assert_eq!(form(&auditor, "https://evil.example/").location.as_deref(), Some("/"));
    assert_eq!(form(&auditor, "/\t/evil.example/").location.as_deref(), Some("/"), "a tab browsers drop");
    assert_eq!(form(&auditor, "/\\evil.example/").location.as_deref(), Some("/"));
    // A token that does not verify: the reason, no cookie.
    let refused = form("not-a-token", "/t/acme");
    assert_eq!(refused.status, 401);
    assert!(refused.set_cookie.is_none());
    assert!(refused.body.contains("id=\"login-problem\""), "{}", refused.body);
    // Signing out forgets the cookie.
    let out = answer(agent().post(format!("{console}/logout")).send_empty());
    assert_eq!(out.status, 303);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    // Every answer: no framing, no sniffing, only this origin's scripts, nothing cached.
    let page = get(&console, "/t/acme", Some(&auditor));
    let csp = page.header("content-security-policy").unwrap();
    for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    // Bad filters are named, not ignored.
    let bad = get(&console, "/t/acme?status=Shipped", Some(&auditor));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("no status &quot;Shipped&quot;"), "{}", bad.body);
    let bad = get(&console, "/t/acme?from=yesterday", Some(&auditor));
    assert_eq!(bad.status, 400);
    let bad = get(&console, "/t/acme?after=%00%01", Some(&auditor));
    assert_eq!(bad.status, 400, "a malformed page cursor: {}", bad.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_prepared_and_posted_to_the_console_meets_the_ledgers_own_checks() {
    let (dir, data) = temp_data_dir();
    let (server, console, audience) = setup(dir.path(), &data).await;
    let cwd = dir.path();
    cli_register_agent(&server, cwd, "acme", "release-manager", "ReleaseManager", "");
    let auditor = mint(&key(cwd, "auditor"), "auditor", Some("acme"), &audience);
    let manager = key(cwd, "release-manager");
    let prepare = |key_id: &str, role: &str| {
        post_json(
            &console,
            "/t/acme/approvals/prepare",
            &auditor,
            &serde_json::json!({"releaseId": "release-7", "keyId": key_id, "role": role, "comment": "ship it"}),
        )
    };
    // Refused before signing, with the reason: a key the tenant does not hold, a role the key
    // does not hold.
    let unknown = prepare(&KeyPair::generate().key_id().to_hex(), "ReleaseManager");
    assert_eq!(unknown.status, 403);
    assert!(unknown.body.contains("is not registered in tenant acme"), "{}", unknown.body);
    let wrong_role = prepare(&manager.key_id().to_hex(), "CTO");
    assert_eq!(wrong_role.status, 403);
    assert!(wrong_role.body.contains("holds the roles [ReleaseManager], not CTO"), "{}", wrong_role.body);
    // The event to sign.
    let prepared = prepare(&manager.key_id().to_hex(), "ReleaseManager");
    assert_eq!(prepared.status, 200, "{}", prepared.body);
    let prepared: serde_json::Value = serde_json::from_str(&prepared.body).unwrap();
    let payload = unb64(prepared["payload"].as_str().unwrap());
    let event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(event["type"], "ApprovalGranted");
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["releaseId"], "release-7");
    assert_eq!(event["actor"], serde_json::json!({"agentId": "release-manager", "role": "ReleaseManager"}));
    assert_eq!(event["data"], serde_json::json!({"role": "ReleaseManager", "comment": "ship it", "method": "UI"}));
    let payload_type = prepared["payloadType"].as_str().unwrap();
    let envelope = |signer: &KeyPair, payload: &[u8]| {
        let sig = signer.sign(&ledger::pae(payload_type, payload));
        serde_json::json!({
            "payloadType": payload_type,
            "payload": b64(payload),
            "signatures": [{"keyid": signer.key_id().to_hex(), "sig": b64(&sig)}],
        })
    };
    let before = size(&server, "acme").await;
    // Refusals store nothing: signed by a key that is not the one the event names (a QA key
    // approving as ReleaseManager), a payload changed after signing, an event for another
    // tenant, a body that is not JSON.
    let qa = key(cwd, "qa-lead");
    let refused = post_json(&console, "/t/acme/append", &auditor, &envelope(&qa, &payload));
    assert!(matches!(refused.status, 400 | 401 | 403), "{}: {}", refused.status, refused.body);
    let error: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert!(error["code"].is_string() && !error["message"].as_str().unwrap().is_empty());
    let mut tampered = envelope(&manager, &payload);
    let changed = String::from_utf8(payload.clone()).unwrap().replace("ship it", "ship it now");
    tampered["payload"] = b64(changed.as_bytes()).into();
    let refused = post_json(&console, "/t/acme/append", &auditor, &tampered);
    assert!(matches!(refused.status, 400 | 401 | 403), "{}: {}", refused.status, refused.body);
    assert!(refused.body.contains("signature"), "{}", refused.body);
    let elsewhere = String::from_utf8(payload.clone()).unwrap().replace("\"tenant\":\"acme\"", "\"tenant\":\"globex\"");
    let refused = post_json(&console, "/t/acme/append", &auditor, &envelope(&manager, elsewhere.as_bytes()));
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("not this page's tenant"), "{}", refused.body);
    let not_json = answer(
        agent()
            .post(format!("{console}/t/acme/append"))
            .header("authorization", &format!("Bearer {auditor}"))
            .header("content-type", "text/plain")
            .send("{}"),
    );
    assert_eq!(not_json.status, 415);
    assert_eq!(size(&server, "acme").await, before, "refused appends stored nothing");
    // Signed by the key it names: appended, with a receipt.
    let appended = post_json(&console, "/t/acme/append", &auditor, &envelope(&manager, &payload));
    assert_eq!(appended.status, 200, "{}", appended.body);
    let receipt: serde_json::Value = serde_json::from_str(&appended.body).unwrap();
    assert_eq!(receipt["seq"].as_u64(), Some(before));
    assert_eq!(receipt["entryHash"].as_str().unwrap().len(), 64);
    assert_eq!(size(&server, "acme").await, before + 1);
    // The entry in the log is the one signed, byte for byte.
    let entry = server
        .client()
        .await
        .get_entry(pb::GetEntryRequest { tenant: "acme".into(), key: Some(pb::get_entry_request::Key::Seq(before)) })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::entry::Body::Envelope(stored)) = entry.body else { panic!("entry {before} has no envelope") };
    assert_eq!(stored.payload, payload);
}

/// One HTTP/1.1 request over TLS to `address` (trusting `ca`, presenting `identity` if given):
/// the whole response, or the error.
async fn https(
    address: std::net::SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    request: &str,
) -> std::io::Result<String> {
    use rustls_pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_the_console_speaks_https_and_maps_client_certificates_like_the_grpc_port() {
    let (dir, data) = temp_data_dir();
    let (ca, cert, key, client_cert, client_key) = super::access::certificates(dir.path(), "acme-auditor");
    let principals = dir.path().join("principals.toml");
    std::fs::write(
        &principals,
        "[[principal]]\nsubject = \"acme-auditor\"\ntenant = \"acme\"\nroles = [\"Auditor\"]\n",
    )
    .unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            &path(&cert),
            "--tls-key",
            &path(&key),
            "--tls-client-ca",
            &path(&ca),
            "--client-principals",
            &path(&principals),
            "--console-listen",
            "127.0.0.1:0",
        ],
    );
    let console = server.console.unwrap();
    let identity = Some((client_cert.as_path(), client_key.as_path()));
    let get = |page: &str| format!("GET {page} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    // The client certificate is the principal: its tenant's pages, nobody else's. (Until the
    // projections have loaded, just after the start, a page is 503 with Retry-After.)
    let mut board = https(console, &ca, identity, &get("/t/acme")).await.unwrap();
    for _ in 0..100 {
        if !board.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(board.to_ascii_lowercase().contains("retry-after: 1"), "{board}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        board = https(console, &ca, identity, &get("/t/acme")).await.unwrap();
    }
    assert!(board.starts_with("HTTP/1.1 200"), "{board}");
    assert!(board.contains("certificate CN=acme-auditor"), "the page names the principal: {board}");
    let other = https(console, &ca, identity, &get("/t/globex")).await.unwrap();
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    assert!(other.contains("certificate CN=acme-auditor may not read tenant globex"), "{other}");
    // Without a certificate: the sign-in page.
    let anonymous = https(console, &ca, None, &get("/t/acme")).await.unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 303"), "{anonymous}");
    // Signing in over TLS sets a Secure cookie.
    let form = format!("token={}&next=%2F", server.token);
    let login = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let signed_in = https(console, &ca, None, &login).await.unwrap();
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    let cookie = signed_in.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plaintext HTTP on the TLS port is not served.
    let plain = answer_plain(console).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "plaintext was served: {plain:?}");
}

/// A plaintext request to a TLS port: whatever comes back (nothing, or a TLS alert).
async fn answer_plain(address: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = tcp.write_all(b"GET /t/acme HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut bytes)).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_board_left_open_does_not_hold_a_graceful_stop() {
    use std::io::{BufRead as _, Write as _};
    let (dir, data) = temp_data_dir();
    let (server, console, _) = setup(dir.path(), &data).await;
    // A browser's live-update stream: its first event is the log size.
    let address = console.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(stream, "GET /t/acme/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\r\n", server.token)
        .unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut seen = String::new();
    while !seen.contains("event: head") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended early: {seen}");
        seen.push_str(&line);
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    // SIGTERM: the stream ends with the stop, well inside the default 10 s grace period.
    let started = std::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the stop took {:?}", started.elapsed());
}
