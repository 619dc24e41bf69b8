//! The metric table as the binary has it, for `authserver metrics-names` (hidden): what
//! `scripts/check-metric-names.py` holds `deploy/` to, so the checker reads the table the code
//! really compiles instead of parsing Rust source.
//!
//! The JSON document carries a `format` number; the checker refuses any other, so a change of
//! shape fails loudly instead of being half read.

use super::names::{self, Kind, Metric, MetricId, Reach};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Version of the JSON document's shape (bump on any change the checker must follow).
pub const FORMAT: u64 = 1;

/// Output format of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON document (for scripts).
    Json,
    /// One line per metric (for people).
    Text,
}

/// The dimension sets under which `m` reaches CloudWatch (none for standalone-only metrics):
/// `{Service,Stage}`, and with its extra dimension too when it has one (the EMF emitter writes
/// both directives).
pub fn cloudwatch_dimensions(m: &Metric) -> Vec<Vec<&'static str>> {
    let base = vec!["Service", "Stage"];
    match (m.reach, m.dimension) {
        (Reach::StandaloneOnly, _) => Vec::new(),
        (_, None) => vec![base],
        (_, Some(dim)) => vec![base.clone(), [base, vec![dim]].concat()],
    }
}

/// The Prometheus label names of `m`'s series (`le` on a histogram's buckets).
pub fn prometheus_labels(m: &Metric) -> Vec<String> {
    let mut labels: Vec<String> = m.dimension.map(str::to_lowercase).into_iter().collect();
    if m.kind == Kind::Histogram {
        labels.push("le".into());
    }
    labels
}

fn reach(r: Reach) -> &'static str {
    match r {
        Reach::Emf => "emf",
        Reach::PutMetricData => "put_metric_data",
        Reach::StandaloneOnly => "standalone_only",
    }
}

fn metric_json(id: MetricId) -> Value {
    let m = id.metric();
    json!({
        "id": format!("{id:?}"),
        "cloudwatch": m.cloudwatch,
        "prometheus": m.prometheus,
        "kind": m.kind.as_str(),
        "unit": m.unit,
        "help": m.help,
        "reach": reach(m.reach),
        "standalone_only": m.reach == Reach::StandaloneOnly,
        "cloudwatch_dimensions": cloudwatch_dimensions(m),
        "prometheus_labels": prometheus_labels(m),
    })
}

/// The whole table as one JSON document.
pub fn json() -> Value {
    json!({
        "format": FORMAT,
        "namespace": names::NAMESPACE,
        "reasons": names::REASONS,
        "metrics": MetricId::ALL.iter().copied().map(metric_json).collect::<Vec<_>>(),
    })
}

/// The listing in `format`, newline-terminated.
pub fn render(format: Format) -> String {
    match format {
        Format::Json => format!("{:#}\n", json()),
        Format::Text => {
            let mut out = String::new();
            for m in names::ALL {
                let dims = cloudwatch_dimensions(m)
                    .iter()
                    .map(|set| format!("{{{}}}", set.join(",")))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(
                    out,
                    "{} {} {} {} {} {}",
                    m.cloudwatch,
                    m.prometheus,
                    m.kind.as_str(),
                    m.unit,
                    reach(m.reach),
                    if dims.is_empty() { "-" } else { &dims },
                );
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_lists_every_metric_with_what_the_checker_reads() {
        let doc = json();
        assert_eq!(doc["format"], FORMAT);
        assert_eq!(doc["namespace"], names::NAMESPACE);
        assert_eq!(
            doc["reasons"].as_array().map(Vec::len),
            Some(names::REASONS.len())
        );
        let metrics = doc["metrics"].as_array().expect("metrics");
        assert_eq!(metrics.len(), MetricId::ALL.len());
        let failure = metrics
            .iter()
            .find(|m| m["cloudwatch"] == "AuthFailure")
            .expect("AuthFailure");
        assert_eq!(
            failure["cloudwatch_dimensions"],
            json!([["Service", "Stage"], ["Service", "Stage", "Reason"]])
        );
        assert_eq!(failure["prometheus_labels"], json!(["reason"]));
        let tls = metrics
            .iter()
            .find(|m| m["cloudwatch"] == "TlsCertNotAfter")
            .expect("TlsCertNotAfter");
        assert_eq!(tls["standalone_only"], true);
        assert_eq!(tls["cloudwatch_dimensions"], json!([]));
        let latency = metrics
            .iter()
            .find(|m| m["cloudwatch"] == "Latency")
            .expect("Latency");
        assert_eq!(
            (&latency["kind"], &latency["prometheus_labels"]),
            (&json!("histogram"), &json!(["le"]))
        );
    }

    #[test]
    fn the_text_has_one_line_per_metric() {
        let text = render(Format::Text);
        assert_eq!(text.lines().count(), names::ALL.len());
        assert!(text.contains(
            "StoreReloadStalled authserver_store_reload_stalled_total counter Count standalone_only -\n"
        ));
    }
}
