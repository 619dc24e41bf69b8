//! Who may pass an `allow` rule: the [`Subject`] and the [`Identity`] it is checked against.

use super::Require;
use std::sync::Arc;

/// Who is asking, once authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The username (or OAuth client / subject).
    pub user: String,
    /// Roles (groups).
    pub roles: Arc<[String]>,
    /// OAuth scopes: empty for Basic users; bearer tokens fill it.
    pub scopes: Arc<[String]>,
}

/// The subject of an `allow` rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub(super) users: Vec<String>,
    pub(super) roles: Vec<String>,
    pub(super) scopes: Vec<String>,
    pub(super) require: Require,
}

impl Subject {
    /// Any authenticated identity (the default policy `authenticated`).
    pub fn anyone() -> Self {
        Self::default()
    }

    /// Whether `who` satisfies this subject. An empty subject is anyone authenticated.
    pub fn permits(&self, who: &Identity) -> bool {
        let user = || self.users.contains(&who.user);
        let role = |r: &String| who.roles.contains(r);
        let scope = |s: &String| who.scopes.contains(s);
        match self.require {
            _ if self.users.is_empty() && self.roles.is_empty() && self.scopes.is_empty() => true,
            Require::Any => user() || self.roles.iter().any(role) || self.scopes.iter().any(scope),
            Require::All => {
                (self.users.is_empty() || user())
                    && self.roles.iter().all(role)
                    && self.scopes.iter().all(scope)
            }
        }
    }

    /// The roles named.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
}
