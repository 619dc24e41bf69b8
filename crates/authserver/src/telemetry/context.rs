//! The request context of log lines: every line logged while a request is handled carries its
//! `request_id` and, when present, its X-Ray trace id and W3C `traceparent`.
//!
//! The ids live in a task-local set by the request middleware, and [`WithRequest`] adds them
//! to each line as it is formatted. That costs nothing per request beyond the task-local: a
//! tracing span per request (the obvious way) cost about 7 % of cache-hit throughput, because
//! the JSON formatter serialises a span's fields when the span is created. Lines are rare inside
//! a request; requests are not. With OTLP export on, the middleware still opens a `request`
//! span (the trace needs it).

use std::fmt::Write as _;
use std::future::Future;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The ids of the request being handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The request id (taken from `X-Request-Id` or generated); shared, not copied, with the
    /// request's other holders.
    pub request_id: std::sync::Arc<str>,
    /// The X-Ray trace id, when the request carries one.
    pub xray_trace_id: Option<String>,
    /// The W3C `traceparent`, when the request carries one.
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Runs `f` with `ctx` as the request context of every line it logs.
pub async fn scope<F: Future>(ctx: RequestContext, f: F) -> F::Output {
    REQUEST.scope(ctx, f).await
}

/// Runs `f` in the request context of the caller, if any: for work a request hands to a task
/// of its own (which must outlive the request), so that its lines still carry the request's ids.
pub fn carried<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let ctx = REQUEST.try_with(Clone::clone).ok();
    async move {
        match ctx {
            Some(ctx) => REQUEST.scope(ctx, f).await,
            None => f.await,
        }
    }
}

/// The context of the request being handled, if any (for records built away from the
/// middleware, such as the OAuth endpoints' audit events).
pub fn current() -> Option<RequestContext> {
    REQUEST.try_with(Clone::clone).ok()
}

/// Line shape the ids are added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A JSON object per line: the ids become its first fields.
    Json,
    /// Text: the ids are appended as `key=value`.
    Text,
}

/// A [`FormatEvent`] that formats with `inner`, then adds the request context (see the module
/// docs).
#[derive(Debug)]
pub struct WithRequest<F> {
    inner: F,
    shape: Shape,
}

impl<F> WithRequest<F> {
    /// Wraps `inner`, whose lines have `shape`.
    pub const fn new(inner: F, shape: Shape) -> Self {
        Self { inner, shape }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let in_request = REQUEST.try_with(|request| {
            let mut line = String::new();
            self.inner.format_event(ctx, Writer::new(&mut line), event)?;
            writer.write_str(&add_context(&line, request, self.shape))
        });
        match in_request {
            Ok(written) => written,
            Err(_) => self.inner.format_event(ctx, writer, event),
        }
    }
}

/// `line` (one formatted line, newline included) with the ids of `request` added.
fn add_context(line: &str, request: &RequestContext, shape: Shape) -> String {
    let fields = [
        ("request_id", Some(&*request.request_id)),
        ("xray_trace_id", request.xray_trace_id.as_deref()),
        ("traceparent", request.traceparent.as_deref()),
    ];
    let mut out = String::with_capacity(line.len() + 128);
    match shape {
        Shape::Json if line.starts_with('{') => {
            out.push('{');
            for (key, value) in fields {
                if let Some(v) = value {
                    // serde_json escapes: the X-Ray id can come from the environment on Lambda.
                    let _ = write!(out, "\"{key}\":{},", serde_json::Value::from(v));
                }
            }
            out.push_str(&line[1..]);
        }
        _ => {
            let body = line.strip_suffix('\n').unwrap_or(line);
            out.push_str(body);
            for (key, value) in fields {
                if let Some(v) = value {
                    let _ = write!(out, " {key}={v}");
                }
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext {
            request_id: "req-1".into(),
            xray_trace_id: Some("Root=1-a\"b".into()),
            traceparent: None,
        }
    }

    #[test]
    fn json_lines_get_the_ids_as_first_fields() {
        let line = add_context("{\"level\":\"WARN\",\"message\":\"m\"}\n", &ctx(), Shape::Json);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["xray_trace_id"], "Root=1-a\"b", "escaped, still valid JSON");
        assert!(v.get("traceparent").is_none());
        assert_eq!(v["message"], "m");
        assert!(line.ends_with("}\n"));
    }

    #[test]
    fn text_lines_get_the_ids_appended() {
        let line = add_context("2026 WARN m\n", &ctx(), Shape::Text);
        assert_eq!(line, "2026 WARN m request_id=req-1 xray_trace_id=Root=1-a\"b\n");
    }

    fn current() -> Option<RequestContext> {
        REQUEST.try_with(Clone::clone).ok()
    }

    #[tokio::test]
    async fn the_context_is_the_scoped_one_and_only_inside() {
        assert_eq!(current(), None);
        let inside = scope(ctx(), async { current() }).await;
        assert_eq!(inside, Some(ctx()));
        assert_eq!(current(), None);
    }
}
