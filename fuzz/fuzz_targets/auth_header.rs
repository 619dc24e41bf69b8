//! `Authorization` header parser: never panics on any bytes, and whatever it accepts obeys the
//! documented limits and round-trips through `to_header_value` unchanged.
#![no_main]

use authserver_core::credentials::{MAX_HEADER_BYTES, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES};
use authserver_core::{Credentials, Malformed, ParseError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Credentials::parse(data);
    if data.len() > MAX_HEADER_BYTES {
        // Over-long input is refused before anything else looks at it.
        assert!(parsed == Err(ParseError::Malformed(Malformed::TooLong)));
        return;
    }
    let Ok(creds) = parsed else { return };
    let (user, pass) = (creds.username(), creds.password().expose());
    assert!(!user.is_empty() && user.len() <= MAX_USERNAME_BYTES);
    assert!(pass.len() <= MAX_PASSWORD_BYTES);
    assert!(!user.contains(':'), "the split is at the first colon");
    assert!(!user.chars().chain(pass.chars()).any(char::is_control));

    // Round trip: the header we would send for these credentials parses back to them.
    let header = creds.to_header_value();
    let again = Credentials::parse(header.expose().as_bytes()).expect("own header parses");
    assert!(again == creds, "round trip changed the credentials");
    // And `Credentials::new` agrees with the parser about what is valid.
    assert!(Credentials::new(user, pass).is_ok_and(|c| c == creds));

    // Debug is independent of the content: nothing of the input can leak through it.
    assert_eq!(
        format!("{creds:?}"),
        r#"Credentials { username: "REDACTED", password: REDACTED }"#
    );
});
