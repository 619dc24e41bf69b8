//! JSON values written straight into a line buffer, for the access line ([`super::access`]):
//! every request writes one, and `serde_json`'s general serialiser (a byte-by-byte escape scan
//! of every string, `fmt` for addresses) was most of the line's cost. The bytes are the ones
//! `serde_json` writes: strings that need an escape go through it; durations are milliseconds with
//! three decimals.

use std::net::IpAddr;

/// Whether JSON needs an escape anywhere in `bytes` (`"`, `\` or a control character), tested
/// eight bytes at a time (the per-byte test was the line's largest cost). Exact for the
/// question asked; a false "yes" would only send the string through `serde_json`.
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Some byte of `x` is below `n` (n <= 0x80): the classic bit trick, no branch per byte.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let special = |eight: [u8; 8]| {
        let x = u64::from_le_bytes(eight);
        below(x, 0x20) || below(x ^ (ONES * u64::from(b'"')), 1) || below(x ^ (ONES * u64::from(b'\\')), 1)
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        if special(eight) {
            return true;
        }
    }
    // The last 0-7 bytes as one more word, padded with spaces (which need no escape): a loop
    // over them cost more than the words before it for the line's short values.
    let rest = words.remainder();
    let mut eight = [b' '; 8];
    eight[..rest.len()].copy_from_slice(rest);
    special(eight)
}

/// A JSON string: as it is when nothing in it needs an escape (ids, labels, hex hashes and route
/// templates never do), else escaped by `serde_json`.
pub(super) fn string(line: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *line, s);
    } else {
        line.push(b'"');
        line.extend_from_slice(s.as_bytes());
        line.push(b'"');
    }
}

/// A JSON string of one of the program's own labels (outcomes, reasons, cache uses: `'static`
/// text written in this code base, never a caller's), without looking for escapes (debug
/// builds check them with the trusted text, before the output's lock).
pub(super) fn label(line: &mut Vec<u8>, s: &'static str) {
    trusted(line, s);
}

/// A JSON string of text the caller knows needs no escape (see [`super::access::Access::trusted`]:
/// generated or filtered request ids, parsed methods, route templates, hex hashes), without
/// looking: the escape scan was the largest part of the line's instructions. (Debug builds
/// check the record before the line is written: this runs under the output's lock, where a
/// panic would reach the panic hook's own log line.)
pub(super) fn trusted(line: &mut Vec<u8>, s: &str) {
    line.push(b'"');
    line.extend_from_slice(s.as_bytes());
    line.push(b'"');
}

/// A duration in milliseconds with three decimals (microsecond resolution): `0.042`,
/// `131.250`. Integer arithmetic only (a float's shortest form cost ~150 instructions a line
/// and wrote up to 20 digits, `0.058625000000000003`).
pub(super) fn millis(line: &mut Vec<u8>, d: std::time::Duration) {
    let micros = d.as_micros();
    // Only a duration of over 584 million years does not fit; it is written as the largest.
    number(line, u64::try_from(micros / 1000).unwrap_or(u64::MAX));
    // `micros % 1000` is below 1000: each `as u8` below is of a single decimal digit.
    let frac = (micros % 1000) as u16;
    line.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// An unsigned integer in decimal.
pub(super) fn number(line: &mut Vec<u8>, mut n: u64) {
    // Statuses and address octets: three digits at most, written without a loop or a copy call.
    // Each `as u8` below is of a single decimal digit.
    if n < 10 {
        line.push(b'0' + n as u8);
        return;
    }
    if n < 100 {
        line.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    if n < 1000 {
        line.extend_from_slice(&[
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ]);
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is a single decimal digit.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[at..]);
}

/// An address as a string: IPv4 dotted without `fmt` (every line of a request with a client),
/// IPv6 in its `Display` form (hex digits, colons and dots: nothing to escape).
pub(super) fn address(line: &mut Vec<u8>, ip: IpAddr) {
    line.push(b'"');
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push(b'.');
                }
                number(line, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writing into a Vec cannot fail.
            let _ = write!(line, "{v6}");
        }
    }
    line.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_decimal_digits() {
        for n in (0..2000).chain([9999, 10_000, 65_535, u64::from(u32::MAX), u64::MAX]) {
            let mut line = Vec::new();
            number(&mut line, n);
            assert_eq!(line, n.to_string().as_bytes());
        }
    }

    #[test]
    fn needs_escape_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            let plain = "a\u{e9}-_.:;=/{*}".repeat(3);
            let plain = &plain.as_bytes()[..len];
            assert!(!needs_escape(plain), "{plain:?}");
            for at in 0..len {
                for special in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut bytes = plain.to_vec();
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{bytes:?}");
                }
            }
        }
        assert!(!needs_escape(&[
            0x20, 0x7f, 0x80, 0xff, 0x21, 0x23, 0x5b, 0x5d, 0x7e
        ]));
    }
}
