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

/// Now, RFC 3339 UTC (the timestamp of audit records and access lines).
pub fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
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

/// One stdout audit line: the event's fields flattened after `log_type` and `timestamp`.
#[derive(serde::Serialize)]
struct StreamLine<'a> {
    log_type: &'static str,
    timestamp: &'a str,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

impl AuditSink for Audit {
    fn emit(&self, event: AuditEvent) {
        let time = now();
        if let Some(stream) = self.stream {
            let line = StreamLine {
                log_type: "audit",
                timestamp: &time,
                event: &event,
            };
            if let Ok(mut bytes) = serde_json::to_vec(&line) {
                bytes.push(b'\n');
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
