//! Witness policies in the C2SP `tlog-policy` format (the format Sigsum uses):
//!
//! ```text
//! # comments and blank lines are ignored
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>|none
//! ```
//!
//! Log vkeys are Ed25519 note keys (type `0x01`) whose key name is the log's origin; witness
//! vkeys are `cosignature/v1` keys (type `0x04`). A witness URL is its tlog-witness
//! *submission prefix*. Parsing is strict: every rule of the spec is checked and a violation
//! names its line.

use std::collections::{BTreeSet, HashMap};

use crate::note::{FormatError, Vkey, COSIGNATURE_V1_TYPE, ED25519_NOTE_TYPE};

/// Largest policy file read (tlog-policy recommends supporting at least 32 logs, 32 witnesses
/// and 32 groups; this leaves room for thousands).
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// A policy line that breaks a rule of tlog-policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A rule broken on a line (1-based).
    #[error("line {line}: {reason}")]
    Line {
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A rule about the whole file (no quorum line, too large, not UTF-8).
    #[error("{0}")]
    File(String),
}

/// A log the policy accepts checkpoints from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// Its vkey; the key name is the log's origin.
    pub vkey: Vkey,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A witness of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// The policy-local name (used by groups and the quorum).
    pub name: String,
    /// Its `cosignature/v1` vkey; the key name is the cosigner name on signature lines.
    pub vkey: Vkey,
    /// Its tlog-witness submission prefix, if given.
    pub url: Option<String>,
}

