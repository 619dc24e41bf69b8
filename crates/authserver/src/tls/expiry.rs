//! The certificate's `notAfter`, read by a minimal DER walk (no X.509 parser is in the
//! dependency tree, and this is the only field we need).
//!
//! RFC 5280: `Certificate ::= SEQUENCE { tbsCertificate, ... }`, `TBSCertificate ::= SEQUENCE {
//! [0] version OPTIONAL, serialNumber, signature, issuer, validity, ... }`, `Validity ::=
//! SEQUENCE { notBefore Time, notAfter Time }`, `Time ::= UTCTime | GeneralizedTime`.

use time::{Date, Month, PrimitiveDateTime, Time};

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// `notAfter` of a DER certificate as Unix seconds; `None` when the encoding is not understood.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = tlv(der, SEQUENCE)?;
    let (tbs, _) = tlv(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = skip(rest)?;
    }
    for _field in ["serialNumber", "signature", "issuer"] {
        rest = skip(rest)?;
    }
    let (validity, _) = tlv(rest, SEQUENCE)?;
    let after = skip(validity)?; // notBefore
    let tag = *after.first()?;
    let (text, _) = tlv(after, tag)?;
    parse_time(tag, std::str::from_utf8(text).ok()?)
}

/// The content of the element at the start of `input` if its tag is `tag`, and what follows.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None; // indefinite or absurd lengths are not DER certificates
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        (
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    rest.split_at_checked(len)
}

/// What follows the element at the start of `input`, whatever its tag.
fn skip(input: &[u8]) -> Option<&[u8]> {
    tlv(input, *input.first()?).map(|(_, rest)| rest)
}

/// `YYMMDDHHMMSSZ` (UTCTime, years 1950-2049) or `YYYYMMDDHHMMSSZ` (GeneralizedTime).
fn parse_time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |s: &str| s.parse::<u16>().ok();
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(&digits[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (num(&digits[..4])?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| num(&rest[i..i + 2]).and_then(|v| u8::try_from(v).ok());
    let date = Date::from_calendar_date(i32::from(year), Month::try_from(field(0)?).ok()?, field(2)?).ok()?;
    let time = Time::from_hms(field(4)?, field(6)?, field(8)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_after: time::OffsetDateTime) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_after = not_after;
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_not_after_in_both_time_encodings() {
        // rcgen writes UTCTime before 2050 and GeneralizedTime from 2050 on (RFC 5280).
        for (y, m, d) in [(2031, 5, 6), (2049, 12, 31), (2051, 1, 2)] {
            let when = rcgen::date_time_ymd(y, m, d);
            assert_eq!(not_after(&cert(when)), Some(when.unix_timestamp()), "{y}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let good = cert(rcgen::date_time_ymd(2031, 5, 6));
        for len in [0, 1, 10, good.len() / 2] {
            assert_eq!(not_after(&good[..len]), None, "truncated at {len}");
        }
        assert_eq!(not_after(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(parse_time(UTC_TIME, "991301000000Z"), None, "month 13");
        assert_eq!(parse_time(UTC_TIME, "490101000000Z"), Some(2493072000), "2049");
        assert_eq!(parse_time(UTC_TIME, "500101000000"), None, "no Z");
    }
}
