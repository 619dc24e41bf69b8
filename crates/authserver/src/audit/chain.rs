//! The hash-chained audit file: each line is
//! `{"seq":N,"time":"...","prev":"<hash of line N-1>","event":{...},"hash":"<sha256>"}` where
//! `hash` is SHA-256 over the line's other fields serialised with sorted keys. Editing a record
//! breaks its hash; removing or reordering breaks `seq` and `prev`. Truncating the tail cannot be
//! seen from the file alone: the writer logs an [`Anchor`] (`SEQ:HASH`) periodically and at
//! shutdown, and `verify --anchor SEQ:HASH` fails when the file ends before SEQ or differs there.
//!
//! A write torn by a crash or a full disk leaves an unterminated partial line. The next writer
//! terminates it and appends a [`RECOVERED`] record naming the torn bytes (length and SHA-256),
//! chained to the last good record: verification passes over exactly that line and reports it;
//! any other non-record line is still tampering.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `event` of the record that follows (and vouches for) a torn line.
pub const RECOVERED: &str = "recovered";

/// A point of the chain kept outside the file: record `seq` has hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Record number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

impl Anchor {
    /// Parses `SEQ:HASH` (as logged by the writer).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("expected SEQ:HASH (e.g. 1000:{GENESIS}), got {text:?}");
        let (seq, hash) = text.split_once(':').ok_or_else(bad)?;
        let seq = seq.trim().parse::<u64>().map_err(|_| bad())?;
        let hash = hash.trim().to_ascii_lowercase();
        if seq == 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self { seq, hash })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// The `event` of the record written after the torn line `torn` (its bytes, without `\n`).
pub fn recovered_event(torn: &[u8]) -> Value {
    json!({"event": RECOVERED, "torn_bytes": torn.len(), "torn_sha256": hex(&Sha256::digest(torn))})
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    hex(&Sha256::digest(bytes.as_bytes()))
}

/// A line's fields without `hash`, its `hash` and `seq`; None when it is not a record.
fn parse_record(line: &[u8]) -> Option<(Map<String, Value>, String, u64)> {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    let (Some(Value::String(hash)), Some(seq)) =
        (body.remove("hash"), body.get("seq").and_then(Value::as_u64))
    else {
        return None;
    };
    Some((body, hash, seq))
}

/// The hash of `line` when it is the intact record after (`seq`, `prev`): an unterminated last
/// line that is complete needs only its newline, not a `recovered` record.
pub fn continues(line: &[u8], seq: u64, prev: &str) -> Option<String> {
    let (body, hash, found) = parse_record(line)?;
    (found == seq + 1 && digest(&body) == hash && body.get("prev").and_then(Value::as_str) == Some(prev))
        .then_some(hash)
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
    /// The file ends before the anchor's record: its tail was cut.
    Truncated {
        /// The anchor's seq.
        anchor: u64,
        /// The file's last seq.
        last: u64,
    },
    /// The record at the anchor's seq has another hash: the chain was rewritten from there on.
    AnchorMismatch {
        /// The anchor's seq.
        seq: u64,
    },
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
            Problem::Truncated { anchor, last } => write!(
                f,
                "the file ends at seq {last}, before the anchor's seq {anchor}: records were cut from the tail"
            ),
            Problem::AnchorMismatch { seq } => {
                write!(
                    f,
                    "record {seq} does not match the anchor's hash: the chain was rewritten"
                )
            }
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
    /// Line numbers of torn writes, each vouched for by the `recovered` record after it.
    pub recovered: Vec<usize>,
}

/// Checks every line of an audit file.
pub fn verify(text: impl AsRef<[u8]>) -> Result<Verified, Broken> {
    verify_anchored(text.as_ref(), None)
}

