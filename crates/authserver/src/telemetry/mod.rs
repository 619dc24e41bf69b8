//! Telemetry: logging setup, the metric table, the metric registry, the sliding window behind
//! `/stats`, and CloudWatch EMF for Lambda. One [`Telemetry`] value per process records each
//! request once and feeds every output.
//!
//! # Layout
//! - [`names`]: every metric, defined once: the [`names::MetricId`] enum and its table.
//! - [`listing`]: that table as `authserver metrics-names` prints it (for the deploy checker).
//! - [`metrics`]: counters and histograms; Prometheus text, one value per `MetricId`.
//! - [`stats`]: the per-second sliding window and top failing keys.
//! - [`batch`]: group-commit stdout shared by logs and the per-request records
//!   (the access record of the `audit` module).
//! - [`context`]: the request ids every log line of a request carries.
//! - [`emf`]: CloudWatch Embedded Metric Format blobs.
//! - [`otlp`]: optional OpenTelemetry span export (cargo feature `otlp`).
//! - [`oauth`]: the OAuth issuer's counters and key age, process-wide.

pub mod batch;
pub mod context;
pub mod emf;
pub mod listing;
pub mod metrics;
pub mod names;
pub mod oauth;
pub mod otlp;
pub mod shard;
pub mod stats;

use crate::config::{LogFormat, LogSettings, Settings};
use authserver_core::{CacheUse, Reason, SnapshotSource};
use shard::Count as _;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Targets pinned quiet whatever the level: the Lambda runtime logs raw events (with their
/// `Authorization` headers) at TRACE, and hyper/h2 are noisy at DEBUG.
const PINNED: &str = "lambda_runtime=info,lambda_http=info,hyper=warn,hyper_util=warn,h2=warn,aws_smithy_runtime=warn,aws_config=warn";

/// The filter for `level` with the pinned targets appended (later directives win).
pub fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(format!("{level},{PINNED}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{PINNED}")))
}

/// A subscriber writing to `writer` in the configured format (tests pass a buffer).
pub fn subscriber<W>(settings: &LogSettings, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_with(settings, writer, None)
}

/// The registry with the level filter: every other layer stacks on this.
type Filtered = Layered<EnvFilter, Registry>;

/// An extra layer (OpenTelemetry export) beside the log output.
pub type ExtraLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// [`subscriber`] plus an optional extra layer.
pub fn subscriber_with<W>(
    settings: &LogSettings,
    writer: W,
    extra: Option<ExtraLayer>,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use context::{Shape, WithRequest};
    use tracing_subscriber::fmt::format;
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt: ExtraLayer = match settings.format {
        LogFormat::Json => fmt
            .json()
            .event_format(WithRequest::new(
                format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
                Shape::Json,
            ))
            .boxed(),
        LogFormat::Text => fmt
            .with_ansi(false)
            .event_format(WithRequest::new(format().with_ansi(false), Shape::Text))
            .boxed(),
    };
    let layers: Vec<ExtraLayer> = std::iter::once(fmt).chain(extra).collect();
    Box::new(
        tracing_subscriber::registry()
            .with(filter(&settings.level))
            .with(layers),
    )
}

/// Installs the process-wide subscriber writing straight to stdout (Lambda, CLI: every line is
/// out before the call returns, so nothing waits in a buffer when the sandbox freezes).
pub fn init(settings: &LogSettings) {
    // Fails only if a subscriber is already set (tests); the existing one then stays.
    let _ = tracing::subscriber::set_global_default(subscriber(settings, std::io::stdout));
}

/// The batched stdout of a long-running server, shared by logs, access lines and the audit
/// stream (one ordering, one write per batch).
static STDOUT: OnceLock<Arc<batch::Batch>> = OnceLock::new();

/// Sends what [`write_stdout`] writes (access lines, audit records) through a batch writing to
/// `out` instead of fd 1, when the process has no batched stdout yet (tests read the records
/// from `out`; `flush` the batch first). Returns the batch in use, which is the existing one if
/// a batched stdout was already installed.
pub fn buffer_stdout(out: Box<dyn Write + Send>) -> Arc<batch::Batch> {
    STDOUT.get_or_init(|| batch::Batch::start(out)).clone()
}

/// Set when spans are exported (OTLP): only then does each request open a span of its own.
static EXPORTS_SPANS: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (see `EXPORTS_SPANS`).
pub fn exports_spans() -> bool {
    EXPORTS_SPANS.load(Relaxed)
}

