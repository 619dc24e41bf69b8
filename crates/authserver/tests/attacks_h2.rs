//! HTTP/2 connection-level behaviour of the running binary (issue 11 "Smaller": idle
//! HTTP/2, second attack).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::process::Server;
use authserver_testkit::users::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The idle timeout closes an HTTP/2 connection by dropping it: no GOAWAY (measured on the
/// release binary: frames SETTINGS, SETTINGS ack, WINDOW_UPDATE, HEADERS, DATA, then EOF).
/// RFC 9113 §6.8 asks for a GOAWAY first, and it is what lets a client (Envoy `ext_authz`,
/// a gRPC-style pool) tell "closed while idle, retry safely" from "failed mid-request" when
/// its next request crosses the close. Each connection now closes itself gracefully.
#[test]
fn an_idle_http2_connection_is_closed_with_goaway() {
    let f = fixture();
    let server = Server::start(
        &f.users,
        &[],
        &[
            ("AUTHSERVER_SERVER_IDLE_TIMEOUT_MS", "500"),
            ("AUTHSERVER_SERVER_HEADER_READ_TIMEOUT_MS", "500"),
        ],
    );
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // GET /health: indexed :method GET, :scheme http; literal :path and :authority.
    let mut block = vec![0x82, 0x86, 0x04, 7];
    block.extend_from_slice(b"/health");
    block.extend_from_slice(&[0x01, 1, b'x']);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out.extend(frame(1, 0x5, 1, &block));
    s.write_all(&out).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "closed by the idle timeout"
    );
    let mut kinds = Vec::new();
    let mut i = 0;
    while i + 9 <= got.len() {
        let len = usize::from(got[i]) << 16 | usize::from(got[i + 1]) << 8 | usize::from(got[i + 2]);
        kinds.push(got[i + 3]);
        i += 9 + len;
    }
    assert!(kinds.contains(&1), "the request was answered: {kinds:?}");
    assert!(
        kinds.contains(&7),
        "GOAWAY before the close: frame types {kinds:?}"
    );
}
