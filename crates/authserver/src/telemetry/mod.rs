//! Logging setup and the metric name table.
//!
//! # Layout
//! - [`names`]: every metric name, defined once.

pub mod names;

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&settings.level))
        .with_writer(writer);
    match settings.format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(false).finish()),
    }
}

/// Installs the process-wide subscriber writing to stdout.
pub fn init(settings: &LogSettings) {
    // Fails only if a subscriber is already set (tests); the existing one then stays.
    let _ = tracing::subscriber::set_global_default(subscriber(settings, std::io::stdout));
}
