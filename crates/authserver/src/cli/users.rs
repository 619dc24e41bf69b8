//! `authserver users`: edits a users file through [`crate::store::file::edit`] (one editor at a time,
//! atomic writes, so no edit is lost and a running server never reads half a file). Hashes are
//! never printed. Every command reads `--config` / `AUTHSERVER_CONFIG`, so its audit event
//! reaches the configured audit file and `users hash` uses the configured key.

use super::admin::AdminAudit;
use super::password;
use crate::config::Settings;
use crate::store::file::edit::{self, Change, Missing, Outcome};
use anyhow::bail;
use authserver_core::{Cost, HashPolicy, Status, UserRecord, hash_password};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use edit::{read, replace, write};

/// `users` options and subcommand.
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Config file (TOML): the audit sinks, `log.user_hash_key`, the hash policy, the AWS
    /// endpoint. Accepted before or after the subcommand.
    #[arg(long, env = "AUTHSERVER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Edit or list the DynamoDB users table NAME instead of a users file (`add`, `disable`,
    /// `enable`, `remove`, `oauth`, `list`, `import`): then give the username without FILE.
    #[arg(long, global = true, value_name = "NAME")]
    pub table: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (password from stdin's first line, or a prompt). Creates FILE if absent.
    Add {
        /// Users file (with --table: the username).
        file: PathBuf,
        /// Username (case-sensitive).
        username: Option<String>,
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
        /// Users file (with --table: the username).
        file: PathBuf,
        /// Username.
        username: Option<String>,
    },
    /// Mark a user ACTIVE.
    Enable {
        /// Users file (with --table: the username).
        file: PathBuf,
        /// Username.
        username: Option<String>,
    },
    /// Remove a user.
    Remove {
        /// Users file (with --table: the username).
        file: PathBuf,
        /// Username.
        username: Option<String>,
    },
    /// Make an existing user an OAuth 2.0 client (its password is the client secret), change
    /// its registration, or with --clear make it a plain user again.
    Oauth(super::users_oauth::OAuthArgs),
    /// Import users from an htpasswd file (or JSON with --format json) into the users file, in
    /// one locked atomic edit. bcrypt and SHA-crypt need `hash.legacy = true`; apr1/MD5,
    /// {SHA}, crypt(3) DES and plaintext are refused. Nothing is written if any entry is refused.
    Import {
        /// The file to import (same as --htpasswd).
        source: Option<PathBuf>,
        /// The htpasswd file to import.
        #[arg(long, conflicts_with = "source")]
        htpasswd: Option<PathBuf>,
        /// How the file is written: htpasswd lines, or JSON (`{"user": "hash"}` or
        /// `[{"username", "hash", "roles"}]`).
        #[arg(long, value_enum, default_value = "htpasswd")]
        format: super::import::Format,
        /// Users file to import into [default: store.file].
        #[arg(long)]
        users: Option<PathBuf>,
        /// Replace the hash (and roles, when given) of users that already exist; their status
        /// stays and their password age is cleared.
        #[arg(long)]
        replace: bool,
    },
    /// List users: name, status, roles, hash algorithm and parameters, password age. Never
    /// hashes.
    List {
        /// Users file (required unless --table; clap's `required_unless_present` does not see
        /// the parent's global `--table`, so the check is in `execute`).
        file: Option<PathBuf>,
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
    // `--table` edits are dispatched to `users_table` by the caller (cli::run).
    let UsersArgs {
        config, command: cmd, ..
    } = args;
    let config = config.as_deref();
    if let UsersCommand::Import {
        source,
        htpasswd,
        format,
        users,
        replace,
    } = cmd
    {
        let Some(source) = source.or(htpasswd) else {
            bail!("users import: give the file to import (--htpasswd FILE)");
        };
        return super::import::run(&source, format, users, replace, config);
    }
    let Some((action, file, user)) = audited_edit(&cmd) else {
        return execute(cmd, config);
    };
    let settings = Settings::load(config)?;
    // Opened before the edit: an audit file that cannot be written stops the change.
    let audit = AdminAudit::open(&settings)?;
    execute(cmd, config)?;
    let user_hash = crate::wiring::user_hasher(&settings).hash(&user);
    audit.emit(action, Some(user_hash), file.display().to_string());
    audit.close()
}

/// The audit event's action, file and user of a users-file edit; None for commands that change
/// nothing (`list`, `hash`) and for push and pull, which audit themselves (`secret.push`,
/// `secret.pull`).
fn audited_edit(cmd: &UsersCommand) -> Option<(&'static str, PathBuf, String)> {
    let (action, file, user) = match cmd {
        UsersCommand::Add {
            file,
            username: Some(username),
            ..
        } => ("users.add", file, username),
        UsersCommand::Disable {
            file,
            username: Some(username),
        } => ("users.disable", file, username),
        UsersCommand::Enable {
            file,
            username: Some(username),
        } => ("users.enable", file, username),
        UsersCommand::Remove {
            file,
            username: Some(username),
        } => ("users.remove", file, username),
        UsersCommand::Oauth(args) => match &args.username {
            Some(username) => ("users.oauth", &args.file, username),
            None => return None,
        },
        // No username: `execute` says what is missing.
        UsersCommand::Add { username: None, .. }
        | UsersCommand::Disable { username: None, .. }
        | UsersCommand::Enable { username: None, .. }
        | UsersCommand::Remove { username: None, .. }
        | UsersCommand::List { .. }
        | UsersCommand::Import { .. }
        | UsersCommand::Hash { .. }
        | UsersCommand::Push { .. }
        | UsersCommand::Pull { .. } => return None,
    };
    Some((action, file.clone(), user.clone()))
}

fn execute(cmd: UsersCommand, config: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Push {
            secret_id,
            file,
            force,
        } => super::secret::push(&secret_id, &file, force, config),
        UsersCommand::Pull { secret_id, file } => super::secret::pull(&secret_id, &file, config),
        UsersCommand::Hash { username } => print_user_hash(&username, config),
        UsersCommand::Add {
            file,
            username,
            roles,
            disabled,
            cost,
        } => add(&file, &required(username)?, roles, disabled, &cost, config),
        UsersCommand::Disable { file, username } => set_status(&file, &required(username)?, Status::Disabled),
        UsersCommand::Enable { file, username } => set_status(&file, &required(username)?, Status::Active),
        UsersCommand::Remove { file, username } => remove(&file, &required(username)?),
        UsersCommand::Oauth(args) => {
            let username = required(args.username.clone())?;
            super::users_oauth::run_file(&args.file, &username, &args)
        }
        UsersCommand::List { file } => match file {
            Some(file) => list(&file),
            None => bail!("users list: give the users FILE (or --table NAME)"),
        },
        UsersCommand::Import { .. } => bail!("users import runs from `run`"),
    }
}

