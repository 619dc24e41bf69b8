//! `authserver users ... --table NAME`: the users commands on the DynamoDB users table
//! ([`authserver_aws::UsersTable`]). Every write is conditional (a new user only if absent, a
//! change or removal only if present, a status change touches that one attribute), so two
//! operators never lose each other's updates; each write then bumps the table version, which
//! the servers poll (`users_table.version_poll_seconds`). `list` pages through the table.
//! Hashes are never printed; each change is an audit event like a file edit's.

use super::admin::{AdminAudit, block_on};
use super::import::{self, Format};
use super::users::{UsersCommand, list_row, new_record, status_name};
use crate::config::Settings;
use anyhow::{Context, bail};
use authserver_aws::UsersTable;
use authserver_aws::users_table::WriteError;
use authserver_core::{Status, UserRecord};
use std::io::Write;
use std::path::Path;

/// Conditional writes in flight during an import (each is one round trip).
const IMPORT_WINDOW: usize = 16;

/// Runs `cmd` against the table `name`. With `--table`, FILE is the username.
pub fn run(name: &str, cmd: UsersCommand, config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let Some((action, user, edit)) = planned(&settings, name, cmd)? else {
        return Ok(()); // list and import ran
    };
    if user == authserver_aws::users_table::item::VERSION_KEY {
        // `add` checks names; the others must not touch the version item either (a removal
        // would reset the version and the count, a status would be written onto it).
        bail!("{user:?} is the table's version item, not a user");
    }
    // Opened before the write: an audit file that cannot be written stops the change.
    let audit = AdminAudit::open(&settings)?;
    let table = table(&settings, name)?;
    let done = block_on(write(&table, &user, edit))??;
    eprintln!("{done} (table {name})");
    let user_hash = crate::wiring::user_hasher(&settings).hash(&user);
    audit.emit(action, Some(user_hash), format!("dynamodb:{name}"));
    audit.close()
}

/// The one-user write `cmd` asks for (audit action, username, change), or `None` once a
/// command that is not one (list, import) has run.
fn planned(
    settings: &Settings,
    name: &str,
    cmd: UsersCommand,
) -> anyhow::Result<Option<(&'static str, String, Edit)>> {
    Ok(Some(match cmd {
        UsersCommand::List { file: Some(_) } => bail!("users list: give --table NAME or FILE, not both"),
        UsersCommand::List { file: None } => return list(settings, name).map(|()| None),
        UsersCommand::Import {
            source,
            htpasswd,
            format,
            users,
            replace,
        } => {
            if users.is_some() {
                bail!("users import: give --table NAME or --users FILE, not both");
            }
            let source = source
                .or(htpasswd)
                .context("users import: give the file to import (--htpasswd FILE)")?;
            return import_into(settings, name, &source, format, replace).map(|()| None);
        }
        UsersCommand::Add {
            file,
            username,
            roles,
            disabled,
            cost,
        } => {
            let user = username_only(&file, username)?;
            (
                "users.add",
                user.clone(),
                Edit::Add(Box::new(new_user(settings, name, &user, roles, disabled, &cost)?)),
            )
        }
        UsersCommand::Disable { file, username } => (
            "users.disable",
            username_only(&file, username)?,
            Edit::Status(Status::Disabled),
        ),
        UsersCommand::Enable { file, username } => (
            "users.enable",
            username_only(&file, username)?,
            Edit::Status(Status::Active),
        ),
        UsersCommand::Remove { file, username } => {
            ("users.remove", username_only(&file, username)?, Edit::Remove)
        }
        UsersCommand::Oauth(args) => {
            let user = username_only(&args.file, args.username.clone())?;
            ("users.oauth", user, Edit::OAuth(args.client()?.map(Box::new)))
        }
        UsersCommand::Hash { .. } | UsersCommand::Push { .. } | UsersCommand::Pull { .. } => {
            bail!("--table applies to add, disable, enable, remove, oauth, list and import")
        }
    }))
}

/// With `--table` the one positional argument (clap's FILE) is the username.
fn username_only(file: &Path, username: Option<String>) -> anyhow::Result<String> {
    if username.is_some() {
        bail!("with --table give the USERNAME only (no users FILE)");
    }
    Ok(file.to_string_lossy().into_owned())
}

