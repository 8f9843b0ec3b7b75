//! # witness-http — C2SP tlog-witness over HTTP
//!
//! The server's routes and the client a log uses to submit, over the `witness` crate (kept
//! apart so that verifiers need no HTTP stack or async runtime).
//!
//! Server: `POST <prefix>/add-checkpoint` and the monitoring endpoint
//! `GET <prefix>/<origin hash>/checkpoint` (prefix `/`: the submission and monitoring prefixes
//! are the same, which the spec allows).
//!
//! Client: [`WitnessClient::add_checkpoint`] sends one request; [`submit`] handles a 409 by
//! retrying once from the size the witness reports, with a consistency proof from a
//! [`ProofSource`]. Plain `http://` only (the witness is expected behind a TLS-terminating
//! proxy or on a private network); one connection per request.

#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;

use witness::cosig::verify_cosignature;
use witness::note::{parse_signature_line, SignatureLine, Vkey};
use witness::witness::{AddCheckpoint, AddError, Witness, MAX_REQUEST_BYTES};
use witness::Hash32;

/// The `Content-Type` of a 409 body (tlog-witness).
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> axum::Router {
    axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", axum::routing::get(checkpoint))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let result = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    let text = |status: StatusCode, body: String| {
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    match result {
        Ok(Ok(lines)) => text(StatusCode::OK, lines),
        Ok(Err(AddError::Conflict { size, .. })) => {
            (StatusCode::CONFLICT, [(header::CONTENT_TYPE, TLOG_SIZE_CONTENT_TYPE)], format!("{size}\n"))
                .into_response()
        }
        Ok(Err(error)) => {
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(%error, "add-checkpoint failed");
            } else {
                tracing::info!(%error, status = status.as_u16(), "add-checkpoint refused");
            }
            text(status, format!("{error}\n"))
        }
        Err(join) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("add-checkpoint panicked: {join}\n")),
    }
}

async fn checkpoint(State(witness): State<Arc<Witness>>, Path(origin_hash): Path<String>) -> Response {
    match tokio::task::spawn_blocking(move || witness.latest_by_hash(&origin_hash)).await {
        Ok(Ok(Some(cosigned))) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cosigned.note).into_response()
        }
        // "If the witness has never cosigned a checkpoint for that log, it MUST respond with a
        // "404 Not Found"".
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no checkpoint cosigned for this origin\n").into_response(),
        Ok(Err(error)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
        Err(join) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{join}\n")).into_response(),
    }
}

/// Why a submission to a witness did not return a cosignature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The witness's latest cosigned size is not the old size sent (409).
    #[error("witness {witness} has cosigned size {size}, not {old_size}")]
    Conflict {
        /// The witness's name.
        witness: String,
        /// The old size sent.
        old_size: u64,
        /// The size the witness reported.
        size: u64,
    },
    /// The witness has cosigned a larger tree than the checkpoint submitted: the log is behind
    /// what a witness saw, a fork or a rollback.
    #[error("witness {witness} has cosigned size {witness_size}, beyond the checkpoint's {size}: fork or rollback")]
    WitnessAhead {
        /// The witness's name.
        witness: String,
        /// Its cosigned size.
        witness_size: u64,
        /// The submitted checkpoint's size.
        size: u64,
    },
    /// Another refusal (400, 403, 404, 422, 5xx), with the witness's reason.
    #[error("witness {witness} answered {status}: {body}")]
    Refused {
        /// The witness's name.
        witness: String,
        /// The HTTP status.
        status: u16,
        /// The response body, trimmed.
        body: String,
    },
    /// No connection, a timeout, a broken response.
    #[error("witness {witness} at {url}: {reason}")]
    Transport {
        /// The witness's name.
        witness: String,
        /// Its URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A 200 whose body holds no valid cosignature of the witness's key.
    #[error("witness {witness} returned no valid cosignature: {reason}")]
    BadCosignature {
        /// The witness's name.
        witness: String,
        /// Why.
        reason: String,
    },
    /// The consistency proof for the request could not be produced.
    #[error("no consistency proof from {old_size} to {size}: {reason}")]
    Proof {
        /// From.
        old_size: u64,
        /// To.
        size: u64,
        /// Why.
        reason: String,
    },
}

/// A witness to submit to: its submission prefix and the vkey its cosignatures must verify with.
#[derive(Debug, Clone)]
pub struct WitnessClient {
    name: String,
    url: String,
    authority: String,
    path: String,
    vkey: Vkey,
    timeout: Duration,
}

