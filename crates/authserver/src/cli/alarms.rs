//! `authserver ops alarms test [--prefix P]`: drives each alarm of the deployment to `ALARM` and
//! back to `OK` ([`authserver_aws::alarms`]) and reports what it did, so that operators can
//! prove alert delivery end to end. Every alarm forced to `ALARM` notifies for real: the
//! composite alarms page (critical) or e-mail (warning).

use crate::config::Settings;
use anyhow::bail;
use authserver_aws::alarms::{AlarmResult, AlarmTest, Only};
use clap::{Subcommand, ValueEnum};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// `ops alarms` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlarmsCommand {
    /// Set each alarm named PREFIX* to ALARM, wait, set it back to OK, read both states back,
    /// and report. Exits non-zero when no alarm matched or any state could not be set.
    Test {
        /// Alarm name prefix [default: `<telemetry.service>-<telemetry.stage>-`].
        #[arg(long)]
        prefix: Option<String>,
        /// Which alarms: all, metric (leaf alarms; their composites notify) or composite (one
        /// notification per path).
        #[arg(long, value_enum, default_value_t = Kind::All)]
        only: Kind,
        /// Seconds each alarm stays in ALARM before it is set back to OK.
        #[arg(long, default_value_t = 10)]
        dwell_seconds: u64,
        /// List the alarms that would be driven; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Config file (TOML): service, stage, endpoint override.
        #[arg(long, env = "AUTHSERVER_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Metric and composite alarms.
    All,
    /// Metric (leaf) alarms.
    Metric,
    /// Composite alarms.
    Composite,
}

/// `--format` of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A human table.
    Table,
    /// JSON.
    Json,
}

/// Runs one `ops alarms` subcommand (inside the `ops` runtime).
pub async fn run(cmd: AlarmsCommand) -> anyhow::Result<()> {
    let AlarmsCommand::Test {
        prefix,
        only,
        dwell_seconds,
        dry_run,
        format,
        config,
    } = cmd;
    let settings = Settings::load(config.as_deref())?;
    let prefix =
        prefix.unwrap_or_else(|| format!("{}-{}-", settings.telemetry.service, settings.telemetry.stage));
    let test = alarm_test(prefix, only, Duration::from_secs(dwell_seconds), dry_run);
    let sdk = authserver_aws::sdk_config(Some(&settings.store.endpoint_url)).await;
    let client = authserver_aws::cloudwatch::client(&sdk);
    let results = authserver_aws::alarms::test(&client, &test).await?;
    if !dry_run {
        // Dropped rather than closed (the drop still flushes), as before: the alarms have been
        // driven either way, and the report below is what the operator needs next.
        let audit = super::admin::AdminAudit::open(&settings)?;
        audit.emit(
            "alarms.test",
            None,
            format!("{} alarms named {}*", results.len(), test.prefix),
        );
    }
    report(&results, &test.prefix, dry_run, format)
}

/// The test the flags ask for; every state it sets names the OS user running it.
fn alarm_test(prefix: String, only: Kind, dwell: Duration, dry_run: bool) -> AlarmTest {
    let actor = crate::audit::actor();
    AlarmTest {
        prefix,
        only: match only {
            Kind::All => Only::All,
            Kind::Metric => Only::Metric,
            Kind::Composite => Only::Composite,
        },
        dwell,
        dry_run,
        reason: format!("authserver ops alarms test by {actor}: alert delivery test, not a real incident"),
        retry: authserver_aws::RetryPolicy::default(),
    }
}

/// Prints the results; fails when no alarm matched or any could not be driven.
fn report(results: &[AlarmResult], prefix: &str, dry_run: bool, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(results)?),
        Format::Table => print!("{}", table(results, prefix, dry_run)),
    }
    if results.is_empty() {
        bail!("no alarm named {prefix}*");
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    if failed > 0 {
        bail!("{failed} of {} alarms could not be driven", results.len());
    }
    Ok(())
}

/// The human report.
pub fn table(results: &[AlarmResult], prefix: &str, dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would drive" } else { "drove" };
    let _ = writeln!(out, "{verb} {} alarms named {prefix}*\n", results.len());
    let _ = writeln!(
        out,
        "{:<48} {:<9} {:<17} {:<7} {:<7} NOTIFIES THROUGH",
        "ALARM", "KIND", "BEFORE", "ALARM", "OK"
    );
    for r in results {
        row(&mut out, r, dry_run);
    }
    out
}

/// One alarm's line, and its error's when it has one.
fn row(out: &mut String, r: &AlarmResult, dry_run: bool) {
    let mark = |done: bool| {
        if dry_run {
            "-"
        } else if done {
            "yes"
        } else {
            "NO"
        }
    };
    let through = if r.actions > 0 {
        format!("{} own action(s)", r.actions)
    } else if r.watched_by.is_empty() {
        "nothing".to_owned()
    } else {
        r.watched_by.join(", ")
    };
    let _ = writeln!(
        out,
        "{:<48} {:<9} {:<17} {:<7} {:<7} {through}",
        r.name,
        r.kind,
        r.before,
        mark(r.alarm),
        mark(r.ok)
    );
    if let Some(e) = &r.error {
        let _ = writeln!(out, "    error: {e}");
    }
}
