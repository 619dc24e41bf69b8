//! `authserver ops`: what a running server holds, and the cache purge of the credential-leak
//! runbook, through its admin endpoints; `ops alarms test` ([`super::alarms`]) proves alert
//! delivery through CloudWatch.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;

/// `ops` subcommands.
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Store version and age, verified-cache size, bans, from a running server's `/stats`.
    CacheStatus {
        /// The server's admin listener (`admin.listen`).
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        url: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop every verified credential of a running server (run on its host: loopback only).
    CachePurge {
        /// The server's admin listener (`admin.listen`).
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        url: String,
    },
    /// CloudWatch alarms of the deployment.
    #[command(subcommand)]
    Alarms(super::alarms::AlarmsCommand),
}

/// Runs one `ops` subcommand.
pub fn run(cmd: OpsCommand) -> anyhow::Result<()> {
    super::admin::block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        match cmd {
            OpsCommand::CacheStatus { url, json } => {
                let stats: Value = fetch(client.get(format!("{}/stats", url.trim_end_matches('/')))).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&stats)?);
                } else {
                    print!("{}", status_table(&stats));
                }
                Ok(())
            }
            OpsCommand::Alarms(cmd) => super::alarms::run(cmd).await,
            OpsCommand::CachePurge { url } => {
                let out: Value =
                    fetch(client.post(format!("{}/admin/cache/purge", url.trim_end_matches('/')))).await?;
                println!("purged {} verified credential(s)", out["purged"]);
                Ok(())
            }
        }
    })?
}

async fn fetch(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let res = req.send().await.context("cannot reach the server")?;
    let status = res.status();
    let body: Value = res.json().await.context("the server did not answer JSON")?;
    if !status.is_success() {
        bail!(
            "server answered {status}: {}",
            body["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}

/// The human view of `/stats`.
pub fn status_table(s: &Value) -> String {
    let store = &s["store"];
    let reg = &s["regulation"];
    let w = &s["window"];
    let rows = [
        (
            "store",
            match store["cached_entries"].as_u64() {
                // A store read user by user (the DynamoDB table): its count and its cache.
                Some(cached) => format!(
                    "{} version {} ({} users, {cached} cached)",
                    store["kind"], store["version"], store["users"]
                ),
                None => format!(
                    "{} version {} ({} users)",
                    store["kind"], store["version"], store["users"]
                ),
            },
        ),
        (
            "store age",
            format!("{} s since confirmed current", store["age_seconds"]),
        ),
        ("store ready", store["ready"].to_string()),
        (
            "store last error",
            store["last_error"].as_str().unwrap_or("none").to_owned(),
        ),
        (
            "verified cache",
            format!("{} entries", s["credentialCache"]["entries"]),
        ),
        (
            "bans",
            format!("{} active, {} issued", reg["activeBans"], reg["bansIssued"]),
        ),
        (
            "last 60 s",
            format!("{} requests, success ratio {}", w["requests"], w["success_ratio"]),
        ),
    ];
    rows.iter()
        .map(|(k, v)| format!("{k:<18} {}\n", v.replace('"', "")))
        .collect()
}