impl WitnessClient {
    /// A client of the witness at submission prefix `url` (`http://host:port[/prefix]`),
    /// called `name` in messages.
    pub fn new(name: &str, url: &str, vkey: Vkey, timeout: Duration) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("witness {name}: bad URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "witness {name}: URL {url:?} is not http:// (put TLS in a proxy in front of the witness)"
            ));
        }
        let authority = uri.authority().ok_or_else(|| format!("witness {name}: URL {url:?} has no host"))?.to_string();
        let path = format!("{}/add-checkpoint", uri.path().trim_end_matches('/'));
        Ok(Self { name: name.to_owned(), url: url.to_owned(), authority, path, vkey, timeout })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one `add-checkpoint` request; returns the witness's verified cosignature lines
    /// (lines of other keys in the response are ignored: "The client MUST ignore any
    /// cosignatures from unknown keys").
    pub async fn add_checkpoint(
        &self,
        old_size: u64,
        proof: &[Hash32],
        note: &str,
        note_text: &str,
    ) -> Result<Vec<SignatureLine>, SubmitError> {
        let body = AddCheckpoint::body(old_size, proof, note);
        let (status, content_type, response) = tokio::time::timeout(self.timeout, self.post(body))
            .await
            .map_err(|_| self.transport(format!("no answer within {:?}", self.timeout)))??;
        match status {
            200 => self.cosignatures(&response, note_text),
            409 => {
                let size = (content_type.as_deref() == Some(TLOG_SIZE_CONTENT_TYPE))
                    .then(|| response.strip_suffix('\n'))
                    .flatten()
                    .and_then(|s| witness::note::canonical_decimal(s, "size").ok())
                    .ok_or_else(|| self.transport(format!("409 without a text/x.tlog.size body: {response:?}")))?;
                Err(SubmitError::Conflict { witness: self.name.clone(), old_size, size })
            }
            status => {
                Err(SubmitError::Refused { witness: self.name.clone(), status, body: response.trim().to_owned() })
            }
        }
    }

    fn cosignatures(&self, response: &str, note_text: &str) -> Result<Vec<SignatureLine>, SubmitError> {
        let bad = |reason: String| SubmitError::BadCosignature { witness: self.name.clone(), reason };
        if !response.ends_with('\n') {
            return Err(bad("the response does not end in a newline".into()));
        }
        let mut valid = Vec::new();
        for line in response.lines() {
            let line = parse_signature_line(line).map_err(|e| bad(e.0))?;
            if self.vkey.matches(&line) {
                verify_cosignature(&self.vkey, note_text, &line).map_err(|e| bad(e.to_string()))?;
                valid.push(line);
            }
        }
        if valid.is_empty() {
            return Err(bad(format!("no line of {}", self.vkey)));
        }
        Ok(valid)
    }

    fn transport(&self, reason: String) -> SubmitError {
        SubmitError::Transport { witness: self.name.clone(), url: self.url.clone(), reason }
    }

    async fn post(&self, body: String) -> Result<(u16, Option<String>, String), SubmitError> {
        let stream =
            tokio::net::TcpStream::connect(&self.authority).await.map_err(|e| self.transport(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = http::Request::post(&self.path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.transport(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| self.transport(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| self.transport(format!("reading the response: {e}")))?
            .to_bytes();
        driver.abort();
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| self.transport("response is not UTF-8".into()))?;
        Ok((status, content_type, text))
    }
}

/// Where a submitter gets consistency proofs: the log's own tree.
pub trait ProofSource {
    /// The RFC 6962 consistency proof from `old_size` to `size`.
    fn consistency_proof(&self, old_size: u64, size: u64) -> Result<Vec<Hash32>, String>;
}

impl<F: Fn(u64, u64) -> Result<Vec<Hash32>, String>> ProofSource for F {
    fn consistency_proof(&self, old_size: u64, size: u64) -> Result<Vec<Hash32>, String> {
        self(old_size, size)
    }
}

/// A cosignature obtained by [`submit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obtained {
    /// The old size the successful request used (the witness's previous size).
    pub old_size: u64,
    /// The witness's cosignature lines.
    pub lines: Vec<SignatureLine>,
}

/// Submits the checkpoint `note` (text `note_text`, tree size `size`) to `witness`, starting
/// from `old_size` (the size it last cosigned as far as the caller knows; 0 if unknown). On a
/// 409 it retries once from the size the witness reports, with a proof from `proofs`.
pub async fn submit(
    witness: &WitnessClient,
    note: &str,
    note_text: &str,
    size: u64,
    old_size: u64,
    proofs: &impl ProofSource,
) -> Result<Obtained, SubmitError> {
    let mut old_size = old_size;
    for attempt in 0..2 {
        if old_size > size {
            return Err(SubmitError::WitnessAhead { witness: witness.name.clone(), witness_size: old_size, size });
        }
        let proof = if old_size == 0 {
            Vec::new()
        } else {
            proofs.consistency_proof(old_size, size).map_err(|reason| SubmitError::Proof { old_size, size, reason })?
        };
        match witness.add_checkpoint(old_size, &proof, note, note_text).await {
            Ok(lines) => return Ok(Obtained { old_size, lines }),
            Err(SubmitError::Conflict { size: witness_size, .. }) if attempt == 0 && witness_size != old_size => {
                old_size = witness_size;
            }
            Err(error) => return Err(error),
        }
    }
    Err(SubmitError::Conflict { witness: witness.name.clone(), old_size, size: old_size })
}
