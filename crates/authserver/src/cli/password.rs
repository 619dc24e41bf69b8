//! Reading a password: the first line of stdin when it is not a terminal (scripts), otherwise a
//! no-echo prompt, twice when confirming.

use anyhow::{Context, bail};
use authserver_core::{Credentials, Secret};
use std::io::{BufRead, IsTerminal};

/// Reads and checks a password (non-empty, no control characters, Basic-auth size limit).
pub fn read(confirm: bool) -> anyhow::Result<Secret> {
    let pw = if std::io::stdin().is_terminal() {
        let first = Secret::new(rpassword::prompt_password("Password: ").context("cannot read password")?);
        if confirm {
            let again = Secret::new(rpassword::prompt_password("Again: ").context("cannot read password")?);
            if first != again {
                bail!("passwords do not match");
            }
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read password from stdin")?;
        let trimmed = line.trim_end_matches(['\n', '\r']).to_owned();
        zeroize::Zeroize::zeroize(&mut line);
        Secret::new(trimmed)
    };
    if pw.expose().is_empty() {
        bail!("password is empty");
    }
    if Credentials::new("user", pw.expose()).is_err() {
        bail!("password contains control characters or is longer than 1024 bytes");
    }
    Ok(pw)
}
