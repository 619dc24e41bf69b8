//! The audit port: a separate stream of security-relevant events (every authentication attempt,
//! every request to an OAuth endpoint, bans, store changes, administrative actions). Events
//! carry `user_hash`, never usernames, passwords or hashes; the one name they may carry is a
//! registered OAuth client's id ([`OAuthRequest::client_id`]), a public identifier (RFC 6749
//! §2.2), never one merely presented.

use serde::Serialize;

/// One audit event. Serialised with an `event` tag, e.g. `{"event":"auth_attempt",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// An authentication attempt and its outcome.
    AuthAttempt {
        /// `allowed` or `denied`.
        outcome: &'static str,
        /// Denial reason label.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
        /// Keyed username hash, when credentials were presented.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_hash: Option<String>,
        /// Client address, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Request id.
        request_id: String,
        /// X-Ray or W3C trace id, when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        trace_id: Option<String>,
        /// The access rule that decided, when rules are configured (`/auth/forward`).
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    /// An access rule decided a forward-auth request (`rules.file`) that read no credentials
    /// (`bypass`, or `deny` before any): which rule, and whether it let the request through.
    /// When credentials were checked, the rule is the `rule` field of `auth_attempt` instead
    /// (one record per auth request).
    AccessDecision {
        /// The rule's name (`default`, `invalid_request` for the reserved labels).
        rule: String,
        /// `allowed` or `denied`.
        outcome: &'static str,
        /// Client address, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Request id.
        request_id: String,
    },
    /// A request to `POST /oauth/token`: a token issued, or refused and why.
    OauthToken(OAuthRequest),
    /// A request to `POST /oauth/introspect`.
    OauthIntrospect(OAuthRequest),
    /// A request to `POST /oauth/revoke`.
    OauthRevoke(OAuthRequest),
    /// Brute-force regulation banned a source address or a username.
    Ban {
        /// `source` or `user`.
        scope: &'static str,
        /// The address, or the `user_hash`.
        key: String,
        /// Ban length in seconds.
        seconds: u64,
        /// Failures that triggered it.
        failures: u64,
    },
    /// A ban ended (expired or lifted).
    Unban {
        /// `source` or `user`.
        scope: &'static str,
        /// The address, or the `user_hash`.
        key: String,
    },
    /// The regulation backend failed; regulation failed open.
    RegulationBackendError {
        /// What failed (no secret material).
        error: String,
    },
    /// A new credential snapshot went into service.
    StoreVersionChanged {
        /// `file` or `secrets_manager`.
        store: &'static str,
        /// Version replaced, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
        /// Version now in service.
        version: String,
        /// Users in it.
        users: usize,
    },
    /// A store load failed; the last good snapshot stays.
    StoreReloadFailed {
        /// `file` or `secrets_manager`.
        store: &'static str,
        /// Safe error text.
        error: String,
    },
    /// An operator changed credentials or configuration through the CLI.
    AdminAction {
        /// e.g. `users.add`, `users.disable`, `secret.push`.
        action: String,
        /// `user_hash` of the user concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_user_hash: Option<String>,
        /// File or secret id acted on.
        resource: String,
        /// The acting OS user.
        actor: String,
    },
}

/// One request to an OAuth endpoint (the `oauth_token`, `oauth_introspect` and `oauth_revoke`
/// events). Never the secret, the assertion, a token or the `Authorization` header; the `jti`
/// of an issued or revoked token is no secret (it names the token, it does not grant it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthRequest {
    /// `issued` (token), `answered` (introspection), `revoked` or `ignored` (revocation: RFC
    /// 7009 answers 200 for unknown and foreign tokens too), or `refused`.
    pub outcome: &'static str,
    /// Why it was refused: the client-authentication label of
    /// `authserver_oauth_client_auth_failure_total`, else the RFC 6749 §5.2 error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The client id, only when it names a registered OAuth client (an id merely presented
    /// may be a typo or a secret pasted into the wrong field: it is `user_hash` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Keyed hash of the presented client id (joins `auth_attempt` and ban events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_hash: Option<String>,
    /// The client-authentication method presented (`client_secret_basic`,
    /// `client_secret_post`, `private_key_jwt`), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    /// Granted scopes, space-separated (tokens issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The token's audience (tokens issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The `jti` of the token issued or revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Whether the introspected token was active (introspection answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Client address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Request id.
    pub request_id: String,
    /// X-Ray or W3C trace id, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Where audit events go.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Records one event. Must not block the caller for long (file sinks write in the background).
    fn emit(&self, event: AuditEvent);

    /// Whether [`AuditSink::emit`] writes a line to stdout. A server's per-request access line
    /// is then that line too (one record, two consumers): the caller writes it with
    /// `"log_type":"audit"` and hands the event over with [`AuditSink::emit_streamed`].
    fn streams_to_stdout(&self) -> bool {
        false
    }

    /// Records an event whose stdout line the caller has written (`written`: whether that
    /// write succeeded): every sink but stdout. `event` is called only when a sink needs it, so
    /// a sink with nothing else to do costs no allocation.
    fn emit_streamed(&self, event: &dyn Fn() -> AuditEvent, written: bool) {
        let _ = written;
        self.emit(event());
    }
}

/// Discards events (tests, and stores built without an audit trail).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn emit(&self, _event: AuditEvent) {}
}