/// Installs the process-wide subscriber for a long-running server, writing through a
/// [`batch::Batch`]. Keep the guards until exit: dropping them flushes logs and exports spans.
pub fn init_buffered(settings: &Settings) -> anyhow::Result<Guards> {
    // Our own handle on fd 1 without Stdout's line buffering, so a batch is one write.
    let out: Box<dyn Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => {
            // A pipe (container runtime, journald, a log shipper) holds 64 KiB by default: a
            // batch filled it, and the flush thread and the reader took turns waking each other
            // every 64 KiB. Asking for 1 MiB (Linux's limit for unprivileged processes) lets a
            // batch go out in one write; refused, not a pipe, or already larger (attack 2): it
            // stays as it is.
            if rustix::pipe::fcntl_getpipe_size(&fd).is_ok_and(|n| n < batch::PIPE_BYTES) {
                let _ = rustix::pipe::fcntl_setpipe_size(&fd, batch::PIPE_BYTES);
            }
            Box::new(std::fs::File::from(fd))
        }
        Err(_) => Box::new(std::io::stdout()),
    };
    let batch = STDOUT.get_or_init(|| batch::Batch::start(out)).clone();
    batch.count_lost_audit_records_in(metrics::audit_dropped_counter(&settings.audit.file));
    let (otel, provider) = otlp_layer(&settings.telemetry)?;
    EXPORTS_SPANS.store(otel.is_some(), Relaxed);
    let make = {
        let batch = batch.clone();
        move || batch.writer()
    };
    let _ = tracing::subscriber::set_global_default(subscriber_with(&settings.log, make, otel));
    Ok(Guards {
        _otlp: provider,
        logs: batch,
    })
}

/// Keep until exit: dropping exports pending spans and flushes buffered lines.
pub struct Guards {
    _otlp: Option<otlp::Provider>,
    logs: Arc<batch::Batch>,
}

impl Drop for Guards {
    fn drop(&mut self) {
        self.logs.close();
    }
}

#[cfg(feature = "otlp")]
fn otlp_layer(
    t: &crate::config::TelemetrySettings,
) -> anyhow::Result<(Option<ExtraLayer>, Option<otlp::Provider>)> {
    if t.otlp_endpoint.is_empty() {
        return Ok((None, None));
    }
    let (layer, provider) = otlp::layer(&t.otlp_endpoint, &t.service)?;
    Ok((Some(layer), Some(provider)))
}

#[cfg(not(feature = "otlp"))]
fn otlp_layer(
    t: &crate::config::TelemetrySettings,
) -> anyhow::Result<(Option<ExtraLayer>, Option<otlp::Provider>)> {
    if !t.otlp_endpoint.is_empty() {
        anyhow::bail!("telemetry.otlp_endpoint is set but this binary was built without the `otlp` feature");
    }
    Ok((None, None))
}

/// Serialises `line` as one JSON line on stdout (see [`write_stdout`]).
pub fn write_line<T: serde::Serialize>(line: &T) {
    if let Ok(mut bytes) = serde_json::to_vec(line) {
        bytes.push(b'\n');
        let _ = write_stdout(&bytes);
    }
}

/// Writes one whole line to stdout through the server's buffered writer when there is one
/// (ordering with log lines kept), else directly.
pub fn write_stdout(line: &[u8]) -> std::io::Result<()> {
    write_stdout_with(|out| out.extend_from_slice(line))
}

/// [`write_stdout`] of the whole lines `render` writes: into the server's buffer directly (the
/// access line of every request is written there, not built elsewhere and copied).
pub fn write_stdout_with(render: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
    match STDOUT.get() {
        Some(batch) => {
            batch.append_with(render);
            Ok(())
        }
        None => {
            let mut line = Vec::new();
            render(&mut line);
            std::io::stdout().lock().write_all(&line)
        }
    }
}

/// What an auth handler tells telemetry (a response extension).
#[derive(Debug, Clone)]
pub struct AuthRecord {
    /// Denial reason, if denied.
    pub reason: Option<Reason>,
    /// Cache use.
    pub cache: CacheUse,
    /// Keyed username hash.
    pub user_hash: Option<String>,
    /// Argon2id time, if one ran; for [`CacheUse::Shared`], the wait for another request's.
    pub verify_time: Option<Duration>,
}

impl AuthRecord {
    /// The time of an Argon2id run this request made (none when it shared another's).
    pub fn verified(&self) -> Option<Duration> {
        self.verify_time.filter(|_| self.cache == CacheUse::Miss)
    }

