//! `authserver healthcheck`: exit 0 when the local server's `GET /ready` answers 200 with
//! `"ready": true`, 1 otherwise, with one line on stderr. For container `HEALTHCHECK`, ECS and
//! compose, which run a command rather than an HTTP probe (and the image has no curl).
//!
//! The default URL is derived from `server.listen`: an unspecified address (`0.0.0.0`, `::`)
//! becomes its loopback, the port stays. With `[tls]` configured it is
//! `https://<--tls-name, default localhost>:PORT/ready`, connected to that loopback address and
//! verified against the configured certificate file as the only root: the certificate must name
//! `--tls-name`. The probe sends no credential, so `--url` can point anywhere.

use anyhow::{Context, bail};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Whole probe, connection included: an orchestrator's health check usually allows 5 s or more,
/// and a server that needs 2 s to answer `/ready` from memory is not healthy.
const TIMEOUT: Duration = Duration::from_secs(2);

/// `healthcheck` options.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The readiness URL [default: /ready on server.listen, loopback when it is 0.0.0.0 or ::].
    #[arg(long)]
    pub url: Option<String>,
    /// With [tls]: the name the certificate carries (connected to loopback all the same).
    #[arg(long, default_value = "localhost")]
    pub tls_name: String,
    /// Config file (TOML).
    #[arg(long, env = "AUTHSERVER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs the probe; the error is the stderr line.
pub fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let (url, client) = match args.url {
        Some(url) => (url, base_client().build()?),
        None => default_target(&args)?,
    };
    super::admin::block_on(probe(client, url))?
}

/// The probe asks this host's own listener: never through `HTTP_PROXY`/`ALL_PROXY` (an egress
/// proxy in a pod's environment made a dead server read healthy), never following a redirect.
fn base_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// `/ready` answers a few dozen bytes; a body past this is not our server (and must not grow
/// the probe's memory inside a 256 MiB container).
const MAX_BODY: usize = 4096;

/// The URL and client for the local listener named by the settings.
fn default_target(args: &HealthcheckArgs) -> anyhow::Result<(String, reqwest::Client)> {
    let settings = crate::config::Settings::load(args.config.as_deref())?;
    let local = loopback_for(settings.server.listen);
    let cert = &settings.tls.cert_file;
    if cert.is_empty() {
        return Ok((format!("http://{local}/ready"), base_client().build()?));
    }
    let pem = std::fs::read(cert).with_context(|| format!("cannot read tls.cert_file {cert}"))?;
    let mut client = base_client()
        .tls_built_in_root_certs(false)
        .resolve(&args.tls_name, local);
    for root in reqwest::Certificate::from_pem_bundle(&pem).context("tls.cert_file is not PEM")? {
        client = client.add_root_certificate(root);
    }
    let url = format!("https://{}:{}/ready", args.tls_name, local.port());
    Ok((url, client.build()?))
}

/// Where a client on this host reaches a listener bound to `listen`.
pub fn loopback_for(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

async fn probe(client: reqwest::Client, url: String) -> anyhow::Result<()> {
    let res = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("unhealthy: {url} unreachable"))?;
    let status = res.status();
    let ready = read_capped(res)
        .await
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|v| v["ready"].as_bool());
    if status != reqwest::StatusCode::OK || ready != Some(true) {
        bail!("unhealthy: {url} answered {status}, ready={ready:?}");
    }
    println!("healthy: {url} ready");
    Ok(())
}

/// The body, or `None` once it passes [`MAX_BODY`] (or fails to arrive).
async fn read_capped(mut res: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}