/// `users add --table`: names checked, refused before the password prompt when the user exists
/// (the write's condition checks again), the password read and hashed.
fn new_user(
    settings: &Settings,
    name: &str,
    user: &str,
    roles: Vec<String>,
    disabled: bool,
    cost: &super::HashArgs,
) -> anyhow::Result<UserRecord> {
    authserver_core::names::check_names(user, &roles)
        .map_err(|p| anyhow::anyhow!("invalid username or role: {p}"))?;
    let table = table(settings, name)?;
    if block_on(table.get(user))??.is_some() {
        bail!("user {user:?} already exists in the table {name}");
    }
    new_record(roles, disabled, cost, &settings.hash.policy)
}

/// One user's change.
enum Edit {
    // Boxed: a record (208 bytes since the `oauth` field) beside one-byte variants.
    Add(Box<UserRecord>),
    Status(Status),
    Remove,
    /// `users oauth`: the new object, `None` to clear it.
    OAuth(Option<Box<authserver_core::oauth::OAuthClient>>),
}

/// Makes the conditional write, then bumps the version, moving the user count by the users
/// added or removed (a bump that fails leaves the change to `users_table.entry_ttl_seconds`
/// and the count off by it: said, not hidden). A write whose outcome is unknown (its answer
/// lost: it may have been applied) and a `remove` told "no user" (an earlier remove's answer
/// may have been lost) bump the version too, so that servers re-read the user within
/// `version_poll_seconds` whatever happened; the count is left alone, and the warning says so.
async fn write(table: &UsersTable, user: &str, edit: Edit) -> anyhow::Result<String> {
    let remove = matches!(edit, Edit::Remove);
    let result = match edit {
        Edit::Add(record) => table
            .add(user, &record)
            .await
            .map(|()| (format!("added user {user:?}"), 1)),
        Edit::Status(status) => table
            .set_status(user, status)
            .await
            .map(|()| (format!("user {user:?} is now {}", status_name(status)), 0)),
        Edit::Remove => table
            .remove(user)
            .await
            .map(|()| (format!("removed user {user:?}"), -1)),
        Edit::OAuth(client) => table
            .set_oauth(user, client.as_deref())
            .await
            .map(|()| (super::users_oauth::done(user, client.is_none()), 0)),
    };
    match result {
        Ok((done, users)) => {
            bump(table, users).await;
            Ok(done)
        }
        Err(e @ WriteError::Call(_)) => {
            let bumped = table.bump_version().await;
            eprintln!(
                "warning: the write's outcome is unknown (it may have been applied); {}; the \
                 table's user count is not moved: run the command again to see where it stands",
                bumped_or_not(&bumped)
            );
            Err(e.into())
        }
        Err(e @ WriteError::Missing(_)) if remove => {
            let bumped = table.bump_version().await;
            eprintln!(
                "note: in case an earlier remove was applied without its answer: {}",
                bumped_or_not(&bumped)
            );
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn bumped_or_not(bumped: &Result<u64, authserver_aws::retry::CallError>) -> String {
    match bumped {
        Ok(_) => "the table version was bumped, so servers re-read the user within \
                  users_table.version_poll_seconds"
            .to_owned(),
        Err(e) => format!(
            "the table version was not bumped either ({e}): servers apply any change within \
             users_table.entry_ttl_seconds"
        ),
    }
}

async fn bump(table: &UsersTable, users: i64) {
    if let Err(e) = table.bump_counting(users).await {
        eprintln!(
            "warning: the change is written but the table version was not bumped ({e}): servers \
             apply it within users_table.entry_ttl_seconds instead of version_poll_seconds, and \
             the table's user count is off by {users}"
        );
    }
}

fn table(settings: &Settings, name: &str) -> anyhow::Result<UsersTable> {
    let endpoint = settings.store.endpoint_url.clone();
    let client = block_on(async move {
        authserver_aws::dynamodb_client(&authserver_aws::sdk_config(Some(&endpoint)).await)
    })?;
    Ok(UsersTable::new(client, name))
}

/// `users list --table`: every page, one row per user, never a hash.
fn list(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let table = table(settings, name)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<9} {:<24} {:<9} {:<26} {:<25} OAUTH",
        "USERNAME", "STATUS", "ROLES", "ALGORITHM", "HASH", "PASSWORD_CHANGED_AT"
    )?;
    let mut start = None;
    loop {
        let (entries, next) = block_on(table.page(start))??;
        for (user, entry) in entries {
            match entry {
                Ok(record) => writeln!(out, "{}", list_row(&user, &record))?,
                Err(e) => writeln!(
                    out,
                    "{:<24} invalid: {e}",
                    authserver_core::names::escape_for_display(&user)
                )?,
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => return Ok(()),
        }
    }
}

/// `users import --table`: every entry checked first (nothing written if one is refused); new
/// users are added conditionally, existing ones refused unless `--replace` (then, as in a users
/// file, their hash and given roles are replaced and `passwordChangedAt` cleared, status kept).
/// Not one transaction: a conflict with another operator stops the
/// import and says how many were written.
fn import_into(
    settings: &Settings,
    name: &str,
    source: &Path,
    format: Format,
    replace: bool,
) -> anyhow::Result<()> {
    let max = crate::store::file::FileLimits::default().max_bytes;
    let (bytes, _) = crate::files::read_regular(source, max)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", source.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", source.display()))?;
    let entries = import::parse(&text, format)?;
    // The table store refuses legacy hashes (see `authserver_aws::users_table`): so does the
    // import, rather than write users who could never sign in.
    let policy = authserver_core::HashPolicy {
        legacy: false,
        ..settings.hash.policy.clone()
    };
    import::check(&entries, &policy)?;
    let audit = AdminAudit::open(settings)?;
    let table = table(settings, name)?;
    let total = entries.len();
    let outcome = block_on(import_entries(table, entries, replace))?;
    // Audited whatever the outcome: a partly failed import has written users too.
    audit.emit("users.import", None, format!("dynamodb:{name}"));
    audit.close()?;
    let (added, replaced) = outcome?;
    eprintln!("imported into table {name}: {added} added, {replaced} replaced (of {total})");
    Ok(())
}

