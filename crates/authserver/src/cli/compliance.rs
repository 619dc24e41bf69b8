//! `authserver compliance check [--format table|json]`: inspects the deployment named by the
//! settings (`telemetry.service`, `telemetry.stage`, the secrets) through AWS APIs, prints every
//! control with pass/fail, evidence and the CIS AWS Foundations control it supports, and exits
//! non-zero when any control fails (docs/compliance.md).

use super::alarms::Format;
use crate::config::Settings;
use anyhow::bail;
use authserver_aws::compliance::Clients;
use clap::Subcommand;
use std::path::PathBuf;

/// `compliance` subcommands.
#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Check every control now; exit 1 when any fails.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Name users in the evidence by `user_hash` instead of by name (for output that is
        /// kept or shared).
        #[arg(long)]
        hash_usernames: bool,
        /// Config file (TOML): service, stage, secrets, `[compliance]` limits, hash policy.
        #[arg(long, env = "AUTHSERVER_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs one `compliance` subcommand.
pub fn run(cmd: ComplianceCommand) -> anyhow::Result<()> {
    let ComplianceCommand::Check {
        format,
        hash_usernames,
        config,
    } = cmd;
    let settings = Settings::load(config.as_deref())?;
    let target = crate::compliance::target(&settings);
    let hasher = crate::wiring::user_hasher(&settings);
    let report = super::admin::block_on(async {
        let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
        let clients = Clients::new(&sdk);
        let name = move |u: &str| {
            if hash_usernames {
                format!("user_hash {}", hasher.hash(u))
            } else {
                format!("{u:?}")
            }
        };
        authserver_aws::compliance::check(&clients, &target, &name).await
    })?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", crate::compliance::table(&report)),
    }
    if report.violations > 0 {
        bail!(
            "{} of {} compliance controls failed",
            report.violations,
            report.controls.len()
        );
    }
    Ok(())
}
