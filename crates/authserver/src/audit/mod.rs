//! The audit trail: a stream separate from the logs, to stdout (`"log_type":"audit"`, so a
//! CloudWatch subscription filter can route it) and/or an append-only hash-chained file.
//!
//! # Layout
//! - [`chain`]: the file's record format, verification and tamper detection.

pub mod chain;

use crate::config::AuditSettings;
use anyhow::Context;
use authserver_core::{AuditEvent, AuditSink};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Events queued for the file writer; beyond this they are dropped and counted (the request
/// path never waits on the disk).
const QUEUE: usize = 16_384;

/// Where the stream sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Servers and Lambda.
    Stdout,
    /// CLI commands (stdout is their output).
    Stderr,
}

/// The configured audit sinks.
#[derive(Debug)]
pub struct Audit {
    stream: Option<Stream>,
    file: Option<SyncSender<(String, serde_json::Value)>>,
    writer: Option<std::thread::JoinHandle<()>>,
    dropped: AtomicU64,
}

impl Drop for Audit {
    /// Closes the queue and waits for the writer, so short-lived commands lose no event.
    fn drop(&mut self) {
        drop(self.file.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Now, RFC 3339 UTC with nanoseconds (the timestamp of audit records and access lines).
/// Every request writes two of these: the date and time of day are formatted once per second
/// per thread, and only the fraction each time.
pub fn now() -> String {
    use std::fmt::Write as _;
    thread_local! {
        static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = OffsetDateTime::now_utc();
    let second = now.unix_timestamp();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let whole = now.replace_nanosecond(0).unwrap_or(now);
            let text = whole.format(&Rfc3339).unwrap_or_default();
            *cached = (second, text.trim_end_matches('Z').to_owned());
        }
        let mut out = String::with_capacity(cached.1.len() + 11);
        out.push_str(&cached.1);
        let _ = write!(out, ".{:09}Z", now.nanosecond());
        out
    })
}

impl Audit {
    /// Sinks from settings; `stream` says where `audit.stdout` writes.
    pub fn from_settings(settings: &AuditSettings, stream: Stream) -> anyhow::Result<Self> {
        let (file, writer) = if settings.file.is_empty() {
            (None, None)
        } else {
            let (tx, handle) = spawn_file_writer(PathBuf::from(&settings.file))?;
            (Some(tx), Some(handle))
        };
        Ok(Self {
            stream: settings.stdout.then_some(stream),
            file,
            writer,
            dropped: AtomicU64::new(0),
        })
    }

    /// Events dropped because the file writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// One stdout audit line: `log_type` and `timestamp`, then the event's own fields. Spliced
/// rather than `#[serde(flatten)]`, which buffers every field and cost a measurable share of
/// the cache-hit path (an audit line per request).
fn stream_line(time: &str, event: &AuditEvent) -> Option<Vec<u8>> {
    let body = serde_json::to_vec(event).ok()?;
    let fields = body.strip_prefix(b"{")?;
    let mut line = Vec::with_capacity(body.len() + time.len() + 40);
    line.extend_from_slice(b"{\"log_type\":\"audit\",\"timestamp\":");
    serde_json::to_writer(&mut line, time).ok()?;
    if fields != b"}" {
        line.push(b',');
    }
    line.extend_from_slice(fields);
    line.push(b'\n');
    Some(line)
}

impl AuditSink for Audit {
    fn emit(&self, event: AuditEvent) {
        let time = now();
        if let Some(stream) = self.stream {
            if let Some(bytes) = stream_line(&time, &event) {
                let _ = match stream {
                    Stream::Stdout => crate::telemetry::write_stdout(&bytes),
                    Stream::Stderr => std::io::stderr().lock().write_all(&bytes),
                };
            }
        }
        if let Some(tx) = &self.file {
            let Ok(value) = serde_json::to_value(&event) else {
                return;
            };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send((time, value)) {
                if self.dropped.fetch_add(1, Relaxed) == 0 {
                    tracing::error!("audit file writer behind or stopped: dropping audit events");
                }
            }
        }
    }
}

/// Opens (creating) the file, continues its chain, and writes in a background thread.
type FileQueue = SyncSender<(String, serde_json::Value)>;

fn spawn_file_writer(path: PathBuf) -> anyhow::Result<(FileQueue, std::thread::JoinHandle<()>)> {
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read audit file {}", path.display())),
    };
    let (seq, prev) = chain::tail(&existing);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open audit file {}", path.display()))?;
    let (tx, rx) = sync_channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("audit-file".into())
        .spawn(move || write_loop(file, &path, rx, seq, prev))
        .context("cannot start the audit writer")?;
    Ok((tx, handle))
}

fn write_loop(
    mut file: std::fs::File,
    path: &Path,
    rx: Receiver<(String, serde_json::Value)>,
    mut seq: u64,
    mut prev: String,
) {
    while let Ok((time, event)) = rx.recv() {
        seq += 1;
        let (line, hash) = chain::record(seq, &prev, &time, event);
        if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
            tracing::error!(path = %path.display(), error = %e, "audit file write failed");
            seq -= 1;
            continue;
        }
        prev = hash;
    }
    let _ = file.sync_all();
}

/// The OS user running this process (for administrative audit events).
pub fn actor() -> String {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|u| u.split_whitespace().next().unwrap_or("?").to_owned())
            })
        })
        .map_or_else(|| "unknown".into(), |uid| format!("uid:{uid}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_lines_lead_with_log_type_and_timestamp_then_the_event() {
        let event = authserver_core::AuditEvent::AuthAttempt {
            outcome: "denied",
            reason: Some("wrong_password"),
            user_hash: Some("0123abcd".into()),
            source: Some("192.0.2.1".into()),
            request_id: "r-1".into(),
            trace_id: None,
        };
        let line = super::stream_line("2026-11-28T20:00:00.000000001Z", &event).unwrap();
        assert!(
            line.starts_with(b"{\"log_type\":\"audit\",\"timestamp\":\"2026-11-28T20:00:00.000000001Z\",")
        );
        assert!(line.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let direct = serde_json::to_value(&event).unwrap();
        for (k, want) in direct.as_object().unwrap() {
            assert_eq!(&v[k], want, "{k}");
        }
    }

    #[test]
    fn now_is_rfc3339_with_nanoseconds_and_current() {
        let before = time::OffsetDateTime::now_utc();
        let a = super::now();
        let b = super::now();
        let parsed = time::OffsetDateTime::parse(&a, &super::Rfc3339).unwrap();
        assert!(parsed >= before.replace_nanosecond(0).unwrap(), "{a}");
        assert_eq!(a.len(), "2026-11-28T20:39:30.180938654Z".len(), "{a}");
        assert!(a.ends_with('Z') && a <= b, "{a} {b}");
    }
}
