//! The hash-chained audit file: each line is
//! `{"seq":N,"time":"...","prev":"<hash of line N-1>","event":{...},"hash":"<sha256>"}` where
//! `hash` is SHA-256 over the line's other fields serialised with sorted keys. Editing a record
//! breaks its hash; removing or reordering breaks `seq` and `prev`. Truncating the tail cannot be
//! seen from the file alone: anchor the last hash elsewhere (verify prints it).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Builds the line for `event` after the record (`seq - 1`, `prev`).
pub fn record(seq: u64, prev: &str, time: &str, event: Value) -> (String, String) {
    let mut body = Map::new();
    body.insert("seq".into(), json!(seq));
    body.insert("time".into(), json!(time));
    body.insert("prev".into(), json!(prev));
    body.insert("event".into(), event);
    let hash = digest(&body);
    body.insert("hash".into(), json!(hash));
    (Value::Object(body).to_string(), hash)
}

fn digest(body: &Map<String, Value>) -> String {
    // serde_json's Map is ordered by key (no preserve_order feature), so this is canonical.
    let bytes = Value::Object(body.clone()).to_string();
    Sha256::digest(bytes.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first broken place in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub problem: Problem,
}

/// Kinds of tampering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not a record at all.
    NotARecord,
    /// The record's content does not match its hash: edited.
    Edited,
    /// `seq` jumps forward: records before this one were removed.
    Removed {
        /// seq expected.
        expected: u64,
        /// seq found.
        found: u64,
    },
    /// `seq` goes backwards or repeats: records were reordered or duplicated.
    Reordered {
        /// seq expected.
        expected: u64,
        /// seq found.
        found: u64,
    },
    /// `prev` does not match the previous record's hash (records replaced or spliced).
    ChainBroken,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.problem {
            Problem::NotARecord => write!(f, "not an audit record"),
            Problem::Edited => write!(f, "record content edited (hash mismatch)"),
            Problem::Removed { expected, found } => {
                write!(
                    f,
                    "record(s) removed before this one (expected seq {expected}, found {found})"
                )
            }
            Problem::Reordered { expected, found } => {
                write!(
                    f,
                    "records reordered or duplicated (expected seq {expected}, found {found})"
                )
            }
            Problem::ChainBroken => write!(f, "previous-hash link broken (a record before it was replaced)"),
        }
    }
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Hash of the last record (anchor it elsewhere to detect truncation).
    pub last_hash: String,
}

/// Checks every line of an audit file.
pub fn verify(text: &str) -> Result<Verified, Broken> {
    let mut prev = GENESIS.to_owned();
    let mut expected = 1u64;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let broken = |problem| Broken { line: i + 1, problem };
        let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(line) else {
            return Err(broken(Problem::NotARecord));
        };
        let (Some(Value::String(hash)), Some(seq)) =
            (body.remove("hash"), body.get("seq").and_then(Value::as_u64))
        else {
            return Err(broken(Problem::NotARecord));
        };
        if digest(&body) != hash {
            return Err(broken(Problem::Edited));
        }
        if seq > expected {
            return Err(broken(Problem::Removed { expected, found: seq }));
        }
        if seq < expected {
            return Err(broken(Problem::Reordered { expected, found: seq }));
        }
        if body.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return Err(broken(Problem::ChainBroken));
        }
        prev = hash;
        expected += 1;
    }
    Ok(Verified {
        records: expected - 1,
        last_hash: prev,
    })
}

/// The (seq, hash) of the last record in `text`, to continue a chain.
pub fn tail(text: &str) -> (u64, String) {
    text.lines()
        .rev()
        .find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            Some((v.get("seq")?.as_u64()?, v.get("hash")?.as_str()?.to_owned()))
        })
        .unwrap_or((0, GENESIS.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let (line, hash) = record(
                    seq,
                    &prev,
                    "2026-11-28T00:00:00Z",
                    json!({"event": "x", "n": seq}),
                );
                prev = hash;
                line
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies_and_tail_continues_it() {
        let lines = chain(5);
        let text = lines.join("\n");
        let v = verify(&text).expect("intact");
        assert_eq!(v.records, 5);
        assert_eq!(tail(&text), (5, v.last_hash));
        assert_eq!(tail(""), (0, GENESIS.to_owned()));
    }

    #[test]
    fn each_tampering_is_found_where_it_happened() {
        let lines = chain(5);
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"n\":3", "\"n\":33");
        assert_eq!(
            verify(&edited.join("\n")).expect_err("edited"),
            Broken {
                line: 3,
                problem: Problem::Edited
            }
        );

        let mut removed = lines.clone();
        removed.remove(1);
        assert_eq!(
            verify(&removed.join("\n")).expect_err("removed"),
            Broken {
                line: 2,
                problem: Problem::Removed {
                    expected: 2,
                    found: 3
                }
            }
        );

        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        assert_eq!(
            verify(&reordered.join("\n")).expect_err("reordered"),
            Broken {
                line: 2,
                problem: Problem::Removed {
                    expected: 2,
                    found: 3
                }
            },
            "a swap first shows as a jump"
        );
        let mut dup = lines.clone();
        dup.insert(2, lines[1].clone());
        assert_eq!(
            verify(&dup.join("\n")).expect_err("dup"),
            Broken {
                line: 3,
                problem: Problem::Reordered {
                    expected: 3,
                    found: 2
                }
            }
        );

        let other = chain(5);
        let mut spliced = lines.clone();
        let (forged, _) = record(3, GENESIS, "t", json!({"event": "forged"}));
        spliced[2] = forged;
        assert_eq!(
            verify(&spliced.join("\n")).expect_err("spliced").problem,
            Problem::ChainBroken
        );
        assert_eq!(
            verify(&[lines[0].clone(), other[1].clone()].join("\n"))
                .ok()
                .map(|v| v.records),
            Some(2),
            "identical content chains identically (time and events equal)"
        );
        assert_eq!(verify("garbage").expect_err("junk").problem, Problem::NotARecord);
        assert!(
            Broken {
                line: 1,
                problem: Problem::ChainBroken
            }
            .to_string()
            .contains("line 1")
        );
    }
}
