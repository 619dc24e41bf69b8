//! Attacks on the TLS listener of the running binary (issue 11 item 12, second attack).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// Item 12 asked that over TLS the protocol follow the negotiated ALPN. The server picked
/// `http1_only()` for an `http/1.1` session but served it with `serve_connection_with_upgrades`,
/// which ignores that choice and sniffs the preface: an HTTP/2 preface on a session that
/// negotiated `http/1.1` was still answered with an HTTP/2 SETTINGS frame (release binary).
#[tokio::test]
async fn an_h2_preface_on_an_http11_alpn_session_is_not_served_as_http2() {
    let f = fixture();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (f.dir.path().join("cert.pem"), f.dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_TLS_CERT_FILE", cert_path.to_str().unwrap()),
            ("AUTHSERVER_TLS_KEY_FILE", key_path.to_str().unwrap()),
        ],
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut answer))
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
    let answer = &answer[..n];
    assert!(
        !(n >= 9 && answer[3] == 0x4),
        "an http/1.1 session answered with an HTTP/2 SETTINGS frame: {answer:?}"
    );
    assert!(
        n == 0 || answer.starts_with(b"HTTP/1.1 "),
        "HTTP/1 rules apply (an error status or a close): {:?}",
        String::from_utf8_lossy(answer)
    );
}
