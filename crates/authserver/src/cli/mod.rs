//! The `authserver` command line. The interface is scripted against by operators: keep it.
//!
//! On AWS Lambda the binary is the function's `bootstrap` and runs with no arguments: when
//! `AWS_LAMBDA_RUNTIME_API` is set and no argument is given, it runs `authserver lambda`.
//! Anywhere else, no arguments print the usage as before.
//!
//! # Layout
//! - [`admin`]: what the administrative subcommands share: `block_on`, the `AdminAction` audit.
//! - [`ops`]: `ops cache-status`, `ops cache-purge` against a running server.
//! - [`alarms`]: `ops alarms test`, alert delivery proven through CloudWatch.
//! - [`compliance`]: `compliance check`, the deployment's controls.
//! - [`password`]: reading a password from stdin or a no-echo prompt.
//! - [`users`]: `users add|disable|enable|remove|list` on a users file, written through
//!   [`crate::store::file::edit`] (one editor at a time, atomic, modes kept).
//! - [`secret`]: `users push|pull`, the users file to and from the credential secret.
//! - [`users_table`]: `users ... --table NAME`, the same edits on the DynamoDB users table.
//! - [`users_oauth`]: `users oauth`, an entry's OAuth client registration (file or table).
//! - [`rules`]: `rules check|explain`, an access rules file checked, a request explained.
//! - [`keys`]: `keys generate|rotate|list|remove`, the OAuth signing key set.
//! - [`healthcheck`]: `healthcheck`, exit 0/1 from the local listener's `/ready` (container
//!   `HEALTHCHECK`, ECS, compose).

pub mod admin;
pub mod alarms;
pub mod compliance;
pub mod healthcheck;
pub mod import;
pub mod keys;
pub mod ops;
pub mod password;
pub mod rules;
pub mod secret;
pub mod users;
pub mod users_oauth;
pub mod users_table;

use crate::config::Settings;
use anyhow::Context;
use authserver_core::{Cost, hash_password};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// HTTP Basic-auth authorization server.
#[derive(Debug, Parser)]
#[command(name = "authserver", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the standalone HTTP server.
    Serve(ServeArgs),
    /// Hash a password (stdin's first line, or a prompt) and print the PHC string.
    HashPassword(HashArgs),
    /// Manage a users file.
    Users(users::UsersArgs),
    /// Check or print configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check an access rules file, or explain which rule decides a request.
    Rules(rules::RulesArgs),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the OAuth signing key set (`oauth.keys_dir`).
    Keys(keys::KeysArgs),
    /// Operate a running server, or the deployment's alarms.
    #[command(subcommand)]
    Ops(ops::OpsCommand),
    /// Check the AWS deployment's security controls.
    #[command(subcommand)]
    Compliance(compliance::ComplianceCommand),
    /// Exit 0 when the local server's `GET /ready` answers 200 ready=true, else 1 (container
    /// health checks).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Run as an AWS Lambda function (what `bootstrap` does with no arguments under Lambda).
    Lambda(LambdaArgs),
    /// Print the metric table this binary emits (for `scripts/check-metric-names.py`).
    #[command(hide = true)]
    MetricsNames {
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: crate::telemetry::listing::Format,
    },
}

/// `lambda` options. The mode is `AUTHSERVER_LAMBDA_MODE` (proxy, authorizer, rotation,
/// compliance).
#[derive(Debug, Args)]
pub struct LambdaArgs {
    /// Config file (TOML).
    #[arg(long, env = "AUTHSERVER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a hash-chained audit file; says where it was edited, cut or reordered, and which
    /// torn lines the writer recovered.
    Verify {
        /// The audit file (`audit.file`).
        file: PathBuf,
        /// `SEQ:HASH` from an `audit anchor` log line: fails when the file ends before SEQ or
        /// its record SEQ has another hash (the tail was cut or rewritten).
        #[arg(long, value_parser = crate::audit::chain::Anchor::parse)]
        anchor: Option<crate::audit::chain::Anchor>,
    },
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address [default: server.listen, 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Users file [default: store.file, examples/users.json].
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Config file (TOML).
    #[arg(long, env = "AUTHSERVER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `hash-password` options.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Argon2id memory in KiB (at most 4 GiB: the hash allocates it, and a larger request
    /// aborted the process on the failed allocation).
    #[arg(long, default_value_t = Cost::DEFAULT.m_kib,
          value_parser = clap::value_parser!(u32).range(1..=4 * 1024 * 1024))]
    pub m_cost: u32,
    /// Argon2id iterations.
    #[arg(long, default_value_t = Cost::DEFAULT.t)]
    pub t_cost: u32,
    /// Argon2id parallelism.
    #[arg(long, default_value_t = Cost::DEFAULT.p)]
    pub p_cost: u32,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file + environment) and say what is wrong.
    Check {
        /// Config file (TOML).
        #[arg(long, env = "AUTHSERVER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the documented default configuration file.
    Default,
}

