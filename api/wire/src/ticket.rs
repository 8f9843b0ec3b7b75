//! Flight tickets: what a `DoGet` ticket, or a `GetFlightInfo` / `GetSchema` descriptor, names.
//! The server decodes them (the `api` crate's `flight` module); the export client encodes them.

use arrow_flight::{FlightDescriptor, Ticket};
use ledger_tools::Table;
use serde::{Deserialize, Serialize};

/// What a `DoGet` ticket (and a `GetFlightInfo` / `GetSchema` command descriptor) asks for,
/// carried as JSON: `{"tenant":"T","table":"entries","from":0,"to":123}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightTicket {
    /// The tenant.
    pub tenant: String,
    /// `entries`, `releases`, `history`, `approvals` or `risk`.
    pub table: Table,
    /// First seq of an `entries` export (default 0). Ignored by the projection tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// End of an `entries` export, exclusive (default: the log's size when the request
    /// arrives). Ignored by the projection tables, which are exported as of the position the
    /// governance worker has folded up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

impl FlightTicket {
    /// The whole of `table` for `tenant`.
    pub fn new(tenant: impl Into<String>, table: Table) -> Self {
        Self { tenant: tenant.into(), table, from: None, to: None }
    }

    /// The ticket as JSON bytes (a `Ticket`'s or a command descriptor's contents).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Reads a ticket from JSON bytes; the error says what is wrong, for `INVALID_ARGUMENT`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "the ticket is not {{\"tenant\": \"...\", \"table\": \"entries|releases|history|approvals|risk\", \
                 \"from\": SEQ, \"to\": SEQ}} JSON: {}",
                ledger::clip_at(&e.to_string(), 200)
            )
        })
    }

    /// The ticket as a `Ticket`.
    pub fn to_ticket(&self) -> Result<Ticket, serde_json::Error> {
        Ok(Ticket::new(self.to_json()?))
    }

    /// The ticket as a command descriptor (for `GetFlightInfo` and `GetSchema`).
    pub fn to_descriptor(&self) -> Result<FlightDescriptor, serde_json::Error> {
        Ok(FlightDescriptor::new_cmd(self.to_json()?))
    }
}

/// A PATH descriptor's ticket: exactly `[tenant, table]`.
pub fn ticket_from_path(path: &[String]) -> Result<FlightTicket, String> {
    let [tenant, table] = path else {
        return Err(format!(
            "a PATH descriptor is [tenant, table] with table one of {}; this one has {} element(s)",
            table_names(),
            path.len()
        ));
    };
    let table = Table::ALL.into_iter().find(|t| t.as_str() == table).ok_or_else(|| {
        format!("PATH descriptor: unknown table {:?}; the tables are {}", ledger::clip(table), table_names())
    })?;
    Ok(FlightTicket::new(tenant.clone(), table))
}

/// The table names, comma-separated (for error messages).
pub fn table_names() -> String {
    Table::ALL.map(Table::as_str).join(", ")
}
