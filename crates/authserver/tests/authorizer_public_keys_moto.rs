//! Issue 14 finding 10, end to end on moto: with the Secrets Manager signer the proxy signs with
//! the key set secret (private keys) and the Lambda authorizer validates with the public key set
//! secret only (`oauth_aws.signer = secrets_manager_public`), written by `authserver keys
//! public-set` from the private set. The authorizer accepts the proxy's token, cannot issue one,
//! and refuses a "public" secret that holds the private set.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::config::{OAuthSigner, Settings};
use authserver::http::app;
use authserver_testkit::lambda::{authorize, fixture, with_authorization};
use authserver_testkit::oauth::{BASIC_CLIENT, BASIC_SECRET, basic_client, fixture as oauth_fixture};
use authserver_testkit::oauth_aws::{TEST_RSA_PEM, key_set};
use authserver_testkit::{cli, moto, or_skip};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt;

fn on_aws(
    f: &authserver_testkit::oauth::OAuthFixture,
    url: &str,
    signer: OAuthSigner,
    secret: &str,
) -> Settings {
    let mut s = authserver_testkit::oauth::settings(f);
    s.store.endpoint_url = url.to_owned();
    s.oauth_aws.signer = signer;
    s.oauth_aws.key_secret_id = secret.to_owned();
    s
}

async fn token_request(state: &std::sync::Arc<authserver::http::AppState>) -> (StatusCode, Value) {
    let req = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic_client(BASIC_CLIENT, BASIC_SECRET))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_validates_the_proxys_token_with_the_public_key_set_only() {
    let url = or_skip!(moto::url("the_authorizer_validates_with_the_public_key_set"));
    let sm = authserver_aws::secrets_client(&authserver_aws::sdk_config(Some(&url)).await);
    let private_name = format!("oauth-keys-{}", moto::unique());
    let public_name = format!("{private_name}-public");
    let private = key_set(&[(0, TEST_RSA_PEM)]);
    // The writer: the operator's `authserver keys public-set` on the private set.
    let out = cli::run_cli(cli::isolated().args(["keys", "public-set"]), Some(&private));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8(out.stdout).unwrap();
    assert!(
        !public.contains("PRIVATE KEY") && !public.contains("\"d\""),
        "{public}"
    );
    for (name, value) in [(&private_name, &private), (&public_name, &public)] {
        sm.create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }

    let f = oauth_fixture();
    let proxy = on_aws(&f, &url, OAuthSigner::SecretsManager, &private_name);
    let proxy = tokio::task::spawn_blocking(move || authserver::wiring::build(proxy))
        .await
        .unwrap()
        .unwrap()
        .state;
    let (status, body) = token_request(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());

    let authz = on_aws(&f, &url, OAuthSigner::SecretsManagerPublic, &public_name);
    let authz = tokio::task::spawn_blocking(move || authserver::wiring::build(authz))
        .await
        .unwrap()
        .unwrap()
        .state;
    let event = with_authorization(fixture("authorizer_http_api_v2.json"), Some(&bearer));
    let allowed = authorize(&authz, event).await.unwrap();
    assert_eq!(allowed["isAuthorized"], true, "{allowed}");
    assert_eq!(allowed["context"]["username"], BASIC_CLIENT, "{allowed}");
    // One signature character changed (not the last: its low bits are padding).
    let mut forged = bearer.clone().into_bytes();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let event = with_authorization(fixture("authorizer_http_api_v2.json"), Some(&forged));
    assert_eq!(authorize(&authz, event).await.unwrap()["isAuthorized"], false);
    // Verify-only: the same settings cannot mint a token.
    let (status, body) = token_request(&authz).await;
    assert!(body.get("access_token").is_none(), "{status} {body}");

    // The private set put in the public secret by mistake fails the start, and the error
    // quotes no key material.
    let wrong = on_aws(&f, &url, OAuthSigner::SecretsManagerPublic, &private_name);
    let err = tokio::task::spawn_blocking(move || authserver::wiring::build(wrong).err().unwrap())
        .await
        .unwrap();
    let err = format!("{err:#}");
    assert!(err.contains("only public JWK members"), "{err}");
    assert!(!err.contains("PRIVATE") && !err.contains("MII"), "{err}");
}
