//! Raw HTTP/1.1 on a keep-alive connection, for tests that write requests byte by byte (odd
//! methods, headers and targets a client library would refuse or normalise).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A connection to `addr` whose reads give up after `timeout`.
pub fn connect(addr: &str, timeout: Duration) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    BufReader::new(stream)
}

/// One exchange: writes `request` as it is and reads the answer's status and body (by its
/// `Content-Length`). None when the connection fails or closes first.
pub fn exchange(reader: &mut BufReader<TcpStream>, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    reader.get_mut().write_all(request).ok()?;
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    let code = status.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((code, body))
}
