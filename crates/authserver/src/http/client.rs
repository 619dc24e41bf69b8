//! Who the client is: the socket peer, unless the peer is a trusted proxy, in which case
//! `X-Forwarded-For` is read right to left past trusted hops. Never the left-most entry, which
//! any client can write.
//!
//! The trusted networks are a setting ([`crate::config::TrustedProxies`], parsed on load); how a
//! request's client is read past them lives here, with the rest of the HTTP edge.

pub use crate::config::TrustedProxies;
use axum::http::HeaderMap;
use std::net::IpAddr;

/// Parses one `X-Forwarded-For` hop (or a Lambda event's `sourceIp`) as proxies write it:
/// `198.51.100.7`, `198.51.100.7:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`,
/// optionally quoted. IPv4-mapped IPv6 is made plain IPv4.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

impl TrustedProxies {
    /// The client address for a request from `peer` with `headers`; `None` when a trusted proxy
    /// forwarded a hop that cannot be read (then the client is unknown: never the proxy, which
    /// would make one attacker's failures ban everyone behind it).
    ///
    /// A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`: addresses are canonicalised
    /// before they are compared with `trusted_proxies` or used as a source.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        // Split as bytes, not text: a proxy appends its peer to whatever the client sent, in the
        // same value, so a client's non-ASCII junk must not make the hops right of it unreadable
        // (the client would then be unknown and escape source regulation). Only a hop the walk
        // actually reaches has to be readable.
        let values = headers.get_all("x-forwarded-for");
        for hop in values
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .rev()
        {
            client = std::str::from_utf8(hop).ok().and_then(parse_hop)?;
            if !self.trusts(client) {
                break;
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    fn proxies(list: &str) -> TrustedProxies {
        list.parse().expect("valid networks")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn reads_right_to_left_past_trusted_hops_only() {
        let t = proxies("10.0.0.0/8, 192.168.1.1");
        let client = |peer: &str, xff: &[&str]| t.client(ip(peer), &headers(xff));
        assert_eq!(
            client("203.0.113.9", &["1.2.3.4"]),
            Some(ip("203.0.113.9")),
            "untrusted peer"
        );
        assert_eq!(
            client("10.0.0.5", &["6.6.6.6, 198.51.100.7"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client("10.0.0.5", &["6.6.6.6", "198.51.100.7, 192.168.1.1"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(client("10.0.0.5", &[]), Some(ip("10.0.0.5")));
        assert_eq!(
            client("10.0.0.5", &["10.1.1.1"]),
            Some(ip("10.1.1.1")),
            "all trusted: left-most seen"
        );
    }

    #[test]
    fn an_unreadable_hop_is_never_attributed_to_the_proxy() {
        let t = proxies("10.0.0.0/8");
        assert_eq!(t.client(ip("10.0.0.5"), &headers(&["6.6.6.6, junk"])), None);
        assert_eq!(t.client(ip("10.0.0.5"), &headers(&["unknown"])), None);
        assert_eq!(
            t.client(ip("10.0.0.5"), &headers(&["junk, 198.51.100.7"])),
            Some(ip("198.51.100.7")),
            "garbage beyond the first untrusted hop does not matter"
        );
        let mut bytes = HeaderMap::new();
        bytes.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff, 198.51.100.7").expect("obs-text"),
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), &bytes),
            Some(ip("198.51.100.7")),
            "nor non-ASCII bytes there"
        );
    }

    #[test]
    fn hops_with_ports_and_brackets_parse() {
        let t = proxies("10.0.0.0/8");
        for (hop, want) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            (" 2001:db8::1 ", "2001:db8::1"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            assert_eq!(
                t.client(ip("10.0.0.5"), &headers(&[hop])),
                Some(ip(want)),
                "{hop}"
            );
        }
        for bad in [
            "[2001:db8::1",
            "[2001:db8::1]x",
            "198.51.100.7:",
            "198.51.100.7:http",
            "2001:db8::1:99999x",
        ] {
            assert_eq!(parse_hop(bad), None, "{bad}");
        }
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_trusted_proxies() {
        let t = proxies("10.0.0.0/8");
        assert_eq!(
            t.client(ip("::ffff:10.0.0.5"), &headers(&["198.51.100.7"])),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            t.client(ip("::ffff:203.0.113.9"), &headers(&[])),
            Some(ip("203.0.113.9"))
        );
    }
}
