//! The request a reverse proxy asks about on `/auth/forward`: its method, host and path.
//!
//! | proxy | method | host | path |
//! |---|---|---|---|
//! | Traefik ForwardAuth, Caddy `forward_auth` | `X-Forwarded-Method` | `X-Forwarded-Host` | `X-Forwarded-Uri` |
//! | nginx `auth_request` (as docs/integrations.md sets them) | `X-Original-Method` | from `X-Original-URL` | from `X-Original-URL` (or `X-Original-URI`) |
//! | Envoy HTTP ext_authz (`path_prefix: /auth/forward`) | the request's | `Host` | after `/auth/forward` |
//!
//! Believed only from a peer in `server.trusted_proxies`: anyone else could name any path.
//! From another peer, and for whatever a trusted proxy did not send, the part is unknown, and
//! a rule that needs an unknown part denies (see [`super::access`]).
//!
//! A client can add these headers too, and a proxy that sets one family does not remove the
//! other (nginx passes the client's `X-Forwarded-Uri` to its subrequest). Agreement is not
//! enough: nginx sets only some parts (`X-Original-URI` without a host, `X-Original-URL`
//! without `X-Original-Method`), and a client adding `X-Forwarded-Uri` equal to its own
//! target plus `X-Forwarded-Host`/`-Method` would name the parts nginx left unknown. So a
//! request carrying both the `X-Original-*` and the `X-Forwarded-{Uri,Method,Host}` families is
//! refused (no proxy we document sets both), and so is a header given twice.
//!
//! Hosts are parsed strictly (a DNS name, an IPv4 or bracketed IPv6 literal, an optional
//! numeric port): nginx accepts `?` and `#` in `Host`, and `X-Original-URL
//! $scheme://$http_host$request_uri` then reads `http://app.example.com?/admin`; cutting the
//! authority at the `?` would judge `/` while nginx serves `/admin`. Anything else in a host is
//! refused, never re-split.

use axum::http::{HeaderMap, Method, Uri};

/// What the proxy told of the original request; `None`: not told (or not believed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Original {
    /// Upper-case method.
    pub method: Option<String>,
    /// Host, as sent (port and case are dropped when matching).
    pub host: Option<String>,
    /// Request target: path and query, not yet normalised.
    pub target: Option<String>,
}

/// The proxy's headers contradict each other: answered 403 (never matched against a guess).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict;

/// The original request of a `/auth/forward` call from a peer `trusted` or not; `uri` and
/// `method` are the call's own.
pub fn original(
    headers: &HeaderMap,
    uri: &Uri,
    method: &Method,
    trusted: bool,
) -> Result<Original, Conflict> {
    if !trusted {
        return Ok(Original::default());
    }
    if mixes_families(headers) {
        return Err(Conflict);
    }
    let mut found = Original::default();
    if let Some(target) = one(headers, "x-forwarded-uri")? {
        merge(&mut found.target, target)?;
        merge_opt(&mut found.method, one(headers, "x-forwarded-method")?.map(upper))?;
        merge_opt(
            &mut found.host,
            one(headers, "x-forwarded-host")?.map(host).transpose()?,
        )?;
    }
    if let Some(url) = one(headers, "x-original-url")? {
        let (host, target) = split_url(&url).ok_or(Conflict)?;
        merge(&mut found.target, target)?;
        merge_opt(&mut found.host, host)?;
    }
    // Older nginx configurations send the path alone (`X-Original-URI $request_uri`).
    merge_opt(&mut found.target, one(headers, "x-original-uri")?)?;
    if found.target.is_some() {
        merge_opt(&mut found.method, one(headers, "x-original-method")?.map(upper))?;
    }
    if let Some(rest) = envoy_rest(uri) {
        merge(&mut found.target, rest)?;
        merge(&mut found.method, method.as_str().to_owned())?;
        merge_opt(&mut found.host, one(headers, "host")?.map(host).transpose()?)?;
    }
    Ok(found)
}

/// The path Envoy appended to `/auth/forward`, with the query.
fn envoy_rest(uri: &Uri) -> Option<String> {
    let rest = uri.path().strip_prefix("/auth/forward")?;
    if !rest.starts_with('/') {
        return None;
    }
    Some(match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    })
}

/// True when both the nginx (`X-Original-*`) and the Traefik/Caddy (`X-Forwarded-*`) family
/// are present: one of them is the client's (see the module docs).
fn mixes_families(headers: &HeaderMap) -> bool {
    let any = |names: &[&str]| names.iter().any(|n| headers.contains_key(*n));
    any(&["x-original-url", "x-original-uri", "x-original-method"])
        && any(&["x-forwarded-uri", "x-forwarded-method", "x-forwarded-host"])
}

/// `scheme://host[:port]/path?query` → (host, target); a bare target has no host. The
/// authority ends at the first `/` only and must be a valid host (see [`valid_host`]): a `?`
/// or `#` in it is refused, not taken as the start of the query.
pub fn split_url(url: &str) -> Option<(Option<String>, String)> {
    if url.starts_with('/') {
        return Some((None, url.to_owned()));
    }
    let (_, rest) = url.split_once("://")?;
    let at = rest.find('/').unwrap_or(rest.len());
    let (authority, target) = rest.split_at(at);
    if !valid_host(authority) {
        return None;
    }
    let target = if target.is_empty() { "/" } else { target };
    Some((Some(authority.to_owned()), target.to_owned()))
}

/// A host as told, checked with [`valid_host`]; anything else is a conflict.
fn host(value: String) -> Result<String, Conflict> {
    if valid_host(&value) {
        Ok(value)
    } else {
        Err(Conflict)
    }
}

