//! Network settings that parse on load: trusted proxy networks, header names and the admin
//! listener's address. Each parses from the text a file or variable holds and serialises back
//! to text, so the environment engine sees them as the strings (or string lists) they are.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Parses `"10.0.0.0/8"` or `"10.1.2.3"` (a single address is a /32 or /128).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `server.trusted_proxies`: networks whose `X-Forwarded-For` is believed, parsed once at load.
/// How a client address is read past them is `crate::http::client`'s business.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Why an entry was refused.
    pub const INVALID: &'static str = "each entry must be an IP address or CIDR";

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// True when no proxy is trusted (the socket peer is always the client).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for TrustedProxies {
    type Error = &'static str;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        entries
            .iter()
            .map(|e| parse_net(e).ok_or(Self::INVALID))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// A comma-separated list, as the environment variable spells it.
impl FromStr for TrustedProxies {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entries = text.split(',').map(str::trim).filter(|e| !e.is_empty());
        Self::try_from(entries.map(str::to_owned).collect::<Vec<_>>())
    }
}

impl From<TrustedProxies> for Vec<String> {
    fn from(proxies: TrustedProxies) -> Self {
        proxies.0.iter().map(IpNet::to_string).collect()
    }
}

/// A header name setting that must be set (`server.forward_user_header`, ...).
///
/// It dereferences to the name's text (lower case, as HTTP/2 and hyper write it), so code that
/// looks headers up by `&str` reads it as it read the string it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeaderSetting(http::HeaderName);

impl HeaderSetting {
    /// Why a name was refused.
    pub const INVALID: &'static str = "not a valid HTTP header name";

    /// The parsed name.
    pub fn name(&self) -> &http::HeaderName {
        &self.0
    }

    /// A name written in the code (defaults). `HeaderName::from_static` panics on an invalid
    /// or upper-case name, which a literal here is not: the defaults' test would fail first.
    pub fn from_static(name: &'static str) -> Self {
        Self(http::HeaderName::from_static(name))
    }
}

impl FromStr for HeaderSetting {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        http::HeaderName::try_from(text)
            .map(Self)
            .map_err(|_| Self::INVALID)
    }
}

impl TryFrom<String> for HeaderSetting {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<HeaderSetting> for String {
    fn from(header: HeaderSetting) -> Self {
        header.0.as_str().to_owned()
    }
}

impl std::ops::Deref for HeaderSetting {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

/// A header name setting where empty means none (`telemetry.country_header`). Dereferences to
/// the name's text, `""` when none, like the string it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OptionalHeader(Option<HeaderSetting>);

impl OptionalHeader {
    /// The parsed name, when one is set.
    pub fn name(&self) -> Option<&http::HeaderName> {
        self.0.as_ref().map(HeaderSetting::name)
    }
}

impl FromStr for OptionalHeader {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "" => Ok(Self(None)),
            name => name.parse().map(|h| Self(Some(h))),
        }
    }
}

impl TryFrom<String> for OptionalHeader {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<OptionalHeader> for String {
    fn from(header: OptionalHeader) -> Self {
        header.0.map(String::from).unwrap_or_default()
    }
}

impl std::ops::Deref for OptionalHeader {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}

/// `admin.listen` and `server.grpc_listen`: a socket address, or none when the setting is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdminListen(Option<SocketAddr>);

impl AdminListen {
    /// Why an address was refused.
    pub const INVALID: &'static str = "not a socket address (empty: no listener)";

    /// Listens on `addr`.
    pub fn at(addr: SocketAddr) -> Self {
        Self(Some(addr))
    }

    /// No admin listener.
    pub fn none() -> Self {
        Self(None)
    }

    /// The address, if there is a listener.
    pub fn addr(self) -> Option<SocketAddr> {
        self.0
    }
}

impl FromStr for AdminListen {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "" => Ok(Self(None)),
            addr => addr.parse().map(Self::at).map_err(|_| Self::INVALID),
        }
    }
}

impl TryFrom<String> for AdminListen {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<AdminListen> for String {
    fn from(listen: AdminListen) -> Self {
        listen.0.map(|a| a.to_string()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_bad_entries_are_refused() {
        assert!(parse_net("nope").is_none() && parse_net("::1").is_some());
        let t: TrustedProxies = "10.0.0.0/8, 192.168.1.1".parse().expect("valid");
        assert!(t.trusts("10.9.9.9".parse().expect("ip")) && t.trusts("192.168.1.1".parse().expect("ip")));
        assert!(!t.trusts("192.168.1.2".parse().expect("ip")));
        assert_eq!(Vec::<String>::from(t), ["10.0.0.0/8", "192.168.1.1/32"]);
        assert_eq!(
            "10.0.0.0/8, junk".parse::<TrustedProxies>(),
            Err(TrustedProxies::INVALID)
        );
    }

    #[test]
    fn header_names_and_admin_addresses_parse_with_empty_meaning_none() {
        let h: HeaderSetting = "Remote-User".parse().expect("valid");
        assert_eq!(&*h, "remote-user");
        assert_eq!("bad header".parse::<HeaderSetting>(), Err(HeaderSetting::INVALID));
        assert_eq!("".parse::<HeaderSetting>(), Err(HeaderSetting::INVALID));
        let none: OptionalHeader = "".parse().expect("empty");
        assert!(none.name().is_none() && none.is_empty());
        assert_eq!(
            &*"CloudFront-Viewer-Country"
                .parse::<OptionalHeader>()
                .expect("valid"),
            "cloudfront-viewer-country"
        );
        assert_eq!("".parse::<AdminListen>().expect("empty").addr(), None);
        assert_eq!(
            String::from("127.0.0.1:9090".parse::<AdminListen>().expect("addr")),
            "127.0.0.1:9090"
        );
        assert_eq!("localhost".parse::<AdminListen>(), Err(AdminListen::INVALID));
    }
}
