//! `authserver users`: edits a users file through [`super::usersfile`] (one editor at a time,
//! atomic writes, so no edit is lost and a running server never reads half a file). Hashes are
//! never printed. Every command reads `--config` / `AUTHSERVER_CONFIG`, so its audit event
//! reaches the configured audit file and `users hash` uses the configured key.

use super::password;
use super::usersfile::{self, Missing};
use anyhow::bail;
use authserver_core::AuditSink;
use authserver_core::{Cost, UserRecord, hash_password};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use usersfile::{read, write};

/// `users` options and subcommand.
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Config file (TOML): the audit sinks, `log.user_hash_key`, the hash policy, the AWS
    /// endpoint. Accepted before or after the subcommand.
    #[arg(long, env = "AUTHSERVER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (password from stdin's first line, or a prompt). Creates FILE if absent.
    Add {
        /// Users file.
        file: PathBuf,
        /// Username (case-sensitive).
        username: String,
        /// A role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Add the user as DISABLED.
        #[arg(long)]
        disabled: bool,
        /// Argon2id cost of the new hash (refused when outside the configured `[hash]` policy).
        #[command(flatten)]
        cost: super::HashArgs,
    },
    /// Mark a user DISABLED.
    Disable {
        /// Users file.
        file: PathBuf,
        /// Username.
        username: String,
    },
    /// Mark a user ACTIVE.
    Enable {
        /// Users file.
        file: PathBuf,
        /// Username.
        username: String,
    },
    /// Remove a user.
    Remove {
        /// Users file.
        file: PathBuf,
        /// Username.
        username: String,
    },
    /// List users: name, status, roles, hash parameters, password age. Never hashes.
    List {
        /// Users file.
        file: PathBuf,
    },
    /// Print the `user_hash` that logs, metrics and audit events carry for USERNAME (keyed with
    /// `log.user_hash_key`), to find a user's lines during an incident.
    Hash {
        /// Username.
        username: String,
    },
    /// Validate FILE against the hash policy and upload it as the credential secret's new
    /// AWSCURRENT version (AWSPREVIOUS is detached: no old password stays accepted). Refused
    /// while a rotation is under way unless --force. Never prints hashes.
    Push {
        /// The credential secret (name or ARN).
        #[arg(long)]
        secret_id: String,
        /// Users file.
        file: std::path::PathBuf,
        /// Push even while a rotation is under way (its finishSecret will then fail).
        #[arg(long)]
        force: bool,
    },
    /// Download the credential secret's AWSCURRENT version into FILE (mode 0600) and check it
    /// against the hash policy. Never prints hashes.
    Pull {
        /// The credential secret (name or ARN).
        #[arg(long)]
        secret_id: String,
        /// Users file to write.
        file: std::path::PathBuf,
    },
}

/// Runs one `users` subcommand; every change is an audit event with the acting OS user.
pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    let UsersArgs { config, command: cmd } = args;
    let config = config.as_deref();
    let (action, file, user) = match &cmd {
        UsersCommand::Add { file, username, .. } => ("users.add", file.clone(), username.clone()),
        UsersCommand::Disable { file, username } => ("users.disable", file.clone(), username.clone()),
        UsersCommand::Enable { file, username } => ("users.enable", file.clone(), username.clone()),
        UsersCommand::Remove { file, username } => ("users.remove", file.clone(), username.clone()),
        // Push and pull audit themselves (`secret.push`, `secret.pull`).
        UsersCommand::List { .. }
        | UsersCommand::Hash { .. }
        | UsersCommand::Push { .. }
        | UsersCommand::Pull { .. } => return execute(cmd, config),
    };
    let settings = crate::config::Settings::load(config)?;
    // Opened before the edit: an audit file that cannot be written stops the change.
    let audit = crate::audit::Audit::from_settings(&settings.audit, crate::audit::Stream::Stderr)?;
    execute(cmd, config)?;
    audit.emit(authserver_core::AuditEvent::AdminAction {
        action: action.into(),
        target_user_hash: Some(crate::wiring::user_hasher(&settings).hash(&user)),
        resource: file.display().to_string(),
        actor: crate::audit::actor(),
    });
    audit.close()
}

