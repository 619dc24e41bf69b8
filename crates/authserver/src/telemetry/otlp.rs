//! Optional OpenTelemetry export of the `request`, `store_fetch` and `hash_verify` spans over
//! OTLP/HTTP (protobuf). Compiled only with the cargo feature `otlp`; enabled by setting
//! `telemetry.otlp_endpoint` (e.g. `http://127.0.0.1:4318/v1/traces`). Off by default.

#[cfg(feature = "otlp")]
pub use enabled::*;

/// Without the feature there is nothing to keep alive.
#[cfg(not(feature = "otlp"))]
#[derive(Debug)]
pub struct Provider;

#[cfg(feature = "otlp")]
mod enabled {
    use super::super::ExtraLayer;
    use anyhow::Context;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer;

    /// Flushes pending spans when dropped.
    #[derive(Debug)]
    pub struct Provider(SdkTracerProvider);

    impl Drop for Provider {
        fn drop(&mut self) {
            let _ = self.0.shutdown();
        }
    }

    /// The layer exporting spans to `endpoint`, batched in the SDK's own thread.
    pub fn layer(endpoint: &str, service: &str) -> anyhow::Result<(ExtraLayer, Provider)> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .context("cannot build the OTLP exporter")?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        let tracer = provider.tracer("authserver");
        Ok((
            tracing_opentelemetry::layer().with_tracer(tracer).boxed(),
            Provider(provider),
        ))
    }
}
