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
#[inline]
pub(super) fn label(line: &mut Vec<u8>, s: &'static str) {
    trusted(line, s);
}

/// A JSON string of text the caller knows needs no escape (see [`super::access::Access::trusted`]:
/// generated or filtered request ids, parsed methods, route templates, hex hashes), without
/// looking: the escape scan was the largest part of the line's instructions. (Debug builds
/// check the record before the line is written: this runs under the output's lock, where a
/// panic would reach the panic hook's own log line.)
#[inline]
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

/// An HTTP status: three digits (`http` keeps every status in 100..=999), without the general
/// loop; anything else (never, with `http`'s type) as [`number`] writes it.
pub(super) fn status(line: &mut Vec<u8>, s: u16) {
    if (100..1000).contains(&s) {
        // Each `as u8` below is of a single decimal digit.
        line.extend_from_slice(&[
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
        ]);
    } else {
        number(line, u64::from(s));
    }
}

/// Each octet's decimal text, left-aligned in three bytes, and its length: an IPv4 address is
/// four lookups (four calls of [`number`] were ~150 instructions a line).
const OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        // Each `as u8` below is of a value below 256 (`n`) or a single decimal digit.
        table[n] = if n < 10 {
            ([b'0' + n as u8, 0, 0], 1)
        } else if n < 100 {
            ([b'0' + (n / 10) as u8, b'0' + (n % 10) as u8, 0], 2)
        } else {
            (
                [
                    b'0' + (n / 100) as u8,
                    b'0' + (n / 10 % 10) as u8,
                    b'0' + (n % 10) as u8,
                ],
                3,
            )
        };
        n += 1;
    }
    table
};

/// An address as a string: IPv4 dotted, assembled on the stack from [`OCTETS`] and appended in
/// one copy (every line of a request with a client); IPv6 in its `Display` form (hex digits,
/// colons and dots: nothing to escape).
pub(super) fn address(line: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // `"255.255.255.255"` is 17 bytes. Each octet's copy writes 3 (a shorter octet's
            // spare ones are overwritten next or left out): the last ends at byte 15 at most.
            let mut text = [0u8; 17];
            text[0] = b'"';
            let mut at = 1;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[at] = b'.';
                    at += 1;
                }
                let (digits, len) = OCTETS[usize::from(octet)];
                text[at..at + 3].copy_from_slice(&digits);
                at += usize::from(len);
            }
            text[at] = b'"';
            line.extend_from_slice(&text[..=at]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            line.push(b'"');
            // Writing into a Vec cannot fail.
            let _ = write!(line, "{v6}");
            line.push(b'"');
        }
    }
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
    fn statuses_and_addresses_are_their_decimal_text() {
        for s in [0, 7, 99, 100, 200, 404, 499, 999, 1000, u16::MAX] {
            let mut line = Vec::new();
            status(&mut line, s);
            assert_eq!(line, s.to_string().as_bytes());
        }
        let mut addresses: Vec<IpAddr> = (0..=255u8)
            .map(|n| IpAddr::from([n, 255 - n, n / 10, n % 10]))
            .collect();
        addresses.extend([
            IpAddr::from([255; 4]),
            IpAddr::from([0; 4]),
            "2001:db8::ff00:42:8329".parse().unwrap(),
            "::ffff:192.0.2.1".parse().unwrap(),
        ]);
        for ip in addresses {
            let mut line = b"x".to_vec();
            address(&mut line, ip);
            assert_eq!(line, format!("x\"{ip}\"").as_bytes());
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
