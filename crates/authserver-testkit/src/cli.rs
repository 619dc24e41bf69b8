//! The real `authserver` binary run as operators run it: a command builder, the run with an
//! optional stdin, and the output as text.
//!
//! The binary is located at run time: `CARGO_BIN_EXE_authserver` is only known when an
//! integration test of the `authserver` crate is compiled (`env!` in this library would not
//! see it), and Cargo builds it next to the test executable, in the profile directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The `authserver` binary of this build: `CARGO_BIN_EXE_authserver` when the environment
/// has it, else the one beside the running test (`target/<profile>/deps/test-…` →
/// `target/<profile>/authserver`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_authserver") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let path = profile.join(format!("authserver{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built: run the test through cargo",
        path.display()
    );
    path
}

/// `authserver` without the caller's `AUTHSERVER_CONFIG` (a developer's file must not leak in).
pub fn cli() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_remove("AUTHSERVER_CONFIG");
    cmd
}

/// `authserver` without any of the caller's settings (every `AUTHSERVER_*`, and the Lambda
/// aliases `CREDENTIAL_SECRET_ARN` and `CACHE_TTL_MINUTES`): the test's environment only.
pub fn isolated() -> Command {
    let mut cmd = Command::new(binary());
    isolate(&mut cmd);
    cmd
}

/// Removes the caller's settings from `cmd`'s environment (see [`isolated`]).
pub fn isolate(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHSERVER_") || k == "CREDENTIAL_SECRET_ARN" || k == "CACHE_TTL_MINUTES" {
            cmd.env_remove(k);
        }
    }
}

/// Starts `cmd` with stdin, stdout and stderr piped; stdin stays open for [`finish`].
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes `stdin` (if any), closes it and waits: the output.
pub fn finish(mut child: Child, stdin: Option<&str>) -> Output {
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        let _ = pipe.write_all(input.as_bytes()); // the command may exit before reading
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Runs `cmd` to the end with `stdin` (none: closed at once).
pub fn run_cli(cmd: &mut Command, stdin: Option<&str>) -> Output {
    finish(spawn(cmd), stdin)
}

/// Bytes of output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// (exit code, stdout, stderr) of `cmd` run with stdin closed.
pub fn outcome(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = run_cli(cmd, None);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}