fn execute(cmd: UsersCommand, config: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Push {
            secret_id,
            file,
            force,
        } => super::secret::push(&secret_id, &file, force, config),
        UsersCommand::Pull { secret_id, file } => super::secret::pull(&secret_id, &file, config),
        UsersCommand::Hash { username } => {
            let settings = crate::config::Settings::load(config)?;
            if settings.log.user_hash_key.is_empty() {
                bail!(
                    "log.user_hash_key is not set (AUTHSERVER_LOG_USER_HASH_KEY): this deployment's user_hash \
                     values are random per process and cannot be recomputed"
                );
            }
            println!("{}", crate::wiring::user_hasher(&settings).hash(&username));
            Ok(())
        }
        UsersCommand::Add {
            file,
            username,
            roles,
            disabled,
            cost,
        } => {
            authserver_core::names::check_names(&username, &roles)
                .map_err(|p| anyhow::anyhow!("invalid username or role: {p}"))?;
            // Fail before the prompt when the user exists; checked again under the edit lock.
            // (Regular files only: the edit itself refuses anything else, and reading a FIFO would hang.)
            if std::fs::metadata(&file).is_ok_and(|m| m.is_file()) && read(&file)?.contains_key(&username) {
                bail!("user {username:?} already exists in {}", file.display());
            }
            let policy = crate::config::Settings::load(config)?.hash.policy;
            let pw = password::read(true)?;
            let cost = Cost {
                m_kib: cost.m_cost,
                t: cost.t_cost,
                p: cost.p_cost,
            };
            let password_hash = hash_password(&pw, cost)?;
            if authserver_core::StoredHash::parse(&password_hash, &policy).is_err() {
                bail!(
                    "Argon2id cost {cost} is outside the configured [hash] policy: the server would deny this user"
                );
            }
            let record = UserRecord {
                password_hash,
                status: if disabled {
                    authserver_core::Status::Disabled
                } else {
                    authserver_core::Status::Active
                },
                roles,
                password_changed_at: Some(
                    time::OffsetDateTime::now_utc()
                        .replace_nanosecond(0)
                        .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
                ),
                delivery_secret_id: None,
            };
            usersfile::edit(&file, Missing::Create, |doc| {
                if doc.contains_key(&username) {
                    bail!("user {username:?} already exists in {}", file.display());
                }
                doc.insert(username.clone(), record);
                Ok(())
            })?;
            eprintln!("added user {username:?}");
            Ok(())
        }
        UsersCommand::Disable { file, username } => {
            set_status(&file, &username, authserver_core::Status::Disabled)
        }
        UsersCommand::Enable { file, username } => {
            set_status(&file, &username, authserver_core::Status::Active)
        }
        UsersCommand::Remove { file, username } => {
            usersfile::edit(&file, Missing::Fail, |doc| {
                if doc.remove(&username).is_none() {
                    bail!("no user {username:?} in {}", file.display());
                }
                Ok(())
            })?;
            eprintln!("removed user {username:?}");
            Ok(())
        }
        UsersCommand::List { file } => {
            let doc = read(&file)?;
            let policy = authserver_core::HashPolicy {
                min_m_kib: 8,
                min_t: 1,
                max_m_kib: u32::MAX,
                max_t: u32::MAX,
                max_p: u32::MAX,
            };
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<24} {:<9} {:<24} {:<26} PASSWORD_CHANGED_AT",
                "USERNAME", "STATUS", "ROLES", "HASH"
            )?;
            for (name, rec) in &doc {
                // A hand-edited file may hold escapes the server refuses: show, never interpret.
                let name = authserver_core::names::escape_for_display(name);
                let cost = authserver_core::StoredHash::parse(&rec.password_hash, &policy).map_or_else(
                    |e| format!("invalid: {}", short(&e)),
                    |h| format!("argon2id {}", h.cost()),
                );
                let changed = rec
                    .password_changed_at
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                    .unwrap_or_else(|| "-".into());
                let status = match rec.status {
                    authserver_core::Status::Active => "ACTIVE",
                    authserver_core::Status::Disabled => "DISABLED",
                };
                writeln!(
                    out,
                    "{name:<24} {status:<9} {:<24} {cost:<26} {changed}",
                    authserver_core::names::escape_for_display(&rec.roles.join(","))
                )?;
            }
            Ok(())
        }
    }
}

fn short(e: &authserver_core::HashError) -> &'static str {
    match e {
        authserver_core::HashError::Algorithm(_) => "not argon2id",
        _ => "not a PHC string",
    }
}

fn set_status(file: &Path, username: &str, status: authserver_core::Status) -> anyhow::Result<()> {
    usersfile::edit(file, Missing::Fail, |doc| {
        let Some(rec) = doc.get_mut(username) else {
            bail!("no user {username:?} in {}", file.display());
        };
        rec.status = status;
        Ok(())
    })?;
    eprintln!(
        "user {username:?} is now {}",
        if status == authserver_core::Status::Active {
            "ACTIVE"
        } else {
            "DISABLED"
        }
    );
    Ok(())
}
