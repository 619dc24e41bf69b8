//! TLS on the standalone server: HTTPS with HTTP/2 by ALPN, certificate renewal without restart,
//! and the refusal to serve plain HTTP on a public address.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use std::time::{Duration, Instant};

/// A self-signed certificate for 127.0.0.1 / localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn client(trusting: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(trusting.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .https_only(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_with_http2_and_certificate_reload() {
    let f = fixture();
    let (cert_a, key_a) = self_signed();
    let (cert_path, key_path) = (f.dir.path().join("cert.pem"), f.dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_a).unwrap();
    std::fs::write(&key_path, &key_a).unwrap();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_TLS_CERT_FILE", cert_path.to_str().unwrap()),
            ("AUTHSERVER_TLS_KEY_FILE", key_path.to_str().unwrap()),
            ("AUTHSERVER_TLS_RELOAD_INTERVAL_MS", "100"),
        ],
    );
    let url = format!("https://{}/auth/validate", server.addr);
    let res = client(&cert_a)
        .post(&url)
        .header("authorization", basic(ALICE, ALICE_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_2, "h2 negotiated by ALPN");
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health", server.addr))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP on the TLS port"
    );

    // A broken renewal keeps the old certificate in service.
    std::fs::write(
        &key_path,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        client(&cert_a)
            .get(format!("https://{}/health", server.addr))
            .send()
            .await
            .is_ok()
    );

    let (cert_b, key_b) = self_signed();
    std::fs::write(&key_path, &key_b).unwrap();
    std::fs::write(&cert_path, &cert_b).unwrap();
    let start = Instant::now();
    loop {
        if client(&cert_b)
            .get(format!("https://{}/health", server.addr))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "renewed certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        client(&cert_a)
            .get(format!("https://{}/health", server.addr))
            .send()
            .await
            .is_err(),
        "old one retired"
    );
    // Log lines are written in batches (at most 100 ms apart): wait for them.
    let start = Instant::now();
    let lines = loop {
        let lines = server.lines().join("\n");
        if lines.contains("TLS certificate not reloaded") && lines.contains("TLS certificate reloaded") {
            break lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "reload log lines missing: {lines}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!lines.contains("not a key"), "key material never logged");
}

#[test]
fn plain_http_on_a_public_address_is_refused() {
    let f = fixture();
    let out = std::process::Command::new(authserver_testkit::cli::binary())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--users",
            f.users.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing plain HTTP"), "{err}");
}