/// Checks every line of an audit file, and that it reaches `anchor` with the anchor's hash.
pub fn verify_anchored(bytes: &[u8], anchor: Option<&Anchor>) -> Result<Verified, Broken> {
    let mut prev = GENESIS.to_owned();
    let mut expected = 1u64;
    let mut recovered = Vec::new();
    // A non-record line waiting for the `recovered` record that must follow it.
    let mut torn: Option<(usize, &[u8])> = None;
    let mut last_line = 0;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        last_line = i + 1;
        let broken = |problem| Broken { line: i + 1, problem };
        let Some((body, hash, seq)) = parse_record(line) else {
            if let Some((at, _)) = torn {
                return Err(Broken {
                    line: at,
                    problem: Problem::NotARecord,
                });
            }
            torn = Some((i + 1, line));
            continue;
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
        if let Some((at, bytes)) = torn.take() {
            if body.get("event") != Some(&recovered_event(bytes)) {
                return Err(Broken {
                    line: at,
                    problem: Problem::NotARecord,
                });
            }
            recovered.push(at);
        }
        if anchor.is_some_and(|a| a.seq == seq && a.hash != hash) {
            return Err(broken(Problem::AnchorMismatch { seq }));
        }
        prev = hash;
        expected += 1;
    }
    if let Some((at, _)) = torn {
        // A torn tail that no writer has recovered yet (or a line appended by hand).
        return Err(Broken {
            line: at,
            problem: Problem::NotARecord,
        });
    }
    let records = expected - 1;
    if let Some(a) = anchor.filter(|a| a.seq > records) {
        return Err(Broken {
            line: last_line + 1,
            problem: Problem::Truncated {
                anchor: a.seq,
                last: records,
            },
        });
    }
    Ok(Verified {
        records,
        last_hash: prev,
        recovered,
    })
}

/// The (seq, hash) of the last record in `text`, to continue a chain.
pub fn tail(text: impl AsRef<[u8]>) -> (u64, String) {
    text.as_ref()
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|l| {
            let v: Value = serde_json::from_slice(l).ok()?;
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
            verify(edited.join("\n")).expect_err("edited"),
            Broken {
                line: 3,
                problem: Problem::Edited
            }
        );

        let mut removed = lines.clone();
        removed.remove(1);
        assert_eq!(
            verify(removed.join("\n")).expect_err("removed"),
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
            verify(reordered.join("\n")).expect_err("reordered"),
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
            verify(dup.join("\n")).expect_err("dup"),
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
            verify(spliced.join("\n")).expect_err("spliced").problem,
            Problem::ChainBroken
        );
        assert_eq!(
            verify([lines[0].clone(), other[1].clone()].join("\n"))
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

    #[test]
    fn a_complete_unterminated_record_continues_and_anchors_parse() {
        let lines = chain(3);
        let (seq, prev) = tail(lines[..2].join("\n"));
        let (_, last) = tail(lines.join("\n"));
        assert_eq!(continues(lines[2].as_bytes(), seq, &prev), Some(last.clone()));
        assert_eq!(continues(&lines[2].as_bytes()[..20], seq, &prev), None, "torn");
        assert_eq!(
            continues(lines[2].as_bytes(), seq + 1, &prev),
            None,
            "not the next one"
        );

        let anchor = Anchor::parse(&format!("3:{}", last.to_uppercase())).expect("anchor");
        assert_eq!(anchor.to_string(), format!("3:{last}"));
        assert!(verify_anchored(lines.join("\n").as_bytes(), Some(&anchor)).is_ok());
        for bad in [
            String::new(),
            "3".into(),
            "x:ab".into(),
            format!("0:{GENESIS}"),
            format!("3:{}", &last[1..]),
        ] {
            assert!(Anchor::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_torn_line_vouched_for_by_the_next_record_passes() {
        let lines = chain(2);
        let (seq, prev) = tail(lines.join("\n"));
        let torn = "{\"event\":{\"ev";
        let (recovered, _) = record(seq + 1, &prev, "t", recovered_event(torn.as_bytes()));
        let text = [lines[0].as_str(), &lines[1], torn, &recovered].join("\n");
        let v = verify(&text).expect("recovered");
        assert_eq!((v.records, v.recovered), (3, vec![3]));
        let other = [lines[0].as_str(), &lines[1], "{\"other", &recovered].join("\n");
        assert_eq!(verify(other).expect_err("other bytes").line, 3);
        let unrecovered = [lines[0].as_str(), &lines[1], torn].join("\n");
        assert_eq!(verify(unrecovered).expect_err("not yet recovered").line, 3);
    }
}
