//! OpenTelemetry export: spans reach an OTLP/HTTP receiver when the `otlp` feature is built in;
//! a build without it refuses the setting instead of silently exporting nothing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::users::*;

#[cfg(not(feature = "otlp"))]
#[test]
fn endpoint_without_the_feature_is_a_startup_error() {
    let f = fixture();
    let out = std::process::Command::new(authserver_testkit::cli::binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--users",
            f.users.to_str().unwrap(),
        ])
        .env(
            "AUTHSERVER_TELEMETRY_OTLP_ENDPOINT",
            "http://127.0.0.1:9/v1/traces",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without the `otlp` feature"));
}

#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // the collector must run while the test blocks
async fn spans_are_exported_to_the_collector() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let sink = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                sink.lock().unwrap().push((ct, body));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let f = fixture();
    let server = authserver_testkit::process::Server::start(
        &f.users,
        &[],
        &[("AUTHSERVER_TELEMETRY_OTLP_ENDPOINT", &endpoint)],
    );
    let client = reqwest::Client::new();
    for _ in 0..3 {
        client
            .post(server.url("/auth/validate"))
            .header("authorization", basic(ALICE, ALICE_PW))
            .send()
            .await
            .unwrap();
    }
    let (clean, _) = server.terminate(); // shutdown flushes the batch
    assert!(clean);
    let got = received.lock().unwrap().clone();
    assert!(!got.is_empty(), "no export reached the collector");
    assert!(got.iter().all(|(ct, _)| ct == "application/x-protobuf"));
    let all: Vec<u8> = got.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let has = |name: &str| all.windows(name.len()).any(|w| w == name.as_bytes());
    assert!(
        has("request") && has("hash_verify"),
        "request and hash_verify spans exported"
    );
    assert!(!has(ALICE) && !has(ALICE_PW), "spans carry no credentials");
}
