//! TLS reload attacks (issue 11 items 13, 16): a failed reload must be retried until it
//! succeeds, even when the fix leaves the mtimes as they were, and the failures and the
//! certificate's expiry must be visible. Its own test binary: the TLS figures are per process.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::tls::{Reloading, figures};
use std::path::Path;

/// A self-signed certificate expiring at the given date, and its key (PEM).
fn pair(year: i32) -> (String, String, i64) {
    // One key algorithm (ECDSA P-256, PKCS#8): every key PEM has the same length.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let not_after = rcgen::date_time_ymd(year, 6, 1);
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), not_after.unix_timestamp())
}

fn write_keeping_mtime(path: &Path, content: &str) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn a_failed_reload_is_retried_until_it_loads_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert_a, key_a, expiry_a) = pair(2030);
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    let tls = Reloading::open(&cert, &key).unwrap();
    assert_eq!(figures().not_after, Some(expiry_a), "expiry exported at start");
    let failures = figures().reload_failures;

    // A renewal writes the certificate first: it does not match the old key yet.
    let (cert_b, key_b, expiry_b) = pair(2031);
    std::fs::write(&cert, &cert_b).unwrap();
    assert!(!tls.check(), "mismatched pair refused");
    assert!(!tls.check(), "and retried");
    assert_eq!(
        figures().reload_failures,
        failures + 2,
        "each failed attempt counted"
    );
    assert_eq!(figures().not_after, Some(expiry_a), "the old pair still serves");

    // The key arrives with the old key's mtime (cp -p, rsync -a; or a chown that changes
    // only ctime): nothing a (mtime)-only poller would see.
    assert_eq!(key_a.len(), key_b.len());
    write_keeping_mtime(&key, &key_b);
    assert!(tls.check(), "retried and loaded");
    assert_eq!(figures().not_after, Some(expiry_b));
    assert!(!tls.check(), "then quiet until the next change");
    assert_eq!(figures().reload_failures, failures + 2);

    // A renewal for the same key, of the same length, delivered with the old mtime.
    let keypair = rcgen::KeyPair::from_pem(&key_b).unwrap();
    let renewed = (0..100)
        .map(|_| {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            params.not_after = rcgen::date_time_ymd(2032, 6, 1);
            params.self_signed(&keypair).unwrap().pem()
        })
        .find(|pem| pem.len() == cert_b.len())
        .expect("ECDSA signatures vary by a byte or two: one of 100 matches");
    write_keeping_mtime(&cert, &renewed);
    assert!(tls.check(), "renewal seen");
    assert_eq!(
        figures().not_after,
        Some(rcgen::date_time_ymd(2032, 6, 1).unix_timestamp())
    );
}
