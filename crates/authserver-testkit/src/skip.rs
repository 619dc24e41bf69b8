//! Skip or require: a test that needs a tool or service the machine lacks (moto, the Lambda
//! emulator, Chromium, nginx, Caddy) prints `SKIPPED` with the reason and passes, so `cargo test`
//! works on a bare checkout; the documented test command sets `TESTS_REQUIRE_AWS=1`,
//! `TESTS_REQUIRE_BROWSER=1`, `TESTS_REQUIRE_NGINX=1` and `TESTS_REQUIRE_CADDY=1`, and then the
//! same absence fails the test instead of hiding it.
//!
//! ```ignore
//! let url = or_skip!(moto::url("my_test"));
//! ```

/// What a skipped test was missing: each has its own switch that makes the absence fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// moto or the Lambda emulator (`TESTS_REQUIRE_AWS`).
    Aws,
    /// A headless browser (`TESTS_REQUIRE_BROWSER`).
    Browser,
    /// nginx, for the `auth_request` integration (`TESTS_REQUIRE_NGINX`).
    Nginx,
    /// Caddy, for the `forward_auth` integration (`TESTS_REQUIRE_CADDY`).
    Caddy,
    /// Python with authlib, PyJWT and jwcrypto in `$VENV`, for the OAuth interop test
    /// (`TESTS_REQUIRE_PYOAUTH`).
    PyOAuth,
}

impl Needs {
    /// The environment variable that, set to `1`, turns a skip into a failure.
    pub const fn switch(self) -> &'static str {
        match self {
            Self::Aws => "TESTS_REQUIRE_AWS",
            Self::Browser => "TESTS_REQUIRE_BROWSER",
            Self::Nginx => "TESTS_REQUIRE_NGINX",
            Self::Caddy => "TESTS_REQUIRE_CADDY",
            Self::PyOAuth => "TESTS_REQUIRE_PYOAUTH",
        }
    }

    /// Whether the switch is on.
    pub fn required(self) -> bool {
        std::env::var(self.switch()).as_deref() == Ok("1")
    }
}

/// Skips `test` because of `why` (prints the reason), or panics when `needs` is required.
pub fn skipped(needs: Needs, test: &str, why: &str) {
    assert!(!needs.required(), "{test}: {}=1 but {why}", needs.switch());
    eprintln!("\n*** SKIPPED: {test}: {why} ***\n");
}

/// The non-empty value of `var`, or `None` after [`skipped`] (the AWS test environment sets
/// these: `source scripts/aws-env.sh && start_aws_env`).
pub fn env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            let why = format!("{var} is not set (source scripts/aws-env.sh && start_aws_env)");
            skipped(Needs::Aws, test, &why);
            None
        }
    }
}

/// The value of an `Option` from this module, or `return` from the test (skipped).
#[macro_export]
macro_rules! or_skip {
    ($found:expr) => {
        match $found {
            Some(value) => value,
            None => return,
        }
    };
}