    /// Hit or miss of the verified cache, for the hit ratio; `None` when the request neither
    /// consulted it nor ran a verification of its own.
    pub fn cache_hit(&self) -> Option<bool> {
        match self.cache {
            CacheUse::Hit => Some(true),
            CacheUse::Miss => Some(false),
            CacheUse::Shared | CacheUse::None => None,
        }
    }
}

/// The wall-clock time a request ended, read once and only when something asks (its metrics'
/// `/stats` second, its line's timestamp): two reads of the clock were two of the larger
/// items of a request's telemetry.
#[derive(Debug, Default)]
pub struct EndClock(std::cell::OnceCell<(std::time::SystemTime, Duration)>);

impl EndClock {
    /// A clock that already read `at`.
    pub fn at(at: std::time::SystemTime) -> Self {
        Self(std::cell::OnceCell::from((at, since_epoch(at))))
    }

    fn read(&self) -> &(std::time::SystemTime, Duration) {
        self.0.get_or_init(|| {
            let now = std::time::SystemTime::now();
            (now, since_epoch(now))
        })
    }

    /// The end time (read at the first call).
    pub fn now(&self) -> std::time::SystemTime {
        self.read().0
    }

    /// [`EndClock::now`] as its distance from the epoch (zero before it: a broken clock), kept
    /// with it: the line's timestamp and the `/stats` second both start from it, and the
    /// subtraction from the epoch was done twice a request.
    pub fn since_epoch(&self) -> Duration {
        self.read().1
    }

    /// [`EndClock::now`] in whole seconds since the epoch (0 before it: a broken clock).
    pub fn epoch_secs(&self) -> u64 {
        self.since_epoch().as_secs()
    }
}

/// `at`'s distance from the epoch; zero before it (only with a broken clock), as the Unix clock
/// helpers do.
pub(crate) fn since_epoch(at: std::time::SystemTime) -> Duration {
    at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// One finished request.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    /// Set for auth requests.
    pub auth: Option<&'a AuthRecord>,
    /// Total handling time.
    pub latency: Duration,
    /// Client address, when known.
    pub source: Option<IpAddr>,
    /// Country from the trusted header, when configured and present.
    pub country: Option<&'a str>,
    /// Request id.
    pub request_id: &'a str,
    /// The regulator's totals now (EMF emits what changed since the previous blob).
    pub regulation: metrics::RegulationCounters,
    /// Requests gone while queued for a verification slot, since start (the limiter's count).
    pub hash_abandoned: u64,
    /// When it ended.
    pub end: &'a EndClock,
}

/// Where EMF blobs go (stdout on Lambda; a buffer in tests).
pub type EmfSink = Arc<dyn Fn(String) + Send + Sync>;

/// The process's telemetry.
pub struct Telemetry {
    /// Counters and histograms.
    pub registry: metrics::Registry,
    /// Sliding window for `/stats`.
    pub window: stats::Window,
    emf: Option<EmfSink>,
    service: String,
    stage: String,
    /// `[oauth]` is on: the OAuth figures go into EMF blobs.
    oauth: bool,
    cold: AtomicBool,
    enabled: bool,
    emitted_refreshes: AtomicU64,
    emitted_errors: AtomicU64,
    emitted_bans: AtomicU64,
    emitted_backend_errors: AtomicU64,
    emitted_audit_dropped: AtomicU64,
    emitted_hash_abandoned: AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("emf", &self.emf.is_some())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry for `settings`; `emf` set on Lambda.
    pub fn new(settings: &Settings, emf: Option<EmfSink>) -> Self {
        let t = Self {
            registry: metrics::Registry {
                audit_dropped: metrics::audit_dropped_counter(&settings.audit.file),
                ..Default::default()
            },
            window: stats::Window::default(),
            emf,
            service: settings.telemetry.service.clone(),
            stage: settings.telemetry.stage.clone(),
            oauth: settings.oauth.enabled(),
            cold: AtomicBool::new(true),
            enabled: settings.telemetry.metrics,
            emitted_refreshes: AtomicU64::new(0),
            emitted_errors: AtomicU64::new(0),
            emitted_bans: AtomicU64::new(0),
            emitted_backend_errors: AtomicU64::new(0),
            emitted_audit_dropped: AtomicU64::new(0),
            emitted_hash_abandoned: AtomicU64::new(0),
        };
        t.registry.cold_start.fetch_add(1, Relaxed);
        t
    }