/// Entry point: parses arguments, runs, maps errors to exit code 1 (clap uses 2 for usage).
pub fn main() -> ExitCode {
    crate::telemetry::install_panic_hook();
    let lambda = std::env::args_os().len() <= 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let cli = if lambda {
        Cli::parse_from(["authserver", "lambda"])
    } else {
        Cli::parse()
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`authserver users list | head -n 1`): stop quietly, as Unix
        // tools do, instead of reporting an error for output nobody wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::HashPassword(args) => hash(&args),
        Command::Users(mut cmd) => match cmd.table.take() {
            Some(table) => users_table::run(&table, cmd.command, cmd.config.as_deref()),
            None => users::run(cmd),
        },
        Command::Rules(cmd) => rules::run(cmd),
        Command::Ops(cmd) => ops::run(cmd),
        Command::Keys(args) => keys::run(args),
        Command::Compliance(cmd) => compliance::run(cmd),
        Command::Healthcheck(args) => healthcheck::run(args),
        Command::Lambda(args) => crate::lambda::run(Settings::load(args.config.as_deref())?),
        Command::MetricsNames { format } => {
            print!("{}", crate::telemetry::listing::render(format));
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { file, anchor }) => verify_audit(&file, anchor.as_ref()),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", crate::config::DEFAULT_TOML);
            Ok(())
        }
        Command::Config(ConfigCommand::Check { config }) => check_config(config.as_deref()),
    }
}

/// `hash-password`.
fn hash(args: &HashArgs) -> anyhow::Result<()> {
    let pw = password::read(true)?;
    let cost = Cost {
        m_kib: args.m_cost,
        t: args.t_cost,
        p: args.p_cost,
    };
    println!("{}", hash_password(&pw, cost)?);
    Ok(())
}

/// `audit verify`.
fn verify_audit(file: &Path, anchor: Option<&crate::audit::chain::Anchor>) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let v = match crate::audit::chain::verify_anchored(&bytes, anchor) {
        Ok(v) => v,
        Err(broken) => anyhow::bail!("{}: tampering detected at {broken}", file.display()),
    };
    println!(
        "OK: {} records, chain intact; last hash {} (anchor {}:{})",
        v.records, v.last_hash, v.records, v.last_hash
    );
    for line in &v.recovered {
        println!("recovered: line {line} was a torn write, recorded by the `recovered` record after it");
    }
    if let Some(a) = anchor {
        println!("anchor {}:{} matches", a.seq, a.hash);
    }
    Ok(())
}

/// `config check`: the settings validate, and a file store's users file loads with every entry
/// in service. Ignored `AUTHSERVER_*` variables are printed as warnings and do not fail it
/// (the server starts with them); an entry whose hash fails the policy does (the server starts,
/// but denies that user).
fn check_config(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    for w in &settings.env_warnings {
        eprintln!("warning: {w}");
    }
    if settings.store.kind == crate::config::StoreKind::File {
        let store = crate::store::file::FileStore::open(
            &settings.store.file,
            settings.hash.policy.clone(),
            authserver_core::UserHasher::random(),
            crate::wiring::file_limits(&settings),
        )?;
        if let Ok(snapshot) = crate::store::SnapshotSource::current(&store) {
            warn_mixed_costs(&snapshot);
            refuse_refused(&snapshot, &settings.store.file)?;
        }
    }
    println!("configuration OK");
    Ok(())
}

/// Fails naming each entry whose hash the policy refuses (the operator's own file, so the
/// username is shown, as `users list` does; the hash never is).
fn refuse_refused(snapshot: &authserver_core::Snapshot, file: &Path) -> anyhow::Result<()> {
    if snapshot.refused().is_empty() {
        return Ok(());
    }
    for r in snapshot.refused() {
        eprintln!(
            "error: users file entry {:?} is refused (that user is denied): {}",
            r.user, r.problem
        );
    }
    anyhow::bail!(
        "{} of the entries in {} fail the hash policy (docs/security.md, \"Refused entries\")",
        snapshot.refused().len(),
        file.display()
    )
}

/// Users whose hashes have different costs are all answered at the slowest cost's pace (denials
/// are padded so timing does not tell them apart): say so, so the operator can rehash.
fn warn_mixed_costs(snapshot: &authserver_core::Snapshot) {
    let mut classes: std::collections::BTreeMap<(u32, u32, u32), usize> = Default::default();
    for (_, user) in snapshot.users() {
        let c = user.hash.cost();
        *classes.entry((c.m_kib, c.t, c.p)).or_default() += 1;
    }
    if classes.len() > 1 {
        let list = classes
            .iter()
            .map(|((m, t, p), n)| format!("m={m},t={t},p={p}: {n} user(s)"))
            .collect::<Vec<_>>()
            .join("; ");
        eprintln!(
            "warning: the users' hashes have {} cost classes ({list}); every denial is paced to the most expensive one. Give those users new hashes at one cost (`authserver hash-password` makes one at the default cost; `users list` shows each user's parameters).",
            classes.len()
        );
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        settings.server.listen = listen;
    }
    if let Some(users) = args.users {
        settings.store.file = users;
    }
    settings.validate()?;
    let _flush_on_exit = crate::telemetry::init_buffered(&settings)?;
    settings.log_env_warnings();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(crate::server::start(settings, crate::server::shutdown_signal()));
    // A worker blocked writing to a stdout nobody reads (the log batch's back-pressure) must not
    // keep a server that was told to stop alive (dropping the runtime would wait for it); the
    // log batch's own close waits at most `batch::CLOSE_WAIT` after this.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}