/// A group member or the quorum: a witness or a group, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Node>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The logs, in file order.
    pub logs: Vec<PolicyLog>,
    /// The witnesses, in file order.
    pub witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None`: `quorum none`.
    quorum: Option<Node>,
}

/// What a file may contain: a whole policy, or only `log` lines (a witness's list of logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Policy,
    LogList,
}

impl Policy {
    /// Parses a policy file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyError> {
        parse(bytes, Kind::Policy)
    }

    /// Reads and parses a policy file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, PolicyError> {
        let bytes =
            std::fs::read(path).map_err(|e| PolicyError::File(format!("reading policy {}: {e}", path.display())))?;
        Self::parse(&bytes).map_err(|e| PolicyError::File(format!("policy {}: {e}", path.display())))
    }

    /// Whether the witnesses in `cosigned` (indices into [`Self::witnesses`]) satisfy the
    /// quorum.
    pub fn quorum_met(&self, cosigned: &BTreeSet<usize>) -> bool {
        match self.quorum {
            None => true,
            Some(node) => self.witnessed(node, cosigned),
        }
    }

    /// The quorum as text, for messages: `none`, a witness name, or `group <name> (k of n)`.
    pub fn describe_quorum(&self) -> String {
        match self.quorum {
            None => "none".to_owned(),
            Some(Node::Witness(i)) => format!("witness {}", self.witnesses[i].name),
            Some(Node::Group(i)) => {
                let group = &self.groups[i];
                format!("group {} ({} of {})", group.name, group.threshold, group.members.len())
            }
        }
    }

    fn witnessed(&self, node: Node, cosigned: &BTreeSet<usize>) -> bool {
        match node {
            Node::Witness(i) => cosigned.contains(&i),
            Node::Group(i) => {
                let group = &self.groups[i];
                group.members.iter().filter(|m| self.witnessed(**m, cosigned)).count() >= group.threshold
            }
        }
    }
}

/// Parses a list of logs: a file of tlog-policy `log` lines (comments and blank lines
/// allowed, nothing else), what `release-ledger witness --logs` reads.
pub fn parse_log_list(bytes: &[u8]) -> Result<Vec<PolicyLog>, PolicyError> {
    parse(bytes, Kind::LogList).map(|policy| policy.logs)
}

fn parse(bytes: &[u8], kind: Kind) -> Result<Policy, PolicyError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::File(format!("longer than {MAX_POLICY_BYTES} bytes")));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| PolicyError::File(format!("not UTF-8: {e}")))?;
    let mut policy = Policy { logs: Vec::new(), witnesses: Vec::new(), groups: Vec::new(), quorum: None };
    let mut names: HashMap<String, Node> = HashMap::new();
    let mut grouped: BTreeSet<String> = BTreeSet::new();
    let mut quorum_line = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let error = |reason: String| PolicyError::Line { line: number, reason };
        // tlog-policy: "the allowed octet values are 0x09 (tab), 0x0A (newline), 0x20-0x7E,
        // and 0x80-0xFF".
        if let Some(b) = line.bytes().find(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f) {
            return Err(error(format!("control character 0x{b:02x}")));
        }
        let fields: Vec<&str> = line.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
        let Some((&keyword, args)) = fields.split_first() else { continue };
        if keyword.starts_with('#') {
            continue;
        }
        let vkey = |text: &str, signature_type: u8, what: &str| -> Result<Vkey, PolicyError> {
            let vkey = Vkey::parse(text).map_err(|FormatError(why)| error(why))?;
            if vkey.signature_type != signature_type {
                return Err(error(format!(
                    "{what} vkey {} has signature type 0x{:02x}, a {what} needs 0x{signature_type:02x}",
                    vkey.name, vkey.signature_type
                )));
            }
            Ok(vkey)
        };
        let duplicate_key = |vkey: &Vkey, policy: &Policy| {
            let key = vkey.public_key.as_bytes();
            policy.logs.iter().any(|l| l.vkey.public_key.as_bytes() == key)
                || policy.witnesses.iter().any(|w| w.vkey.public_key.as_bytes() == key)
        };
        match (keyword, kind) {
            ("log", _) => {
                let (Some(key), url, None) = (args.first(), args.get(1), args.get(2)) else {
                    return Err(error("a log line is `log <vkey> [<url>]`".into()));
                };
                let vkey = vkey(key, ED25519_NOTE_TYPE, "log")?;
                if duplicate_key(&vkey, &policy) {
                    return Err(error(format!("the key of log {} is already listed", vkey.name)));
                }
                policy.logs.push(PolicyLog { vkey, url: url.map(|u| (*u).to_owned()) });
            }
            ("witness", Kind::Policy) => {
                let (Some(name), Some(key), url, None) = (args.first(), args.get(1), args.get(2), args.get(3)) else {
                    return Err(error("a witness line is `witness <name> <vkey> [<url>]`".into()));
                };
                check_new_name(name, &names).map_err(error)?;
                let vkey = vkey(key, COSIGNATURE_V1_TYPE, "witness")?;
                if duplicate_key(&vkey, &policy) {
                    return Err(error(format!("the key of witness {name} is already listed")));
                }
                names.insert((*name).to_owned(), Node::Witness(policy.witnesses.len()));
                policy.witnesses.push(PolicyWitness {
                    name: (*name).to_owned(),
                    vkey,
                    url: url.map(|u| (*u).to_owned()),
                });
            }
            ("group", Kind::Policy) => {
                let (Some(name), Some(threshold), members) = (args.first(), args.get(1), args.get(2..).unwrap_or(&[]))
                else {
                    return Err(error("a group line is `group <name> all|any|<k> <name>...`".into()));
                };
                check_new_name(name, &names).map_err(error)?;
                if members.is_empty() {
                    return Err(error(format!("group {name} has no members")));
                }
                let mut nodes = Vec::with_capacity(members.len());
                for member in members {
                    let node = match names.get(*member) {
                        Some(node) => *node,
                        None if *member == "none" => return Err(error("none cannot be a group member".into())),
                        None => return Err(error(format!("group {name}: {member} is not defined on a line above"))),
                    };
                    // tlog-policy: "Each defined name can be listed as a group member at most
                    // once."
                    if !grouped.insert((*member).to_owned()) {
                        return Err(error(format!("{member} is already a member of a group")));
                    }
                    nodes.push(node);
                }
                let n = nodes.len();
                let threshold = match *threshold {
                    "all" => n,
                    "any" => 1,
                    k => match crate::note::canonical_decimal(k, "threshold") {
                        Ok(k) if (1..=n as u64).contains(&k) => k as usize,
                        Ok(k) => return Err(error(format!("group {name}: threshold {k} is not between 1 and {n}"))),
                        Err(_) => {
                            return Err(error(format!("group {name}: threshold {k:?} is not all, any or a number")))
                        }
                    },
                };
                names.insert((*name).to_owned(), Node::Group(policy.groups.len()));
                policy.groups.push(Group { name: (*name).to_owned(), threshold, members: nodes });
            }
            ("quorum", Kind::Policy) => {
                let (Some(name), None) = (args.first(), args.get(1)) else {
                    return Err(error("a quorum line is `quorum <name>`".into()));
                };
                if let Some(first) = quorum_line {
                    return Err(error(format!("a second quorum line (the first is line {first})")));
                }
                policy.quorum = match names.get(*name) {
                    Some(node) => Some(*node),
                    None if *name == "none" => None,
                    None => return Err(error(format!("quorum {name} is not defined on a line above"))),
                };
                quorum_line = Some(number);
            }
            (other, Kind::LogList) => {
                return Err(error(format!("{other:?}: a list of logs has only `log <vkey> [<url>]` lines")));
            }
            (other, Kind::Policy) => {
                return Err(error(format!("unknown keyword {other:?} (log, witness, group, quorum)")));
            }
        }
    }
    if kind == Kind::Policy && quorum_line.is_none() {
        return Err(PolicyError::File("no quorum line (write `quorum none` to require no cosignatures)".into()));
    }
    Ok(policy)
}

fn check_new_name(name: &str, names: &HashMap<String, Node>) -> Result<(), String> {
    if name == "none" {
        return Err("the name none is predefined".into());
    }
    if names.contains_key(name) {
        return Err(format!("the name {name} is already defined"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ledger::KeyPair;

    use super::*;

    pub(crate) fn witness_vkey(name: &str, seed: u8) -> String {
        Vkey::new(name, COSIGNATURE_V1_TYPE, KeyPair::from_seed(&[seed; 32]).verifying_key()).unwrap().to_string()
    }

    fn log_vkey(seed: u8) -> String {
        Vkey::new("example.com/log", ED25519_NOTE_TYPE, KeyPair::from_seed(&[seed; 32]).verifying_key())
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_spec_example_with_two_levels_of_groups_evaluates_as_described() {
        let mut text = format!("# example\nlog {} https://log.example\n\n", log_vkey(1));
        for (i, name) in ["X1", "X2", "X3", "Y1", "Y2", "Y3"].iter().enumerate() {
            text.push_str(&format!("  witness\t{name} {}\n", witness_vkey(&format!("w.example/{name}"), 10 + i as u8)));
        }
        text.push_str("group X-witnesses 2 X1 X2 X3\ngroup Y-witnesses any Y1 Y2 Y3\n");
        text.push_str("group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n");
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.logs[0].url.as_deref(), Some("https://log.example"));
        assert_eq!(policy.witnesses.len(), 6);
        let set = |ids: &[usize]| ids.iter().copied().collect::<BTreeSet<_>>();
        assert!(policy.quorum_met(&set(&[0, 1, 3])));
        assert!(policy.quorum_met(&set(&[0, 2, 5])));
        assert!(!policy.quorum_met(&set(&[0, 1])), "no Y witness");
        assert!(!policy.quorum_met(&set(&[0, 3, 4, 5])), "one X witness");
        assert_eq!(policy.describe_quorum(), "group X-and-Y (2 of 2)");
    }

    #[test]
    fn every_rule_broken_is_named_with_its_line() {
        let w1 = format!("witness W1 {}\n", witness_vkey("w.example/1", 1));
        let w2 = format!("witness W2 {}\n", witness_vkey("w.example/2", 2));
        for (text, expected) in [
            (w1.clone(), "no quorum line"),
            (format!("{w1}quorum W2\n"), "line 2: quorum W2 is not defined"),
            (format!("{w1}quorum W1\nquorum W1\n"), "line 3: a second quorum line (the first is line 2)"),
            (format!("{w1}{w1}quorum W1\n"), "line 2: the name W1 is already defined"),
            (
                format!("{w1}witness W2 {}\nquorum W1\n", witness_vkey("w.example/1", 1)),
                "line 2: the key of witness W2 is already listed",
            ),
            (format!("{w1}group G 2 W1\nquorum G\n"), "line 2: group G: threshold 2 is not between 1 and 1"),
            (format!("{w1}group G 0 W1\nquorum G\n"), "threshold 0 is not between"),
            (format!("{w1}group G 01 W1\nquorum G\n"), "threshold \"01\" is not all"),
            (format!("{w1}group G all\nquorum G\n"), "group G has no members"),
            (format!("{w1}{w2}group G all W1 W1\nquorum G\n"), "W1 is already a member"),
            (format!("{w1}{w2}group G all W1\ngroup H any W1 W2\nquorum H\n"), "line 4: W1 is already a member"),
            (format!("{w1}group G any W1 none\nquorum G\n"), "none cannot be a group member"),
            (format!("{w1}group G any W3\nquorum G\n"), "W3 is not defined on a line above"),
            (format!("witness none {}\nquorum none\n", witness_vkey("w.example/1", 1)), "none is predefined"),
            (
                format!("log {}\nquorum none\n", witness_vkey("example.com/log", 1)),
                "line 1: log vkey example.com/log has signature type 0x04, a log needs 0x01",
            ),
            (
                format!("witness W1 {}\nquorum W1\n", log_vkey(1)),
                "witness vkey example.com/log has signature type 0x01",
            ),
            (format!("log {} u extra\nquorum none\n", log_vkey(1)), "a log line is"),
            ("witnesses W1\nquorum none\n".to_owned(), "unknown keyword \"witnesses\""),
            ("quorum none\x0b\n".to_owned(), "control character 0x0b"),
            (
                format!("log {}\nlog {}\nquorum none\n", log_vkey(1), log_vkey(1)),
                "line 2: the key of log example.com/log is already listed",
            ),
        ] {
            let error = Policy::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}\n  got {error}\n  wanted {expected}");
        }
        assert!(Policy::parse(b"quorum none\n").unwrap().quorum_met(&BTreeSet::new()));
    }

    #[test]
    fn a_log_list_has_only_log_lines() {
        let text = format!("# logs I witness\nlog {}\n\nlog {} https://l.example\n", log_vkey(1), log_vkey(2));
        assert_eq!(parse_log_list(text.as_bytes()).unwrap().len(), 2);
        let error = parse_log_list(format!("{text}quorum none\n").as_bytes()).unwrap_err().to_string();
        assert!(error.contains("line 5: \"quorum\": a list of logs has only"), "{error}");
    }
}