/// `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`: letters, digits, `-` and `.` in a name,
/// an IPv6 literal that parses, a port of 1-5 digits. No user part, `?`, `#`, `%`, space.
pub fn valid_host(authority: &str) -> bool {
    let (name, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (
            "v6",
            after
                .strip_prefix(':')
                .map_or((!after.is_empty()).then_some(""), Some),
        )
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    port_ok && name_ok
}

/// The header's one value as text; absent → `None`, twice or not text → conflict.
fn one(headers: &HeaderMap, name: &str) -> Result<Option<String>, Conflict> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Conflict);
    }
    first
        .to_str()
        .map(|s| Some(s.trim().to_owned()))
        .map_err(|_| Conflict)
}

fn upper(s: String) -> String {
    s.to_ascii_uppercase()
}

fn merge(slot: &mut Option<String>, value: String) -> Result<(), Conflict> {
    match slot {
        Some(have) if *have != value => Err(Conflict),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn merge_opt(slot: &mut Option<String>, value: Option<String>) -> Result<(), Conflict> {
    value.map_or(Ok(()), |v| merge(slot, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pairs: &[(&str, &str)], uri: &str, trusted: bool) -> Result<Original, Conflict> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        original(&h, &uri.parse().expect("uri"), &Method::GET, trusted)
    }

    fn o(m: Option<&str>, h: Option<&str>, t: Option<&str>) -> Original {
        Original {
            method: m.map(Into::into),
            host: h.map(Into::into),
            target: t.map(Into::into),
        }
    }

    #[test]
    fn each_proxy_family_is_read() {
        let traefik = [
            ("x-forwarded-method", "post"),
            ("x-forwarded-host", "a.example.com"),
            ("x-forwarded-uri", "/x?y"),
        ];
        assert_eq!(
            call(&traefik, "/auth/forward", true),
            Ok(o(Some("POST"), Some("a.example.com"), Some("/x?y")))
        );
        let nginx = [
            ("x-original-url", "https://a.example.com:8443/admin?q"),
            ("x-original-method", "GET"),
        ];
        assert_eq!(
            call(&nginx, "/auth/forward", true),
            Ok(o(Some("GET"), Some("a.example.com:8443"), Some("/admin?q")))
        );
        let older = [("x-original-uri", "/admin?q"), ("x-original-method", "get")];
        assert_eq!(
            call(&older, "/auth/forward", true),
            Ok(o(Some("GET"), None, Some("/admin?q")))
        );
        let envoy = [("host", "a.example.com")];
        assert_eq!(
            call(&envoy, "/auth/forward/admin/%61?x=1", true),
            Ok(o(Some("GET"), Some("a.example.com"), Some("/admin/%61?x=1")))
        );
        assert_eq!(
            call(&[], "/auth/forward", true),
            Ok(Original::default()),
            "nothing told"
        );
    }

    #[test]
    fn an_untrusted_peer_tells_nothing() {
        let forged = [("x-forwarded-uri", "/public"), ("x-forwarded-method", "GET")];
        assert_eq!(
            call(&forged, "/auth/forward/public", false),
            Ok(Original::default())
        );
    }

    #[test]
    fn families_that_disagree_or_repeat_are_refused() {
        // nginx sets X-Original-URL; the client added X-Forwarded-Uri, which nginx passes on.
        let smuggled = [
            ("x-original-url", "https://a.example.com/admin"),
            ("x-forwarded-uri", "/public"),
        ];
        assert_eq!(call(&smuggled, "/auth/forward", true), Err(Conflict));
        let twice = [("x-forwarded-uri", "/public"), ("x-forwarded-uri", "/admin")];
        assert_eq!(call(&twice, "/auth/forward", true), Err(Conflict));
        // Even agreeing on the path: the other family would name what nginx left unknown.
        let agreeing = [
            ("x-original-uri", "/admin"),
            ("x-forwarded-uri", "/admin"),
            ("x-forwarded-host", "public.example.com"),
        ];
        assert_eq!(call(&agreeing, "/auth/forward", true), Err(Conflict));
        let method_only = [
            ("x-original-url", "http://h/admin"),
            ("x-forwarded-method", "GET"),
        ];
        assert_eq!(call(&method_only, "/auth/forward", true), Err(Conflict));
        assert_eq!(
            call(&[("x-original-url", "http://user@h/x")], "/auth/forward", true),
            Err(Conflict)
        );
        assert_eq!(
            call(&[("x-forwarded-uri", "/public")], "/auth/forward/admin", true),
            Err(Conflict)
        );
    }

    #[test]
    fn hosts_are_parsed_strictly_never_re_split() {
        for bad in [
            "http://app.example.com?/admin",
            "http://app.example.com#x?/admin",
            "http://app.example.com%3f/admin",
            "http://a b/admin",
            "http://h:/admin",
            "http://h:123456/admin",
            "http://[::1/admin",
            "http://[zz]/admin",
            "http://[::1]x/admin",
            "http:///admin",
        ] {
            assert_eq!(
                call(&[("x-original-url", bad)], "/auth/forward", true),
                Err(Conflict),
                "{bad}"
            );
        }
        for (good, host) in [
            ("http://[2001:db8::1]:8443/x", "[2001:db8::1]:8443"),
            ("http://10.0.0.1/x", "10.0.0.1"),
            ("http://h", "h"),
        ] {
            assert_eq!(
                call(&[("x-original-url", good)], "/auth/forward", true).map(|o| o.host),
                Ok(Some(host.to_owned())),
                "{good}"
            );
        }
        let traefik = [("x-forwarded-uri", "/x"), ("x-forwarded-host", "h?")];
        assert_eq!(call(&traefik, "/auth/forward", true), Err(Conflict));
        assert_eq!(call(&[("host", "h#")], "/auth/forward/x", true), Err(Conflict));
    }
}