    /// Records one request everywhere it counts.
    pub fn record(&self, r: &RequestRecord<'_>, store: &dyn SnapshotSource) {
        if !self.enabled {
            return;
        }
        let reg = &self.registry;
        reg.count_request(r.country);
        let latency_s = r.latency.as_secs_f64();
        let mut allowed = false;
        if let Some(a) = r.auth {
            let (hot, w) = reg.hot.writer();
            allowed = a.reason.is_none();
            match a.reason {
                None => hot.auth_success.add(1, w),
                Some(reason) => hot.auth_failure[reason.index()].add(1, w),
            }
            match a.reason {
                Some(Reason::Overloaded) => hot.hash_queue_rejected.add(1, w),
                Some(Reason::RateLimited | Reason::LockedOut) => hot.rate_limited.add(1, w),
                _ => {}
            }
            // A request that shared another's verification (single flight) is neither: misses
            // and the verification histogram count Argon2id runs.
            match a.cache {
                CacheUse::Hit => hot.cache_hit.add(1, w),
                CacheUse::Miss => hot.cache_miss.add(1, w),
                CacheUse::Shared | CacheUse::None => {}
            }
            if let Some(v) = a.verified() {
                hot.hash_verify.observe(v.as_secs_f64(), w);
            }
            hot.latency.observe(latency_s, w);
            let credential_failure = a.reason.is_some_and(Reason::is_credential_failure);
            self.window.record(stats::Sample {
                epoch: r.end.epoch_secs(),
                auth: true,
                allowed,
                cache_hit: a.cache_hit(),
                latency_ms: latency_s * 1000.0,
                failed_user_hash: a.user_hash.as_deref().filter(|_| credential_failure),
                failed_source: r.source.filter(|_| a.reason.is_some()),
            });
        }
        if let Some(sink) = &self.emf {
            for blob in self.emf_blobs(r, allowed, store) {
                sink(blob.to_string());
            }
        }
    }

    fn emf_blobs(
        &self,
        r: &RequestRecord<'_>,
        allowed: bool,
        store: &dyn SnapshotSource,
    ) -> Vec<serde_json::Value> {
        let counters = store.counters();
        let refreshes = counters
            .refreshes
            .saturating_sub(self.emitted_refreshes.swap(counters.refreshes, Relaxed));
        let errors = counters
            .fetch_errors
            .saturating_sub(self.emitted_errors.swap(counters.fetch_errors, Relaxed));
        let regulation = r.regulation;
        let bans = regulation
            .bans
            .saturating_sub(self.emitted_bans.swap(regulation.bans, Relaxed));
        let backend_errors = regulation.backend_errors.saturating_sub(
            self.emitted_backend_errors
                .swap(regulation.backend_errors, Relaxed),
        );
        let hash_abandoned = r
            .hash_abandoned
            .saturating_sub(self.emitted_hash_abandoned.swap(r.hash_abandoned, Relaxed));
        let audit_dropped = self.registry.audit_dropped.load(Relaxed);
        let audit_dropped =
            audit_dropped.saturating_sub(self.emitted_audit_dropped.swap(audit_dropped, Relaxed));
        let status = store.status();
        emf::blobs(&emf::Invocation {
            service: &self.service,
            stage: &self.stage,
            // The request's end, as its access line and `/stats` second have it (one clock read:
            // a separate one could fall in the next minute at a boundary).
            timestamp_ms: u64::try_from(r.end.since_epoch().as_millis()).unwrap_or(u64::MAX),
            auth: r.auth.is_some(),
            allowed,
            reason: r.auth.and_then(|a| a.reason).map(Reason::as_str),
            cache_hit: r.auth.and_then(AuthRecord::cache_hit),
            latency_ms: r.latency.as_secs_f64() * 1000.0,
            hash_ms: r
                .auth
                .and_then(AuthRecord::verified)
                .map(|d| d.as_secs_f64() * 1000.0),
            cold_start: self.cold.swap(false, Relaxed),
            staleness_s: status.age_seconds,
            store_refused: status.refused,
            store_refreshes: refreshes,
            store_fetch_errors: errors,
            bans,
            regulation_backend_errors: backend_errors,
            audit_dropped,
            hash_abandoned,
            country: r.country,
            request_id: r.request_id,
            oauth: self.oauth.then(|| oauth::figures().take_emf(r.end.epoch_secs())),
        })
    }
}

/// Replaces the default panic output (which prints the payload, and a payload could carry
/// whatever the panicking code formatted) with one log line naming only the location.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            location = location.as_deref(),
            "internal error (panic); payload withheld"
        );
    }));
}
