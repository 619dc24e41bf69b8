//! OAuth request bodies: `application/x-www-form-urlencoded` only (RFC 6749 §3.2), every
//! parameter at most once (§3.1: "Request and response parameters MUST NOT be included more
//! than once"), a parameter with an empty value treated as omitted (§3.1).

use std::collections::BTreeMap;

/// A parsed form: name → value.
#[derive(Default)]
pub struct Form(BTreeMap<String, String>);

impl std::fmt::Debug for Form {
    // Values hold secrets and assertions: only the names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a body is no form we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// A parameter appears twice.
    Duplicate,
    /// Not UTF-8 after decoding.
    Encoding,
}

impl Form {
    /// Parses `body`.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            // form_urlencoded replaces invalid UTF-8 with U+FFFD; such input is refused.
            if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                return Err(FormError::Encoding);
            }
            if map.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(FormError::Duplicate);
            }
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self(map))
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Form-urldecodes one component of a `client_secret_basic` header (RFC 6749 §2.3.1: the id
/// and secret are form-urlencoded before Basic encoding; `+` is a space, `%2B` a plus).
pub fn urldecode(s: &str) -> Option<String> {
    // Parsed as the value of a one-pair form: `=` and `&` would split it, so they are escaped
    // first (a literal `&` or `=` is legal in an unencoded component).
    let escaped = s.replace('&', "%26").replace('=', "%3D");
    let pair = format!("v={escaped}");
    let (_, v) = form_urlencoded::parse(pair.as_bytes()).next()?;
    (!v.contains('\u{FFFD}')).then(|| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_empty_values_omitted() {
        assert_eq!(Form::parse(b"a=1&a=2").err(), Some(FormError::Duplicate));
        assert_eq!(Form::parse(b"a=1&a=").err(), Some(FormError::Duplicate));
        let f = Form::parse(b"grant_type=client_credentials&scope=&x=%2B+").unwrap();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), None);
        assert_eq!(f.get("x"), Some("+ "));
        assert_eq!(Form::parse(b"a=%FF").err(), Some(FormError::Encoding));
    }

    #[test]
    fn basic_components_are_form_urldecoded() {
        assert_eq!(urldecode("a%3Ab%25c%2Bd+e").as_deref(), Some("a:b%c+d e"));
        assert_eq!(urldecode("x&y=z").as_deref(), Some("x&y=z"));
        assert_eq!(urldecode("%zz").as_deref(), Some("%zz"));
    }
}
