//! Identifiers: one validated type per kind, and the one rule each kind follows wherever it
//! is read — event bodies, the catalogue, policies, freezes and query arguments alike.
//!
//! Key decision: **a rule only ever widens.** Stored logs are replayed and re-validated, so a
//! name once accepted must stay acceptable. Where copies of a rule disagreed (an environment
//! was `[A-Za-z0-9._+/:-]` in an intent but `[A-Za-z0-9._-]` in a policy or a freeze), the one
//! rule accepts everything any copy accepted.
//!
//! Each type has `parse` (validating, with the error naming the type's usual field),
//! `parse_as`/`check_as` for another field name (`data.environment`, `environments[1]`),
//! `as_str`, `Display`, and serde as a plain string that is validated when deserialised.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{clip, InvalidEvent};

/// Longest tenant id, in bytes (the README's limits table).
pub const MAX_TENANT_BYTES: usize = 64;
/// Longest stream name.
pub const MAX_STREAM_BYTES: usize = 200;
/// Longest event id, release id, trace id and agent id.
pub const MAX_ID_BYTES: usize = 128;
/// Longest event type and role name.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest catalogue name: module, version, environment, suite, freeze id, rule, project.
pub const MAX_CATALOGUE_NAME_BYTES: usize = 128;

/// Character classes of identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `[A-Za-z0-9._-]`, starting alphanumeric (tenants).
    Name,
    /// `[A-Za-z0-9._:/@+-]`, starting alphanumeric (streams, agents, ids).
    Path,
    /// `[A-Z][A-Za-z0-9]*` (event types, roles).
    Pascal,
    /// `[A-Za-z0-9._+/:-]`, starting alphanumeric (modules, versions, freeze ids, suites, rules).
    Catalogue,
    /// `[A-Za-z0-9._+/:-]` (environments: what intents, policies and freezes each accepted).
    Environment,
}

impl Charset {
    fn first_ok(self, b: u8) -> bool {
        match self {
            Self::Pascal => b.is_ascii_uppercase(),
            Self::Environment => self.rest_ok(b),
            _ => b.is_ascii_alphanumeric(),
        }
    }

    fn rest_ok(self, b: u8) -> bool {
        REST_OK[self as usize][usize::from(b)]
    }

    /// The definition [`REST_OK`] is computed from.
    const fn rest_ok_by_match(self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || match self {
                Self::Name => matches!(b, b'.' | b'_' | b'-'),
                Self::Path => matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'@' | b'+'),
                Self::Pascal => false,
                Self::Catalogue | Self::Environment => matches!(b, b'.' | b'_' | b'-' | b'+' | b'/' | b':'),
            }
    }

    fn allowed(self) -> &'static str {
        match self {
            Self::Name => "letters, digits, '.', '_' and '-', starting with a letter or digit",
            Self::Path => "letters, digits and . _ - : / @ +, starting with a letter or digit",
            Self::Pascal => "letters and digits, starting with an uppercase letter (PascalCase)",
            Self::Catalogue => "letters, digits and . _ - + / :, starting with a letter or digit",
            Self::Environment => "letters, digits and . _ - + / :",
        }
    }
}

const CHARSETS: [Charset; 5] =
    [Charset::Name, Charset::Path, Charset::Pascal, Charset::Catalogue, Charset::Environment];

/// [`Charset::rest_ok`] of every byte, per charset (indexed by its discriminant): every
/// identifier of every event body is checked byte by byte, by the append path, the projection
/// worker and the auditor, so the check is one load per byte.
static REST_OK: [[bool; 256]; 5] = {
    let mut table = [[false; 256]; 5];
    let mut c = 0;
    while c < CHARSETS.len() {
        assert!(CHARSETS[c] as usize == c, "CHARSETS is in discriminant order");
        let mut b = 0;
        while b < 256 {
            table[c][b] = CHARSETS[c].rest_ok_by_match(b as u8);
            b += 1;
        }
        c += 1;
    }
    table
};

