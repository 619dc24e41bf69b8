//! `authserver keys generate|rotate|list|remove`: the standalone signing key set
//! (`oauth.keys_dir`, see `crate::oauth::keyset`). ES256 keys are generated here (ring, OS
//! CSPRNG); RS256 keys come from a PEM the operator made (`openssl genpkey -algorithm RSA
//! -pkeyopt rsa_keygen_bits:3072`): ring cannot generate RSA keys, and a second crypto
//! library for that alone is not worth it.
//!
//! Nothing here prints key material: only kids, algorithms and times.
//!
//! Every command that writes (`generate`, `rotate`, `remove`) first refuses a directory another
//! user could write and then holds the set's edit lock from its read of `keys.json` to its
//! rename (`crate::oauth::keyguard`): two at once queue instead of losing a key.

use crate::config::Settings;
use crate::oauth::keyguard;
use crate::oauth::keyset::{self, Scheduled};
use crate::oauth::signer::{KeyState, states, unix_now};
use anyhow::{Context, bail};
use authserver_core::oauth::Alg;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `keys` and its options.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Config file (TOML): `oauth.keys_dir`, the publish lead and the token lifetime.
    #[arg(long, env = "AUTHSERVER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The key set directory [default: oauth.keys_dir].
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The first key of an empty set; it signs at once (nothing was published before it).
    Generate(NewKey),
    /// A next key, published now and signing after `oauth.publish_lead_seconds`; the current
    /// key retires then and stays published until its last token expired.
    Rotate {
        /// The key.
        #[command(flatten)]
        key: NewKey,
        /// Sign with the new key at once (signing-key compromise: consumers that cached the
        /// JWKS reject the new tokens until they refetch it). Removes every pending (`next`)
        /// key first: written before the compromise, it would take over at its `signs_from`.
        #[arg(long)]
        immediate: bool,
    },
    /// Every key: kid, algorithm, state (next, active, retired, expired) and times.
    List,
    /// Removes a key from the set at once (compromise: its tokens stop validating within
    /// 30 s, the server's key reload). The active key is never removed: `keys rotate
    /// --immediate` first (it then is retired); removing it would put the newest older key,
    /// retired or expired and no longer in consumers' JWKS, back in service.
    Remove {
        /// The key id.
        kid: String,
    },
    /// Reads an AWS key set secret value (`{"keys": [{"activates_at", "private_key_pem"}]}`)
    /// on stdin and prints its public key set (`{"keys": [{"activates_at", "jwk"}]}`), the
    /// value of the `<name>-public` secret the Lambda authorizer reads (docs/deployment.md).
    /// Prints public JWKs only.
    PublicSet,
}

/// Where a new key comes from.
#[derive(Debug, Args)]
pub struct NewKey {
    /// Use this RSA private key (PKCS#8 or PKCS#1 PEM, >= 2048 bits) for RS256 instead of
    /// generating an ES256 key.
    #[arg(long)]
    pub rsa_pem: Option<PathBuf>,
}

/// Runs a `keys` command.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    if let KeysCommand::PublicSet = args.command {
        return public_set();
    }
    let settings = Settings::load(args.config.as_deref())?;
    let dir = args.dir.unwrap_or_else(|| settings.oauth.keys_dir.clone());
    if dir.as_os_str().is_empty() {
        bail!("no key set directory: pass --dir or set oauth.keys_dir");
    }
    let oauth = &settings.oauth;
    let retention = oauth.token_lifetime_seconds + oauth.skew_seconds;
    let now = unix_now();
    let _lock = match args.command {
        KeysCommand::List | KeysCommand::PublicSet => None,
        _ => Some(guard(&dir)?),
    };
    match args.command {
        KeysCommand::Generate(key) => {
            if !keyset::read_manifest(&dir)?.is_empty() {
                bail!("{} already has keys: use `keys rotate`", dir.display());
            }
            add(&dir, &key, now, now)
        }
        KeysCommand::Rotate { key, immediate } => {
            let from = if immediate {
                drop_pending(&dir, now)?;
                now
            } else {
                now + oauth.publish_lead_seconds
            };
            add(&dir, &key, now, from)
        }
        KeysCommand::List => {
            list(&keyset::read_manifest(&dir)?, now, retention);
            Ok(())
        }
        KeysCommand::Remove { kid } => remove(&dir, &kid, now),
        KeysCommand::PublicSet => public_set(),
    }
}

/// `keys public-set`: the private key set on stdin, its public half on stdout.
fn public_set() -> anyhow::Result<()> {
    use std::io::Read;
    let mut value = zeroize::Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut value)
        .context("reading the key set from stdin")?;
    println!("{}", authserver_aws::oauth::public_key::public_key_set(&value)?);
    Ok(())
}

/// Refuses an unsafe directory, creates a missing one and takes the edit lock.
fn guard(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    keyguard::check_dir(dir)?;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    Ok(keyguard::lock(dir)?)
}

fn add(dir: &std::path::Path, key: &NewKey, now: u64, signs_from: u64) -> anyhow::Result<()> {
    let (alg, pem) = match &key.rsa_pem {
        Some(path) => {
            let (alg, _) = keyset::read_key(path)?;
            if alg != Alg::Rs256 {
                bail!("{}: not an RSA key", path.display());
            }
            (
                alg,
                std::fs::read(path).with_context(|| path.display().to_string())?,
            )
        }
        None => (Alg::Es256, keyset::generate_es256_pem()?),
    };
    let kid = keyset::new_kid(alg, now);
    let at = keyset::add(dir, &kid, &pem, now, signs_from)?;
    println!("added {} {} signing from {}", at.kid, alg.as_str(), at.signs_from);
    Ok(())
}

fn list(keys: &[Scheduled], now: u64, retention: u64) {
    println!(
        "{:<32} {:<6} {:<8} {:>12} {:>12}",
        "kid", "alg", "state", "created", "signs_from"
    );
    for (k, s) in keys.iter().zip(states(keys, now, retention)) {
        let state = match s {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Expired => "expired",
        };
        let alg = k.kid.split('-').next().unwrap_or("?").to_ascii_uppercase();
        println!(
            "{:<32} {:<6} {:<8} {:>12} {:>12}",
            k.kid, alg, state, k.created, k.signs_from
        );
    }
}

/// Removes the keys that do not sign yet (`rotate --immediate`).
fn drop_pending(dir: &std::path::Path, now: u64) -> anyhow::Result<()> {
    let pending: Vec<String> = keyset::read_manifest(dir)?
        .into_iter()
        .filter(|k| k.signs_from > now)
        .map(|k| k.kid)
        .collect();
    for kid in pending {
        remove(dir, &kid, now)?;
    }
    Ok(())
}

fn remove(dir: &std::path::Path, kid: &str, now: u64) -> anyhow::Result<()> {
    let mut keys = keyset::read_manifest(dir)?;
    let Some(at) = keys.iter().position(|k| k.kid == kid) else {
        bail!("no key {kid:?} in {}", dir.display());
    };
    // Only the active key's state matters here (retention does not change which key is active).
    // Without it the newest older key would sign again: retired by the operator, or expired and
    // gone from every cached JWKS (publish-before-sign broken).
    if states(&keys, now, 0)[at] == KeyState::Active {
        bail!("{kid} is the active key: `keys rotate --immediate` first, then remove it");
    }
    keys.remove(at);
    keyset::write_manifest(dir, &keys)?;
    let pem = dir.join(format!("{kid}.pem"));
    std::fs::remove_file(&pem).with_context(|| pem.display().to_string())?;
    println!("removed {kid}");
    Ok(())
}