/// The username a file edit needs (FILE USERNAME; only `--table` edits take one argument).
fn required(username: Option<String>) -> anyhow::Result<String> {
    username.ok_or_else(|| anyhow::anyhow!("give the users FILE and the USERNAME (or --table NAME USERNAME)"))
}

/// `users hash`: the `user_hash` of USERNAME under the configured key.
fn print_user_hash(username: &str, config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    if settings.log.user_hash_key.is_empty() {
        bail!(
            "log.user_hash_key is not set (AUTHSERVER_LOG_USER_HASH_KEY): this deployment's user_hash \
             values are random per process and cannot be recomputed"
        );
    }
    println!("{}", crate::wiring::user_hasher(&settings).hash(username));
    Ok(())
}

/// `users add`.
fn add(
    file: &Path,
    username: &str,
    roles: Vec<String>,
    disabled: bool,
    cost: &super::HashArgs,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    authserver_core::names::check_names(username, &roles)
        .map_err(|p| anyhow::anyhow!("invalid username or role: {p}"))?;
    // Fail before the prompt when the user exists (a byte search, then a parse only if the
    // quoted name is there at all); checked again under the edit lock. (Regular files only: the
    // edit itself refuses anything else, and reading a FIFO would hang.)
    let exists = || format!("user {username:?} already exists in {}", file.display());
    if std::fs::metadata(file).is_ok_and(|m| m.is_file()) && edit::may_hold(file, username)? {
        bail!(exists());
    }
    let policy = Settings::load(config)?.hash.policy;
    let record = new_record(roles, disabled, cost, &policy)?;
    if edit::edit_user(file, Missing::Create, username, Change::Add(record))? == Outcome::Exists {
        bail!(exists());
    }
    eprintln!("added user {username:?}");
    Ok(())
}

