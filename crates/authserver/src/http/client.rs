//! Who the client is: the socket peer, unless the peer is a trusted proxy, in which case
//! `X-Forwarded-For` is read right to left past trusted hops. Never the left-most entry, which
//! any client can write.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `"10.0.0.0/8"` or `"10.1.2.3"` (a single address is a /32 or /128).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Trusted proxy networks, parsed once.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From settings (entries were validated at start-up; invalid ones are skipped).
    pub fn new(entries: &[String]) -> Self {
        Self(entries.iter().filter_map(|e| parse_net(e)).collect())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break, // garbage: stop at the last trustworthy address
            }
        }
        client
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

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn reads_right_to_left_past_trusted_hops_only() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into(), "192.168.1.1".into()]);
        assert_eq!(
            t.client(ip("203.0.113.9"), &headers(&["1.2.3.4"])),
            ip("203.0.113.9"),
            "untrusted peer"
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), &headers(&["6.6.6.6, 198.51.100.7"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            t.client(
                ip("10.0.0.5"),
                &headers(&["6.6.6.6", "198.51.100.7, 192.168.1.1"])
            ),
            ip("198.51.100.7")
        );
        assert_eq!(t.client(ip("10.0.0.5"), &headers(&[])), ip("10.0.0.5"));
        assert_eq!(
            t.client(ip("10.0.0.5"), &headers(&["6.6.6.6, junk"])),
            ip("10.0.0.5")
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), &headers(&["10.1.1.1"])),
            ip("10.1.1.1"),
            "all trusted: left-most seen"
        );
        assert!(parse_net("nope").is_none() && parse_net("::1").is_some());
    }
}
