//! Independent implementations against the real `authserver serve` (issue 14): authlib,
//! PyJWT and jwcrypto run `tests/python/oauth_interop.py` (each client-authentication method,
//! validation from the discovery document's `jwks_uri`, forged and revoked tokens, a replayed
//! assertion). The server's whole output and its audit file (which holds one event per token,
//! introspection and revocation request) are then searched for every secret, token, assertion
//! and key the run handled: none may appear.
//!
//! Needs `$VENV/bin/python` with the pinned `PY_OAUTH_TOOLS` of `scripts/lib/setup.sh`
//! (`scripts/test` installs them); skipped without, unless `TESTS_REQUIRE_PYOAUTH=1`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver_testkit::oauth::*;
use authserver_testkit::process::Server;
use authserver_testkit::skip::{Needs, skipped};
use std::path::PathBuf;
use std::process::Command;

fn python(test: &str) -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var("VENV").unwrap_or_default()).join("bin/python");
    let ok = python.is_file()
        && Command::new(&python)
            .args(["-c", "import authlib, jwt, jwcrypto, requests"])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        Some(python)
    } else {
        skipped(
            Needs::PyOAuth,
            test,
            "$VENV/bin/python with authlib, PyJWT, jwcrypto is not there (scripts/lib/setup.sh PY_OAUTH_TOOLS)",
        );
        None
    }
}

#[test]
fn authlib_pyjwt_and_jwcrypto_interoperate_and_no_secret_is_logged() {
    let Some(python) = python("oauth_python") else {
        return;
    };
    let f = fixture();
    let port = authserver_testkit::emulator::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let config = f.dir.path().join("config.toml");
    let audit = f.dir.path().join("audit.log");
    std::fs::write(
        &config,
        format!(
            "[oauth]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\nkeys_dir = \"{}\"\n[log]\nlevel = \"debug\"\n[audit]\nfile = \"{}\"\n",
            f.keys.display(),
            audit.display()
        ),
    )
    .unwrap();
    let server_key = std::fs::read_dir(&f.keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pem"))
        .unwrap();
    let seen = f.dir.path().join("seen.txt");
    let fixture_json = serde_json::json!({
        "base": issuer, "issuer": issuer, "audience": AUDIENCE,
        "basic_id": BASIC_CLIENT, "basic_secret": BASIC_SECRET, "post_id": POST_CLIENT, "post_secret": POST_SECRET,
        "jwt_id": JWT_CLIENT, "client_kid": CLIENT_KID, "client_key": f.client_key, "server_key": server_key,
        "seen": seen,
    });
    let fixture_path = f.dir.path().join("fixture.json");
    std::fs::write(&fixture_path, fixture_json.to_string()).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_on(&listen, &f.users, &["--config", config.to_str().unwrap()], &[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/oauth_interop.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&fixture_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ok ") && last[3..].parse::<u32>().unwrap() >= 20,
        "{stdout}"
    );
    let (_, lines) = server.terminate();
    let audit = std::fs::read_to_string(&audit).unwrap();
    for event in ["oauth_token", "oauth_introspect", "oauth_revoke"] {
        assert!(
            audit.contains(&format!("\"event\":\"{event}\"")),
            "the audit file has {event} events"
        );
    }
    let log = lines.join("\n") + "\n" + &audit;
    let mut secrets: Vec<String> = vec![BASIC_SECRET.into(), POST_SECRET.into()];
    secrets.extend(std::fs::read_to_string(&seen).unwrap().lines().map(str::to_owned));
    for pem in [&f.client_key, &server_key] {
        let text = std::fs::read_to_string(pem).unwrap();
        secrets.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
    }
    assert!(secrets.len() > 10, "tokens and assertions were recorded");
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the server's output holds a secret, token, assertion or key: {s:.12}..."
        );
    }
    assert!(log.contains("listening"), "output was captured");
}
