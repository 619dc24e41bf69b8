//! The audit trail: a stream separate from the logs, to stdout (`"log_type":"audit"`, so a
//! CloudWatch subscription filter can route it) and/or an append-only hash-chained file.
//!
//! Events that cannot be written (the file writer's queue is full, a write or the lock fails,
//! stdout is gone) are counted in `AuditDropped` (one counter per audit file, see
//! [`crate::telemetry::metrics::audit_dropped_counter`]) with one warning per burst.
//!
//! # Layout
//! - [`access`]: the one record per request: the access line that is also the audit event.
//! - [`chain`]: the file's record format, verification and tamper detection.
//! - [`file`]: the file writer: one writer at a time, catching up, torn-tail repair.
//! - `json`: JSON values written straight into the access line's buffer.

pub mod access;
pub mod chain;
pub mod file;
pub mod handoff;
mod json;

use crate::config::AuditSettings;
use anyhow::Context;
use authserver_core::{AuditEvent, AuditSink};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Events queued for the file writer; beyond this they are dropped and counted (the request
/// path never waits on the disk).
const QUEUE: usize = 16_384;

/// Events appended in one locked write at most (with `file::APPEND_GAP` between writes, over
/// 400,000 events/s).
const BATCH: usize = 1024;

/// An anchor (`SEQ:HASH`) is logged after this many appended events...
pub const ANCHOR_EVERY_EVENTS: u64 = 1000;
/// ...or this long after the previous one when events were appended since, and at shutdown.
pub const ANCHOR_EVERY: Duration = Duration::from_secs(300);

/// Drops closer together than this are one burst (one warning).
const BURST_GAP_MS: u64 = 10_000;

/// Counts dropped events; warns once per burst.
#[derive(Debug)]
struct Dropped {
    count: Arc<AtomicU64>,
    /// Milliseconds since the epoch of the last drop.
    last_ms: AtomicU64,
    path: String,
    /// Why the last event was dropped (for [`Audit::close`]: CLI commands have no log).
    last_why: std::sync::Mutex<String>,
}

impl Dropped {
    fn add(&self, n: u64, why: &str) {
        self.count.fetch_add(n, Relaxed);
        why.clone_into(&mut self.last_why.lock().unwrap_or_else(|e| e.into_inner()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if now.saturating_sub(self.last_ms.swap(now, Relaxed)) >= BURST_GAP_MS {
            tracing::warn!(path = %self.path, dropped = n, why, "audit events dropped (counted in AuditDropped)");
        }
    }
}

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
    dropped: Arc<Dropped>,
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
pub fn now() -> String {
    let mut out = Vec::with_capacity(30);
    now_into(&mut out);
    // Only ASCII digits and separators are written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`now`] appended to `out`. Every request writes one: the date and time of day are
/// formatted once per second per thread, and only the fraction each time, digit by digit (no
/// allocation, no `fmt`: callgrind counted `write!(".{:09}Z")` and the calendar arithmetic of
/// `OffsetDateTime::now_utc` among the larger costs of an access line).
pub fn now_into(out: &mut Vec<u8>) {
    time_into(out, std::time::SystemTime::now());
}

/// `at` as [`now_into`] writes the present.
pub fn time_into(out: &mut Vec<u8>, at: std::time::SystemTime) {
    epoch_time_into(out, crate::telemetry::since_epoch(at));
}

/// Two decimal digits of each number below 100.
const PAIRS: [[u8; 2]; 100] = {
    let mut table = [[0u8; 2]; 100];
    let mut n = 0;
    while n < 100 {
        // Each `as u8` is of a single decimal digit.
        table[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    table
};

/// [`time_into`] of a time given as its distance from the epoch.
pub fn epoch_time_into(out: &mut Vec<u8>, since: Duration) {
    thread_local! {
        /// The second this thread wrote last and its `YYYY-MM-DDTHH:MM:SS`: plain bytes in a
        /// `Cell` (no borrow flag, no heap, no destructor to register: the `RefCell<String>`
        /// it replaces cost ~65 instructions a line).
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let second = since.as_secs();
    let (cached, text) = SECOND.get();
    if cached == second {
        out.extend_from_slice(&text);
    } else {
        let whole = i64::try_from(second)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let whole = whole.format(&Rfc3339).unwrap_or_default();
        let whole = whole.trim_end_matches('Z');
        out.extend_from_slice(whole.as_bytes());
        // Only 19 bytes are kept (`time` formats years up to 9999, later ones as the epoch):
        // anything else would be written, not kept.
        if let Ok(text) = whole.as_bytes().try_into() {
            SECOND.set((second, text));
        }
    }
    // Nine digits: the first, then four pairs (`subsec_nanos` is below 10^9, so the first is a
    // single digit and every pair's index below 100).
    let nanos = since.subsec_nanos();
    let rest = nanos % 100_000_000;
    let [a, b] = PAIRS[(rest / 1_000_000) as usize];
    let [c, d] = PAIRS[(rest / 10_000 % 100) as usize];
    let [e, f] = PAIRS[(rest / 100 % 100) as usize];
    let [g, h] = PAIRS[(rest % 100) as usize];
    out.extend_from_slice(&[
        b'.',
        b'0' + (nanos / 100_000_000) as u8,
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        b'Z',
    ]);
}

impl Audit {
    /// Sinks from settings; `stream` says where `audit.stdout` writes (and where anchors go:
    /// the log for servers, stderr for CLI commands). Fails when the audit file cannot be opened
    /// or another writer holds it for over [`file::LOCK_WAIT`].
    pub fn from_settings(settings: &AuditSettings, stream: Stream) -> anyhow::Result<Self> {
        let dropped = Arc::new(Dropped {
            count: crate::telemetry::metrics::audit_dropped_counter(&settings.file),
            last_ms: AtomicU64::new(0),
            path: settings.file.clone(),
            last_why: std::sync::Mutex::default(),
        });
        let (file, writer) = if settings.file.is_empty() {
            (None, None)
        } else {
            let (tx, handle) = spawn_file_writer(PathBuf::from(&settings.file), dropped.clone(), stream)?;
            (Some(tx), Some(handle))
        };
        Ok(Self {
            stream: settings.stdout.then_some(stream),
            file,
            writer,
            dropped,
        })
    }

    /// Events this process dropped for this audit file (all its sinks).
    pub fn dropped(&self) -> u64 {
        self.dropped.count.load(Relaxed)
    }

    /// Writes everything queued and says whether anything was dropped: CLI commands end with
    /// this, so an administrative change whose audit record was lost does not exit 0.
    pub fn close(mut self) -> anyhow::Result<()> {
        drop(self.file.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let dropped = self.dropped();
        anyhow::ensure!(
            dropped == 0,
            "{dropped} audit event(s) could not be written to {}: {}",
            self.dropped.path,
            self.dropped.last_why.lock().unwrap_or_else(|e| e.into_inner())
        );
        Ok(())
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

impl Audit {
    /// Queues `event` for the file writer, if there is one.
    fn to_file(&self, time: String, event: &AuditEvent) {
        let Some(tx) = &self.file else { return };
        let Ok(value) = serde_json::to_value(event) else {
            return;
        };
        match tx.try_send((time, value)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped.add(1, "the audit file writer's queue is full"),
            Err(TrySendError::Disconnected(_)) => self.dropped.add(1, "the audit file writer stopped"),
        }
    }
}

impl AuditSink for Audit {
    fn emit(&self, event: AuditEvent) {
        let time = now();
        if let Some(stream) = self.stream
            && let Some(bytes) = stream_line(&time, &event)
        {
            let written = match stream {
                Stream::Stdout => crate::telemetry::write_stdout(&bytes),
                Stream::Stderr => std::io::stderr().lock().write_all(&bytes),
            };
            if written.is_err() {
                self.dropped.add(1, "the audit stream cannot be written");
            }
        }
        self.to_file(time, &event);
    }

    fn streams_to_stdout(&self) -> bool {
        self.stream == Some(Stream::Stdout)
    }

    /// The access line was this event's stdout line (see [`access`]); the file still gets it.
    fn emit_streamed(&self, event: &dyn Fn() -> AuditEvent, written: bool) {
        if !written {
            self.dropped.add(1, "the audit stream cannot be written");
        }
        if self.file.is_some() {
            self.to_file(now(), &event());
        }
    }
}

/// Opens (creating) the file, continues its chain, and writes in a background thread.
type FileQueue = SyncSender<(String, serde_json::Value)>;

fn spawn_file_writer(
    path: PathBuf,
    dropped: Arc<Dropped>,
    stream: Stream,
) -> anyhow::Result<(FileQueue, std::thread::JoinHandle<()>)> {
    let writer = file::Writer::open(&path)?;
    let (tx, rx) = sync_channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("audit-file".into())
        .spawn(move || write_loop(writer, &rx, &dropped, stream))
        .context("cannot start the audit writer")?;
    Ok((tx, handle))
}

fn write_loop(
    mut writer: file::Writer,
    rx: &Receiver<(String, serde_json::Value)>,
    dropped: &Dropped,
    stream: Stream,
) {
    let mut since_anchor = 0u64;
    let mut anchored_at = Instant::now();
    loop {
        let wait = ANCHOR_EVERY
            .saturating_sub(anchored_at.elapsed())
            .max(Duration::from_secs(1));
        match rx.recv_timeout(wait) {
            Ok(first) => {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(BATCH - 1));
                let n = batch.len() as u64;
                match writer.append(batch) {
                    Ok(()) => since_anchor += n,
                    Err(e) => dropped.add(n, &format!("{e:#}")),
                }
                // Queued events wait; other writers get the lock (see `file::APPEND_GAP`).
                std::thread::sleep(file::APPEND_GAP);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if anchor_due(since_anchor, anchored_at.elapsed()) {
            announce(&writer, stream);
            since_anchor = 0;
            anchored_at = Instant::now();
        }
    }
    writer.sync();
    if writer.anchor().seq > 0 {
        announce(&writer, stream);
    }
}

/// Whether to log an anchor, `since` events and `elapsed` after the last one.
fn anchor_due(since: u64, elapsed: Duration) -> bool {
    since >= ANCHOR_EVERY_EVENTS || (since > 0 && elapsed >= ANCHOR_EVERY)
}

/// Logs the chain's current anchor: kept outside the file (the log, the terminal), it makes a
/// cut tail detectable with `authserver audit verify FILE --anchor SEQ:HASH`.
fn announce(writer: &file::Writer, stream: Stream) {
    let anchor = writer.anchor();
    match stream {
        Stream::Stdout => tracing::info!(
            path = %writer.path().display(),
            anchor = %anchor,
            "audit anchor (check with `authserver audit verify FILE --anchor SEQ:HASH`)"
        ),
        Stream::Stderr => eprintln!("audit anchor {anchor} for {}", writer.path().display()),
    }
}

/// The OS user running this process, for administrative audit events: the kernel's real and
/// effective uid (`uid=1000(alice)`, plus `euid=0(root)` when they differ). `SUDO_USER` is set
/// by whoever starts the process, so it is kept only as a labelled claim
/// (`sudo_user="bob"(claimed)`), never as the actor; `USER`/`LOGNAME` are ignored.
pub fn actor() -> String {
    let ids = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let line = s.lines().find_map(|l| l.strip_prefix("Uid:"))?;
        let mut ids = line.split_whitespace().map(|n| n.parse::<u32>().ok());
        Some((ids.next()??, ids.next()??))
    });
    let mut actor = match ids {
        Some((uid, euid)) if uid == euid => format!("uid={uid}{}", user_name(uid)),
        Some((uid, euid)) => format!("uid={uid}{} euid={euid}{}", user_name(uid), user_name(euid)),
        None => "uid=unknown".to_owned(),
    };
    if let Some(claim) = std::env::var_os("SUDO_USER").filter(|v| !v.is_empty()) {
        // Debug-quoted: the claim is attacker-controlled text.
        actor.push_str(&format!(" sudo_user={:?}(claimed)", claim.to_string_lossy()));
    }
    actor
}

/// `(name)` for `uid` from `/etc/passwd`, or nothing (directory services are not consulted).
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| format!("({name})"))
        })
        .unwrap_or_default()
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
            rule: None,
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
    fn anchors_are_due_every_1000_events_or_5_minutes_with_events() {
        use super::{Duration, anchor_due};
        assert!(!anchor_due(999, Duration::from_secs(299)));
        assert!(anchor_due(1000, Duration::ZERO));
        assert!(anchor_due(1, Duration::from_secs(300)));
        assert!(
            !anchor_due(0, Duration::from_secs(3600)),
            "nothing new, nothing to anchor"
        );
    }

    #[test]
    fn the_actor_is_the_uid_never_a_variable() {
        let actor = super::actor();
        assert!(
            actor.starts_with("uid=") && !actor.starts_with("uid=unknown"),
            "{actor}"
        );
    }

    /// The fraction's digits and the per-thread second: every digit position, second changes,
    /// the epoch and a time before it, each as `time` formats it; a year past 9999.
    #[test]
    fn times_are_written_as_rfc3339_formats_them() {
        use super::{OffsetDateTime, Rfc3339};
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let expected = |at: SystemTime| {
            let t = OffsetDateTime::from(at.max(UNIX_EPOCH));
            let text = t.format(&Rfc3339).unwrap_or_default();
            let (whole, fraction) = text
                .trim_end_matches('Z')
                .split_once('.')
                .unwrap_or((text.trim_end_matches('Z'), ""));
            format!("{whole}.{:0<9}Z", fraction)
        };
        let mut times = vec![UNIX_EPOCH, UNIX_EPOCH - Duration::from_secs(5)];
        for nanos in [
            0,
            1,
            9,
            10,
            99,
            100,
            999_999_999,
            123_456_789,
            987_654_321,
            100_000_000,
            500,
        ] {
            for secs in [1_765_000_000, 1_765_000_000, 1_765_000_001, 1_765_086_400, 0] {
                times.push(UNIX_EPOCH + Duration::new(secs, nanos));
            }
        }
        for at in times {
            let mut out = Vec::new();
            super::time_into(&mut out, at);
            assert_eq!(String::from_utf8(out).unwrap(), expected(at), "{at:?}");
        }
        // Past `time`'s range (year 10000): the epoch, as before, then the next second in range
        // is right again.
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        let mut out = Vec::new();
        super::time_into(&mut out, far);
        assert_eq!(out, b"1970-01-01T00:00:00.000000000Z");
        let at = UNIX_EPOCH + Duration::new(1_765_000_000, 42);
        let mut out = Vec::new();
        super::time_into(&mut out, at);
        assert_eq!(String::from_utf8(out).unwrap(), expected(at));
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
