//! `authserver users`: edits a users file. Every write is atomic (temp file in the same
//! directory, fsync, rename) so a running server never reads half a file. Hashes are never
//! printed.

use super::password;
use anyhow::{Context, bail};
use authserver_core::AuditSink;
use authserver_core::{Cost, StoreDocument, UserRecord, hash_password, parse_document};
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

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
        /// Config file (TOML): the hash policy, the endpoint override, the audit sinks.
        #[arg(long, env = "AUTHSERVER_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Download the credential secret's AWSCURRENT version into FILE (mode 0600) and check it
    /// against the hash policy. Never prints hashes.
    Pull {
        /// The credential secret (name or ARN).
        #[arg(long)]
        secret_id: String,
        /// Users file to write.
        file: std::path::PathBuf,
        /// Config file (TOML).
        #[arg(long, env = "AUTHSERVER_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

/// Runs one `users` subcommand; every change is an audit event with the acting OS user.
pub fn run(cmd: UsersCommand) -> anyhow::Result<()> {
    let (action, file, user) = match &cmd {
        UsersCommand::Add { file, username, .. } => ("users.add", file.clone(), username.clone()),
        UsersCommand::Disable { file, username } => ("users.disable", file.clone(), username.clone()),
        UsersCommand::Enable { file, username } => ("users.enable", file.clone(), username.clone()),
        UsersCommand::Remove { file, username } => ("users.remove", file.clone(), username.clone()),
        // Push and pull audit themselves (`secret.push`, `secret.pull`).
        UsersCommand::List { .. }
        | UsersCommand::Hash { .. }
        | UsersCommand::Push { .. }
        | UsersCommand::Pull { .. } => return execute(cmd),
    };
    let settings = crate::config::Settings::load(None)?;
    let audit = crate::audit::Audit::from_settings(&settings.audit, crate::audit::Stream::Stderr)?;
    execute(cmd)?;
    audit.emit(authserver_core::AuditEvent::AdminAction {
        action: action.into(),
        target_user_hash: Some(crate::wiring::user_hasher(&settings).hash(&user)),
        resource: file.display().to_string(),
        actor: crate::audit::actor(),
    });
    Ok(())
}

fn execute(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Push {
            secret_id,
            file,
            force,
            config,
        } => super::secret::push(&secret_id, &file, force, config.as_deref()),
        UsersCommand::Pull {
            secret_id,
            file,
            config,
        } => super::secret::pull(&secret_id, &file, config.as_deref()),
        UsersCommand::Hash { username } => {
            let settings = crate::config::Settings::load(None)?;
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
        } => {
            authserver_core::names::check_names(&username, &roles)
                .map_err(|p| anyhow::anyhow!("invalid username or role: {p}"))?;
            let mut doc = if file.exists() {
                read(&file)?
            } else {
                StoreDocument::new()
            };
            if doc.contains_key(&username) {
                bail!("user {username:?} already exists in {}", file.display());
            }
            let pw = password::read(true)?;
            let record = UserRecord {
                password_hash: hash_password(&pw, Cost::DEFAULT)?,
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
            doc.insert(username.clone(), record);
            write(&file, &doc)?;
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
            let mut doc = read(&file)?;
            if doc.remove(&username).is_none() {
                bail!("no user {username:?} in {}", file.display());
            }
            write(&file, &doc)?;
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
    let mut doc = read(file)?;
    let Some(rec) = doc.get_mut(username) else {
        bail!("no user {username:?} in {}", file.display());
    };
    rec.status = status;
    write(file, &doc)?;
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

/// Reads a users file (shape only: `users` commands must work on files whose hashes a stricter
/// policy would refuse, so an operator can fix them).
pub fn read(file: &Path) -> anyhow::Result<StoreDocument> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    parse_document(&bytes).with_context(|| format!("{} is not a valid users file", file.display()))
}

/// Writes atomically: temp file beside the target, fsync, rename.
pub fn write(file: &Path, doc: &StoreDocument) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(doc)?;
    json.push(b'\n');
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", file.display()))
}