/// The rule of one kind of identifier: a length and a charset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Longest value, in bytes.
    pub max_bytes: usize,
    /// Which characters, where.
    pub charset: Charset,
}

impl Rule {
    /// Why `value` breaks the rule (the reason alone, without the field).
    pub fn reason(&self, value: &str) -> Option<String> {
        let Self { max_bytes, charset } = *self;
        if value.is_empty() {
            return Some("must not be empty".into());
        }
        if value.len() > max_bytes {
            return Some(format!("longer than {max_bytes} bytes ({})", value.len()));
        }
        let first_ok = charset.first_ok(value.as_bytes()[0]);
        // Nearly every value is valid: one pass over its bytes says so (every byte the table
        // accepts is ASCII), and only a bad value pays for the reason below.
        if first_ok && value.as_bytes()[1..].iter().all(|&b| charset.rest_ok(b)) {
            return None;
        }
        match charset {
            Charset::Catalogue | Charset::Environment => {
                let bad = value
                    .char_indices()
                    .find(|&(i, c)| !c.is_ascii() || !(if i == 0 { first_ok } else { charset.rest_ok(c as u8) }));
                bad.map(|(_, c)| format!("{:?} contains {c:?}; allowed are {}", clip(value), charset.allowed()))
            }
            _ => (!first_ok || !value.bytes().all(|b| charset.rest_ok(b)))
                .then(|| format!("{:?} has characters outside {}", clip(value), charset.allowed())),
        }
    }

