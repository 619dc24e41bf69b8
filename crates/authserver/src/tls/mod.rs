//! TLS for the standalone server (rustls, ring provider): HTTP/2 and HTTP/1.1 by ALPN, the
//! certificate and key read from PEM files and reloaded when they change, so renewals
//! (certbot, cert-manager) need no restart. A broken renewal keeps the last good certificate.
//!
//! Changes are seen as for the users file ([`crate::files`]: inode, ctime, mtime, size, racy
//! re-reads and a periodic digest), the files must be regular and at most [`MAX_PEM_BYTES`].
//! A failed load is retried at every reload interval until one succeeds (a key made readable
//! by `chown` changes nothing a poll would otherwise notice in time), each failure counted.
//!
//! # Layout
//! - [`expiry`]: the certificate's `notAfter`, read from its DER.

pub mod expiry;

use crate::files::{Seen, read_regular, stat_key};
use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{ServerConfig, version};

/// Largest certificate chain or key file read.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A reload still running after this is reported as stalled (its files are tiny).
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// Process-wide TLS figures for `/metrics`. Global because a process serves one certificate
/// and the reloader is built where the listener is (`server.rs`), apart from the registry.
static RELOAD_FAILURES: AtomicU64 = AtomicU64::new(0);
/// `notAfter` of the certificate in service (Unix seconds); 0 without TLS.
static NOT_AFTER: AtomicI64 = AtomicI64::new(0);

/// What `/metrics` shows about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsFigures {
    /// Failed load attempts since start.
    pub reload_failures: u64,
    /// `notAfter` of the certificate in service (Unix seconds), when TLS is on (`/metrics`
    /// shows 0 otherwise).
    pub not_after: Option<i64>,
}

/// The TLS figures now.
pub fn figures() -> TlsFigures {
    let not_after = NOT_AFTER.load(Relaxed);
    TlsFigures {
        reload_failures: RELOAD_FAILURES.load(Relaxed),
        not_after: (not_after != 0).then_some(not_after),
    }
}

/// Serves whatever certificate was last loaded successfully.
#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
    state: std::sync::Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Metadata of (cert, key) last read; `None` after a failed read.
    seen: Option<(Seen, Seen)>,
    /// Digest of the pair in service.
    loaded: [u8; 32],
    /// The last failure, while failing: retried at every poll, logged once per message.
    failing: Option<String>,
}

fn provider() -> CryptoProvider {
    ring::default_provider()
}

/// Both files, read as regular files, with their metadata and a digest of the pair.
struct Pair {
    cert: Vec<u8>,
    key: zeroize::Zeroizing<Vec<u8>>,
    seen: (Seen, Seen),
    digest: [u8; 32],
}

fn read_pair(cert: &Path, key: &Path) -> anyhow::Result<Pair> {
    let (cert_pem, cert_key) = read_regular(cert, MAX_PEM_BYTES)
        .with_context(|| format!("cannot read certificate {}", cert.display()))?;
    let (key_pem, key_key) = read_regular(key, MAX_PEM_BYTES)
        .with_context(|| format!("cannot read private key {}", key.display()))?;
    let key_pem = zeroize::Zeroizing::new(key_pem);
    let mut d = Sha256::new();
    d.update((cert_pem.len() as u64).to_le_bytes());
    d.update(&cert_pem);
    d.update(&*key_pem);
    Ok(Pair {
        cert: cert_pem,
        key: key_pem,
        seen: (Seen::after_read(cert_key), Seen::after_read(key_key)),
        digest: d.finalize().into(),
    })
}

fn load(pair: &Pair, cert: &Path, key: &Path) -> anyhow::Result<(CertifiedKey, Option<i64>)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pair.cert)
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid PEM in {}", cert.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("no certificate in {}", cert.display());
    };
    let not_after = expiry::not_after(leaf);
    // The key's bytes never reach an error message: only the path does.
    let key_der = PrivateKeyDer::from_pem_slice(&pair.key)
        .map_err(|_| anyhow::anyhow!("cannot read a private key from {}", key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| anyhow::anyhow!("unsupported private key in {}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| anyhow::anyhow!("{} does not match {}", key.display(), cert.display()))?;
    Ok((certified, not_after))
}

fn publish_expiry(not_after: Option<i64>) {
    if not_after.is_none() {
        tracing::warn!("cannot read the TLS certificate's notAfter; its expiry is not exported");
    }
    NOT_AFTER.store(not_after.unwrap_or(0), Relaxed);
}

impl Reloading {
    /// Loads the pair once; fails when it is unusable (a server must not start without it).
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        let pair = read_pair(cert, key)?;
        let (first, not_after) = load(&pair, cert, key)?;
        publish_expiry(not_after);
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(first),
            state: std::sync::Mutex::new(State {
                seen: Some(pair.seen),
                loaded: pair.digest,
                failing: None,
            }),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // State holds plain values; a poisoned lock still holds a consistent one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads when either file changed, or retries after a failure; keeps the last good pair
    /// on failure. True on reload.
    pub fn check(&self) -> bool {
        {
            let st = self.lock();
            let unchanged =
                |p: &Path, seen: Option<&Seen>| stat_key(p).is_ok_and(|k| !Seen::must_read(seen, &k));
            if st.failing.is_none()
                && unchanged(&self.cert, st.seen.as_ref().map(|s| &s.0))
                && unchanged(&self.key, st.seen.as_ref().map(|s| &s.1))
            {
                return false;
            }
        }
        let pair = match read_pair(&self.cert, &self.key) {
            Ok(p) => p,
            Err(e) => {
                self.fail(&e);
                return false;
            }
        };
        {
            let mut st = self.lock();
            st.seen = Some(pair.seen);
            if st.loaded == pair.digest {
                if st.failing.take().is_some() {
                    tracing::info!("TLS files hold the certificate in service again");
                }
                return false;
            }
        }
        match load(&pair, &self.cert, &self.key) {
            Ok((certified, not_after)) => {
                self.current.store(Arc::new(certified));
                publish_expiry(not_after);
                let mut st = self.lock();
                st.loaded = pair.digest;
                st.failing = None;
                tracing::info!(not_after = not_after.unwrap_or(0), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    /// Counts a failed attempt; logs it when the reason is new.
    fn fail(&self, e: &anyhow::Error) {
        RELOAD_FAILURES.fetch_add(1, Relaxed);
        let message = format!("{e:#}");
        let mut st = self.lock();
        st.seen = None;
        if st.failing.as_deref() != Some(message.as_str()) {
            tracing::error!(error = %message, "TLS certificate not reloaded; keeping the last good one (retrying)");
            st.failing = Some(message);
        }
    }

    /// Polls the files every `interval` until the task is aborted.
    pub fn watch(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        crate::files::poll(
            interval,
            RELOAD_DEADLINE,
            move || {
                self.check();
            },
            |running| {
                tracing::error!(
                    running_ms = running.as_millis() as u64,
                    "TLS certificate reload stalled"
                );
            },
        )
    }

    /// An acceptor offering h2 and http/1.1, TLS 1.2 and 1.3.
    pub fn acceptor(self: &Arc<Self>) -> anyhow::Result<TlsAcceptor> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&version::TLS13, &version::TLS12])
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
