//! The event body `ledger-bench` signs, shared with the benches that measure what the server
//! does with those events (the projection worker's fold bench), so that both always fold the
//! same bytes. A test pins the bytes of one body: a change to them changes what the issue-20
//! measurements append, and has to say so.

/// One `TestsPassed` signal of a `ledger-bench` client.
#[derive(Debug, Clone, Copy)]
pub struct SignalBody<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The client's stream (`bench/client-N`).
    pub stream: &'a str,
    /// The client's event id prefix (`RUN-cN`).
    pub id_prefix: &'a str,
    /// `"w"` for the warmup, `"m"` for the measured events.
    pub phase: &'a str,
    /// The event's number within its client and phase.
    pub n: u64,
    /// `occurredAt`.
    pub occurred_at: &'a str,
    /// The signing agent.
    pub agent_id: &'a str,
    /// Bytes of `data.notes`, which pad the body to `--payload-bytes`.
    pub padding: usize,
}

/// Events of one client per release: `RUN-cN-PHASE(n / 16)`, never declared, so no decisions
/// follow and each release stays the size of a real one for the projection worker.
pub const EVENTS_PER_RELEASE: u64 = 16;

impl SignalBody<'_> {
    /// The body's bytes: a catalogue-valid `TestsPassed`, its event id `PREFIX-PHASEn`.
    pub fn to_vec(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "tenant": self.tenant,
            "stream": self.stream,
            "type": "TestsPassed",
            "eventId": format!("{}-{}{}", self.id_prefix, self.phase, self.n),
            "occurredAt": self.occurred_at,
            "releaseId": format!("{}-{}{}", self.id_prefix, self.phase, self.n / EVENTS_PER_RELEASE),
            "actor": { "agentId": self.agent_id },
            "data": {
                "module": "bench", "version": "1.0.0", "suite": "load", "passed": self.n, "failed": 0,
                "notes": "x".repeat(self.padding),
            },
        });
        serde_json::to_vec(&body).expect("a JSON value always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `ledger-bench` has signed since issue 20 was filed (keys in byte order, as a
    /// `serde_json::Value` writes them).
    #[test]
    fn a_signal_body_is_the_bytes_ledger_bench_signs() {
        let body = SignalBody {
            tenant: "bench-0",
            stream: "bench/client-3",
            id_prefix: "r1a2-c3",
            phase: "m",
            n: 37,
            occurred_at: "2026-12-08T00:00:00Z",
            agent_id: "bench-agent-0",
            padding: 4,
        };
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            r#"{"actor":{"agentId":"bench-agent-0"},"data":{"failed":0,"module":"bench","notes":"xxxx","passed":37,"suite":"load","version":"1.0.0"},"eventId":"r1a2-c3-m37","occurredAt":"2026-12-08T00:00:00Z","releaseId":"r1a2-c3-m2","stream":"bench/client-3","tenant":"bench-0","type":"TestsPassed"}"#
        );
        let parsed = ledger::ParsedEvent::parse(&body.to_vec()).unwrap();
        assert_eq!(parsed.header.release_id.as_deref(), Some("r1a2-c3-m2"));
    }
}