    /// Checks `value`, naming `field` in the error.
    pub fn check(&self, field: &'static str, value: &str) -> Result<(), InvalidEvent> {
        self.reason(value).map_or(Ok(()), |reason| Err(InvalidEvent::new(field, reason)))
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $charset:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The field named in errors by [`Self::parse`].
            pub const FIELD: &'static str = $field;
            /// The rule every value follows.
            pub const RULE: Rule = Rule { max_bytes: $max, charset: $charset };

            /// Validates `value` (errors name [`Self::FIELD`]).
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidEvent> {
                Self::parse_as(Self::FIELD, value)
            }

            /// Validates `value`, naming `field` in the error.
            pub fn parse_as(field: &'static str, value: impl Into<String>) -> Result<Self, InvalidEvent> {
                let value = value.into();
                Self::RULE.check(field, &value)?;
                Ok(Self(value))
            }

            /// Checks `value` without keeping it (errors name [`Self::FIELD`]).
            pub fn check(value: &str) -> Result<(), InvalidEvent> {
                Self::RULE.check(Self::FIELD, value)
            }

            /// Checks `value`, naming `field` in the error.
            pub fn check_as(field: &'static str, value: &str) -> Result<(), InvalidEvent> {
                Self::RULE.check(field, value)
            }

            /// Checks `value`, the error being `"{field}: {reason}"` (for fields named at run
            /// time, such as `environments[1]`).
            pub fn check_named(field: &str, value: &str) -> Result<(), String> {
                Self::RULE.reason(value).map_or(Ok(()), |reason| Err(format!("{field}: {reason}")))
            }

            /// The identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A tenant: `[A-Za-z0-9._-]`, 1 to 64 bytes.
    TenantId, "tenant", MAX_TENANT_BYTES, Charset::Name
);
identifier!(
    /// A stream name.
    StreamId, "stream", MAX_STREAM_BYTES, Charset::Path
);
identifier!(
    /// An event type name (PascalCase).
    EventTypeName, "type", MAX_NAME_BYTES, Charset::Pascal
);
identifier!(
    /// A role name (PascalCase).
    RoleName, "role", MAX_NAME_BYTES, Charset::Pascal
);
identifier!(
    /// An agent id.
    AgentId, "actor.agentId", MAX_ID_BYTES, Charset::Path
);
identifier!(
    /// A release id.
    ReleaseId, "releaseId", MAX_ID_BYTES, Charset::Path
);
identifier!(
    /// An event id.
    EventId, "eventId", MAX_ID_BYTES, Charset::Path
);
identifier!(
    /// A trace id.
    TraceId, "traceId", MAX_ID_BYTES, Charset::Path
);
identifier!(
    /// An environment, as intents, policies, freezes and queries name it.
    Environment, "environment", MAX_CATALOGUE_NAME_BYTES, Charset::Environment
);
identifier!(
    /// A module name.
    ModuleName, "module", MAX_CATALOGUE_NAME_BYTES, Charset::Catalogue
);
identifier!(
    /// A freeze id.
    FreezeId, "freezeId", MAX_CATALOGUE_NAME_BYTES, Charset::Catalogue
);
identifier!(
    /// Any other catalogue name: a version, a suite, a rule, a project or pipeline id.
    CatalogueName, "name", MAX_CATALOGUE_NAME_BYTES, Charset::Catalogue
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_accept_what_intents_policies_and_freezes_each_accepted() {
        for name in ["prod", "eu/prod", "eu-west.1", "a+b:c", "_staging", "-x"] {
            assert!(Environment::parse(name).is_ok(), "{name}");
        }
        let err = Environment::parse("eu prod").unwrap_err();
        assert_eq!(
            format!("environment: {}", err.reason),
            Environment::check_named("environment", "eu prod").unwrap_err()
        );
        assert!(err.reason.starts_with("\"eu prod\" contains ' '"), "{err}");
        assert!(Environment::parse("x".repeat(129)).unwrap_err().reason.starts_with("longer than 128 bytes"));
        assert_eq!(Environment::parse("").unwrap_err().reason, "must not be empty");
    }

    #[test]
    fn catalogue_names_start_with_a_letter_or_digit() {
        assert!(ModuleName::parse("api/v2").is_ok());
        let err = ModuleName::parse_as("data.module", "-api").unwrap_err();
        assert_eq!(err.field, "data.module");
        assert!(err.reason.starts_with("\"-api\" contains '-'"), "{err}");
    }

    #[test]
    fn the_byte_table_is_the_charsets_definition() {
        for charset in CHARSETS {
            for b in 0..=u8::MAX {
                assert_eq!(charset.rest_ok(b), charset.rest_ok_by_match(b), "{charset:?} {b:#04x}");
                // The fast path of `Rule::reason` relies on both.
                assert!(!charset.first_ok(b) || charset.rest_ok(b), "{charset:?} {b:#04x}");
                assert!(!charset.rest_ok(b) || b.is_ascii(), "{charset:?} {b:#04x}");
            }
        }
    }

    /// The fast path and the reason agree: every value of one or two bytes, and longer ones
    /// with a bad byte at each place, are accepted exactly when the per-character definition
    /// accepts them.
    #[test]
    fn a_rule_accepts_exactly_what_its_charset_allows() {
        let by_definition = |charset: Charset, value: &str| {
            value.char_indices().all(|(i, c)| {
                c.is_ascii() && if i == 0 { charset.first_ok(c as u8) } else { charset.rest_ok_by_match(c as u8) }
            })
        };
        let mut values: Vec<String> = Vec::new();
        for a in 0..128u8 {
            values.push(char::from(a).to_string());
            for b in 0..128u8 {
                values.push([char::from(a), char::from(b)].iter().collect());
            }
        }
        for bad in [' ', '\u{e9}', '"', '\0', '*'] {
            for at in 0..4 {
                let mut v: Vec<char> = "Ab1.".chars().collect();
                v[at] = bad;
                values.push(v.into_iter().collect());
            }
        }
        for charset in CHARSETS {
            let rule = Rule { max_bytes: 64, charset };
            for value in &values {
                assert_eq!(rule.reason(value).is_none(), by_definition(charset, value), "{charset:?} {value:?}");
            }
        }
    }

    #[test]
    fn serde_is_a_plain_string_validated_on_the_way_in() {
        let tenant: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(serde_json::to_string(&tenant).unwrap(), "\"acme\"");
        let err = serde_json::from_str::<TenantId>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("tenant: \"a/b\" has characters outside"), "{err}");
    }
}
