//! Lambda handlers in process: the fixtures in `crates/authserver/tests/fixtures/lambda`, a
//! state over their users file, and one invocation of the proxy or the authorizer as the
//! runtime would make it.

use authserver::config::Settings;
use authserver::http::AppState;
use authserver::lambda::ColdStart;
use authserver::lambda::authorizer::Authorizer;
use authserver::lambda::proxy::Proxy;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The password of `fixture-user` in the fixtures' users file.
pub const PASSWORD: &str = "fixture-Password-1";
/// `Basic base64("fixture-user:fixture-Password-1")`, the credential every fixture carries.
pub const GOOD: &str = "Basic Zml4dHVyZS11c2VyOmZpeHR1cmUtUGFzc3dvcmQtMQ==";

/// `Basic base64("fixture-user:nope")`: the fixture user with a wrong password.
pub const WRONG: &str = "Basic Zml4dHVyZS11c2VyOm5vcGU=";

/// The directory of the Lambda event fixtures.
pub fn fixtures() -> PathBuf {
    crate::authserver_dir().join("tests/fixtures/lambda")
}

/// The event fixture `name`.
pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

/// The fixtures' users file (`fixture-user` with [`PASSWORD`]).
pub fn users_file() -> String {
    fixtures().join("users.json").display().to_string()
}

/// Settings over the fixtures' users file.
pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.store.file = fixtures().join("users.json");
    s.log.user_hash_key = "fixture-key".into();
    s.audit.stdout = false;
    s
}

/// The state [`settings`] build.
pub fn state() -> Arc<AppState> {
    state_with(settings())
}

/// The state `settings` build.
pub fn state_with(settings: Settings) -> Arc<AppState> {
    authserver::wiring::build(settings).unwrap().state
}

/// The stage ARN prefix of the REST authorizer fixtures: append `METHOD/path`.
pub const STAGE: &str = "arn:aws:execute-api:eu-west-1:111122223333:p7r2m5n8t4/prod/";

/// A Lambda state (`settings()`) with the rules file `rules`. The rules are read when the
/// state is built, so the temporary directory may go afterwards.
pub fn state_with_rules(rules: &str) -> Arc<AppState> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).expect("rules file");
    let mut s = settings();
    s.rules.file = path.to_string_lossy().into_owned();
    state_with(s)
}

/// A cold-start marker that started now.
pub fn cold() -> Arc<ColdStart> {
    Arc::new(ColdStart::new(Instant::now(), Instant::now()))
}

/// A REST API REQUEST-authorizer event carrying `auth`, from source address `ip`.
pub fn rest_request(auth: &str, ip: &str) -> Value {
    let mut e = fixture("authorizer_rest_request.json");
    e["headers"]["Authorization"] = json!(auth);
    e["multiValueHeaders"]["Authorization"] = json!([auth]);
    e["requestContext"]["identity"]["sourceIp"] = json!(ip);
    e
}

/// Sets every `Authorization` spelling the event carries (or removes it when `None`).
pub fn with_authorization(mut event: Value, value: Option<&str>) -> Value {
    for (map, name) in [
        ("headers", "authorization"),
        ("headers", "Authorization"),
        ("multiValueHeaders", "Authorization"),
    ] {
        let Some(headers) = event.get_mut(map).and_then(Value::as_object_mut) else {
            continue;
        };
        if headers.contains_key(name) {
            match value {
                Some(v) if map == "multiValueHeaders" => headers.insert(name.into(), json!([v])),
                Some(v) => headers.insert(name.into(), json!(v)),
                None => headers.remove(name),
            };
        }
    }
    if event.get("authorizationToken").is_some() {
        event["authorizationToken"] = json!(value.unwrap_or(""));
    }
    event
}

fn context() -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "fixture-invocation".into();
    ctx
}

/// One proxy invocation: the serialised response, or the error the runtime would report.
pub async fn proxy_raw(proxy: &Proxy, event: Value) -> Result<Value, String> {
    proxy
        .clone()
        .handle(LambdaEvent::new(event, context()))
        .await
        .map_err(|d| format!("{}: {}", d.error_type, d.error_message))
}

/// One proxy invocation answered as HTTP: (status, headers, body).
pub async fn invoke(proxy: &Proxy, event: Value) -> (u16, Value, Value) {
    let out = proxy_raw(proxy, event).await.unwrap();
    let body = serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    // REST API answers carry multiValueHeaders; the others plain headers.
    let mut headers = out["headers"].as_object().cloned().unwrap_or_default();
    if let Some(multi) = out["multiValueHeaders"].as_object() {
        for (k, v) in multi {
            headers.insert(k.clone(), v[0].clone());
        }
    }
    (
        out["statusCode"].as_u64().unwrap() as u16,
        Value::Object(headers),
        body,
    )
}

/// [`invoke`] through a fresh proxy over `state`.
pub async fn invoke_proxy(state: &Arc<AppState>, event: Value) -> (u16, Value, Value) {
    invoke(&Proxy::new(state.clone(), None, cold()), event).await
}

/// One authorizer invocation: its answer, or `"ErrorType: message"`.
pub async fn authorize(state: &Arc<AppState>, event: Value) -> Result<Value, String> {
    Authorizer::new(state.clone(), None, cold())
        .handle(LambdaEvent::new(event, context()))
        .await
        .map_err(|d| format!("{}: {}", d.error_type, d.error_message))
}
