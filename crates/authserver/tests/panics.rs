//! A panic never prints its payload: the hook logs the location only.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::logs::Buffer;

#[test]
fn panic_payload_is_withheld() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = authserver::telemetry::subscriber(&Default::default(), move || writer.clone());
    authserver::telemetry::install_panic_hook();
    tracing::subscriber::with_default(subscriber, || {
        let secret = "Correct-Horse-Leaked-123";
        let result = std::panic::catch_unwind(|| panic!("oops: password was {secret}"));
        assert!(result.is_err());
    });
    let _ = std::panic::take_hook();
    let out = buf.text();
    assert!(
        out.contains("internal error (panic)") && out.contains("panics.rs"),
        "{out}"
    );
    assert!(
        !out.contains("Correct-Horse-Leaked-123") && !out.contains("oops"),
        "{out}"
    );
}
