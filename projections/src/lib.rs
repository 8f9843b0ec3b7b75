//! # projections — the governance layer of Release Ledger
//!
//! The key decision: **governance is a pure fold over the log.** Policy, freezes, keys,
//! evidence and approvals are all events; [`state::TenantState::apply`] folds them entry by
//! entry, with no clock and no I/O, and evaluates the gates ([`gates`]) at the triggering
//! entry's `recordedAt`. The decisions it derives are appended back to the log by the ledger
//! key through the normal append path, with deterministic event ids and bytes, so replaying
//! the log re-derives every decision bit for bit, and a restart that re-derives a decision
//! appends it idempotently.
//!
//! The modules are layered, each using only those below it (ARCHITECTURE.md draws the DAG;
//! `tests/layers.rs` checks it): the data model ([`state`]) ← [`risk`] ← [`gates`] ← the
//! decision step ([`decide`]) ← the fold ([`fold`], which returns a [`fold::DecisionCheck`] for
//! every decision entry) ← the bounded-memory [`folder::Folder`] (with [`store`]) ←
//! [`replay`] ← [`query`] ← [`worker`], over the vocabulary ([`catalogue`], [`decision`],
//! [`event_type`], [`freeze`], [`policy`], [`outbox`]).
//! Beside the fold, two pure functions of decision entries give standard documents:
//! [`attestation`] (in-toto Statements with the SLSA VSA predicate) and [`oscal`] (OSCAL
//! assessment results).
//!
//! The crate knows nothing of gRPC: [`worker::Governor`] follows a [`ledger::Ledger`] on a
//! thread, stores each tenant's state together with its position ([`store`]), and serves
//! read models ([`query`]) to whoever embeds it. [`catalogue::Catalogue`] is the store's
//! [`ledger::EventRules`]: the schema of every event type, checked before anything is stored.

#![deny(missing_docs)]

pub mod attestation;
pub mod board;
pub mod catalogue;
pub mod custom_gates;
pub mod decide;
pub mod decision;
pub mod event_type;
pub mod evidence;
pub mod fold;
pub mod folder;
pub mod freeze;
pub mod gates;
pub mod oscal;
pub mod outbox;
pub mod policy;
pub mod query;
pub mod rego;
pub mod replay;
pub mod risk;
pub mod state;
pub mod store;
pub mod worker;

pub use board::{BoardPage, BoardQuery, BoardRow, StatusCounts};
pub use catalogue::{Catalogue, EventType, GovData, GovEvent};
pub use decision::{DecisionData, DecisionStatus, Gate, Reason, ReasonCode, RiskFactor, Verdict};
pub use fold::DecisionCheck;
pub use folder::Folder;
pub use policy::{EnvPolicy, ReleasePolicy, Severity};
pub use query::{AsOf, ReleaseFilter, ReleaseSummary};
pub use replay::fold;
pub use state::{HistoryKind, ReleaseStatus, TenantState};
pub use worker::{DecisionAppended, GovernanceObserver, Governor, GovernorError};

#[cfg(test)]
mod test_support;