async fn import_entries(
    table: UsersTable,
    entries: Vec<import::Entry>,
    replace: bool,
) -> anyhow::Result<(usize, usize)> {
    let mut tasks = tokio::task::JoinSet::new();
    let (mut added, mut replaced, mut failed) = (0, 0, Vec::new());
    let mut entries = entries.into_iter();
    loop {
        while tasks.len() < IMPORT_WINDOW {
            let Some(entry) = entries.next() else { break };
            let table = table.clone();
            tasks.spawn(async move { import_one(&table, entry, replace).await });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done {
            Ok(Ok(true)) => replaced += 1,
            Ok(Ok(false)) => added += 1,
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(e) => failed.push(format!("import task failed: {e}")),
        }
    }
    // A failed write may have been applied (its answer lost): bumped then too.
    if added + replaced > 0 || !failed.is_empty() {
        bump(&table, i64::try_from(added).unwrap_or(i64::MAX)).await;
    }
    if !failed.is_empty() {
        bail!(
            "import incomplete: {added} added, {replaced} replaced, {} not written:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok((added, replaced))
}

/// Adds `entry` (false) or, when it exists and `replace`, replaces its credential as the file
/// import does (true): hash, roles when given, `passwordChangedAt` cleared; status kept.
async fn import_one(table: &UsersTable, entry: import::Entry, replace: bool) -> anyhow::Result<bool> {
    let record = UserRecord {
        password_hash: entry.hash.clone(),
        status: Status::Active,
        roles: entry.roles.clone(),
        password_changed_at: None,
        delivery_secret_id: None,
        oauth: None,
    };
    match table.add(&entry.username, &record).await {
        Ok(()) => Ok(false),
        Err(WriteError::Exists(user)) if replace => {
            table.replace_credential(&user, entry.hash, &entry.roles).await?;
            Ok(true)
        }
        Err(WriteError::Exists(user)) => {
            bail!("user {user:?} already exists (use --replace)")
        }
        Err(e) => Err(e.into()),
    }
}
