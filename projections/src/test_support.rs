//! What the unit tests of several modules share.

/// An event body as agents sign it: `tenant`, stream `s`, event id `e-<type>`, a fixed
/// `occurredAt`, agent `ci`, and `releaseId` when given.
#[allow(clippy::unwrap_used)]
pub(crate) fn body(tenant: &str, event_type: &str, release: Option<&str>, data: serde_json::Value) -> Vec<u8> {
    let mut body = serde_json::json!({
        "tenant": tenant, "stream": "s", "type": event_type, "eventId": format!("e-{event_type}"),
        "occurredAt": "2026-05-23T09:32:00Z", "actor": {"agentId": "ci"}, "data": data,
    });
    if let Some(release) = release {
        body["releaseId"] = release.into();
    }
    serde_json::to_vec(&body).unwrap()
}
