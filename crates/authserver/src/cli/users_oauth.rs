//! `authserver users oauth USER ...`: makes an existing user entry an OAuth 2.0 client (issue
//! 14), changes its registration, or (`--clear`) makes it a plain user again, in the users file
//! (the same locked atomic edit as `users add`) or, with `--table`, in the DynamoDB users table
//! (one conditional `UpdateItem` of the `oauth` attribute, then the version bump).
//!
//! The object is built from the options and checked exactly as the store checks it on load
//! (`OAuthClient::validate`), plus what only an editor can catch: no scope at all, and private
//! key members in the JWK set (a JWKS of a client holds its *public* keys; a pasted private key
//! would be kept in the users store). Any refusal leaves the file or table untouched.

use anyhow::{Context, bail};
use authserver_core::oauth::jwk::{PUBLIC_MEMBERS, is_public_only};
use authserver_core::oauth::{AuthMethod, OAuthClient};
use clap::Args;
use std::path::{Path, PathBuf};

/// `users oauth` options.
#[derive(Debug, Args)]
pub struct OAuthArgs {
    /// Users file (with --table: the username).
    pub file: PathBuf,
    /// Username of the entry (it must exist: `users add` first; its password is the client
    /// secret).
    pub username: Option<String>,
    /// Scopes the client may ask for (comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "clear")]
    pub scopes: Vec<String>,
    /// Audiences (`resource`) beyond the deployment's default it may get tokens for
    /// (comma-separated URLs).
    #[arg(long, value_delimiter = ',')]
    pub audiences: Vec<String>,
    /// Scopes granted when a request names none (comma-separated; a subset of --scopes).
    #[arg(long, value_delimiter = ',')]
    pub default_scopes: Vec<String>,
    /// How the client authenticates at the token endpoint.
    #[arg(long, value_parser = parse_method, default_value = "client_secret_basic")]
    pub method: AuthMethod,
    /// The client's public JWK set (`{"keys": [...]}`), for `private_key_jwt`.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// Remove the `oauth` object: the entry is a plain user again (its tokens stop passing at
    /// the next store reload).
    #[arg(long, conflicts_with_all = ["scopes", "audiences", "default_scopes", "jwks"])]
    pub clear: bool,
}

fn parse_method(s: &str) -> Result<AuthMethod, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        format!("unknown method {s:?}: client_secret_basic, client_secret_post or private_key_jwt")
    })
}

/// Longest JWK set file read.
const MAX_JWKS_BYTES: u64 = 64 * 1024;

impl OAuthArgs {
    /// The object the options describe (`None` with `--clear`), checked as the store checks it.
    pub fn client(&self) -> anyhow::Result<Option<OAuthClient>> {
        if self.clear {
            return Ok(None);
        }
        if self.scopes.is_empty() || self.scopes.iter().all(String::is_empty) {
            bail!("--scopes: give at least one scope");
        }
        let jwks = self.jwks.as_deref().map(read_jwks).transpose()?;
        let client = OAuthClient {
            scopes: self.scopes.clone(),
            audiences: self.audiences.clone(),
            default_scopes: self.default_scopes.clone(),
            token_endpoint_auth_method: self.method,
            jwks,
        };
        client
            .validate()
            .map_err(|p| anyhow::anyhow!("refused (nothing written): {p}"))?;
        Ok(Some(client))
    }
}

/// The JWK set at `path`: JSON `{"keys": [...]}` of public keys only.
fn read_jwks(path: &Path) -> anyhow::Result<serde_json::Value> {
    let (bytes, _) = crate::files::read_regular(path, MAX_JWKS_BYTES)
        .map_err(|e| anyhow::anyhow!("--jwks {}: {e}", path.display()))?;
    // serde's message may quote the file's text (a private key pasted by mistake): not passed on.
    let jwks: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| anyhow::anyhow!("--jwks {}: not JSON", path.display()))?;
    let keys = jwks
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .with_context(|| format!("--jwks {}: not a JWK set ({{\"keys\": [...]}})", path.display()))?;
    if jwks.as_object().is_some_and(|o| o.len() != 1) {
        bail!("--jwks {}: a JWK set holds only \"keys\"", path.display());
    }
    // An allowlist of public members, not a list of private ones: a PEM string, an RSA key's
    // `oth` or a private JWK nested in any member would otherwise be kept in the users store.
    if let Some(i) = keys.iter().position(|k| !is_public_only(k)) {
        bail!(
            "--jwks {}: key #{} may hold private key material (a client key is an object of {} only); give the client's public keys only",
            path.display(),
            i + 1,
            PUBLIC_MEMBERS.join(" ")
        );
    }
    Ok(jwks)
}

/// `users oauth` on a users file.
pub fn run_file(file: &Path, username: &str, args: &OAuthArgs) -> anyhow::Result<()> {
    use crate::store::file::edit::{self, Missing};
    let client = args.client()?;
    let cleared = client.is_none();
    edit::edit(file, Missing::Fail, |doc| {
        let Some(rec) = doc.get_mut(username) else {
            bail!("no user {username:?} in {} (users add first)", file.display());
        };
        rec.oauth = client;
        Ok(())
    })?;
    eprintln!("{}", done(username, cleared));
    Ok(())
}

/// What a successful `users oauth` says.
pub fn done(username: &str, cleared: bool) -> String {
    if cleared {
        format!("user {username:?} is no longer an OAuth client")
    } else {
        format!("user {username:?} is an OAuth client")
    }
}

/// The `users list` column: the client's method, or `-` for a plain user.
pub fn column(client: Option<&OAuthClient>) -> &'static str {
    client.map_or("-", |c| c.token_endpoint_auth_method.as_str())
}