/// A new user's record: the password read and hashed at `cost`, refused when the server's
/// `policy` would deny the hash.
pub(super) fn new_record(
    roles: Vec<String>,
    disabled: bool,
    cost: &super::HashArgs,
    policy: &HashPolicy,
) -> anyhow::Result<UserRecord> {
    let cost = Cost {
        m_kib: cost.m_cost,
        t: cost.t_cost,
        p: cost.p_cost,
    };
    // The policy's ceilings before hashing: hashing first would allocate (and spend) whatever
    // was asked, only to refuse it afterwards.
    if cost.m_kib > policy.max_m_kib || cost.t > policy.max_t || cost.p > policy.max_p {
        bail!(
            "Argon2id cost {cost} is above the configured [hash] ceilings: the server would deny this user"
        );
    }
    let pw = password::read(true)?;
    let password_hash = hash_password(&pw, cost)?;
    if authserver_core::StoredHash::parse(&password_hash, policy).is_err() {
        bail!(
            "Argon2id cost {cost} is outside the configured [hash] policy: the server would deny this user"
        );
    }
    let now = time::OffsetDateTime::now_utc();
    Ok(UserRecord {
        password_hash,
        status: if disabled {
            Status::Disabled
        } else {
            Status::Active
        },
        roles,
        password_changed_at: Some(now.replace_nanosecond(0).unwrap_or(now)),
        delivery_secret_id: None,
        oauth: None,
    })
}

/// `users remove`.
fn remove(file: &Path, username: &str) -> anyhow::Result<()> {
    if edit::edit_user(file, Missing::Fail, username, Change::Remove)? != Outcome::Written {
        bail!("no user {username:?} in {}", file.display());
    }
    eprintln!("removed user {username:?}");
    Ok(())
}

/// `users disable` / `users enable`.
fn set_status(file: &Path, username: &str, status: Status) -> anyhow::Result<()> {
    let mut set = |rec: &mut UserRecord| {
        rec.status = status;
        true
    };
    if edit::edit_user(file, Missing::Fail, username, Change::Update(&mut set))? != Outcome::Written {
        bail!("no user {username:?} in {}", file.display());
    }
    eprintln!("user {username:?} is now {}", status_name(status));
    Ok(())
}

pub(super) fn status_name(status: Status) -> &'static str {
    match status {
        Status::Active => "ACTIVE",
        Status::Disabled => "DISABLED",
    }
}

/// What `users list` accepts as a hash to show its parameters: any Argon2id string, however
/// cheap or costly (the configured policy is the server's business; the list shows the cost).
const LIST_POLICY: HashPolicy = HashPolicy {
    min_m_kib: 8,
    min_t: 1,
    max_m_kib: u32::MAX,
    max_t: u32::MAX,
    max_p: u32::MAX,
    legacy: true,
};

/// `users list`: one row per user, never a hash, in the file's order (sorted, for a file the
/// commands wrote), printed as the file streams by: a broken file ends the listing with the
/// error (exit 1) after the rows before the break.
fn list(file: &Path) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "{:<24} {:<9} {:<24} {:<9} {:<26} {:<25} OAUTH",
        "USERNAME", "STATUS", "ROLES", "ALGORITHM", "HASH", "PASSWORD_CHANGED_AT"
    )?;
    edit::for_each_user(file, |name, rec| writeln!(out, "{}", list_row(name, &rec)))?;
    out.flush()?;
    Ok(())
}

pub(super) fn list_row(name: &str, rec: &UserRecord) -> String {
    // A hand-edited file may hold escapes the server refuses: show, never interpret.
    let name = authserver_core::names::escape_for_display(name);
    let (algorithm, cost) = authserver_core::StoredHash::parse(&rec.password_hash, &LIST_POLICY).map_or_else(
        |e| ("-", format!("invalid: {}", short(&e))),
        |h| (h.algorithm(), h.describe()),
    );
    let changed = rec
        .password_changed_at
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".into());
    format!(
        "{name:<24} {:<9} {:<24} {algorithm:<9} {cost:<26} {changed:<25} {}",
        status_name(rec.status),
        authserver_core::names::escape_for_display(&rec.roles.join(",")),
        super::users_oauth::column(rec.oauth.as_ref())
    )
}

fn short(e: &authserver_core::HashError) -> &'static str {
    match e {
        authserver_core::HashError::Algorithm(_) => "not argon2id",
        authserver_core::HashError::Legacy(_) => "refused scheme",
        _ => "not a PHC string",
    }
}
