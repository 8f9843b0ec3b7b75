//! The names of the event types: every type the catalogue knows, and which are ledger
//! decisions. Below the catalogue and the decision bodies, which both name types.

use serde::{Deserialize, Serialize};

macro_rules! event_types {
    ($($variant:ident),* $(,)?) => {
        /// Every event type in the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $(
                #[allow(missing_docs)]
                $variant,
            )*
        }

        impl EventType {
            /// All types, in catalogue order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The wire name (PascalCase, as in the body's `type`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => stringify!($variant),)*
                }
            }

            /// The type named `name`, if it is in the catalogue.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($variant) => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types!(
    ReleaseIntentDeclared,
    ReleaseEvaluationRequested,
    TestsPassed,
    TestsFailed,
    CoverageVerified,
    BDDValidated,
    SecurityGateStatus,
    PolicyViolationDetected,
    EvidenceAttached,
    PipelineReady,
    ApprovalGranted,
    ApprovalRejected,
    FreezeOverrideGranted,
    PolicyUpdated,
    ChangeFreezeDeclared,
    ChangeFreezeLifted,
    EvidenceInvalidated,
    AgentKeyRegistered,
    AgentKeyRevoked,
    EntryRedacted,
    ReleasePlanned,
    ReleaseApproved,
    ReleaseDelayed,
    ReleaseRejected,
    ReleasePublished,
    DeploymentStarted,
    DeploymentCompleted,
    DeploymentFailed,
    RollbackTriggered,
);

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventType {
    /// Whether events of this type must name their release in the body's `releaseId`.
    /// Tenant-wide configuration (keys, policy, freezes, redaction) does not.
    pub fn needs_release(self) -> bool {
        !matches!(
            self,
            Self::PolicyUpdated
                | Self::ChangeFreezeDeclared
                | Self::ChangeFreezeLifted
                | Self::AgentKeyRegistered
                | Self::AgentKeyRevoked
                | Self::EntryRedacted
        )
    }

    /// Whether this is a ledger decision: one of [`ledger::event::DECISION_TYPES`], the one list
    /// of them (the ledger lets only its own key sign those).
    pub fn is_decision(self) -> bool {
        ledger::event::EventClass::of(self.as_str()) == ledger::event::EventClass::Decision
    }
}
