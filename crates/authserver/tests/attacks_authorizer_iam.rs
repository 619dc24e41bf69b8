//! Attack on the template's Lambda authorizer policy (issue 14): least privilege.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

/// Finding 10. With `OAuthSigner=secrets_manager` the authorizer role may read the key set
/// secret (`secretsmanager:GetSecretValue` AWSCURRENT on `OAuthKeySecretArn`), which holds the
/// *private* signing keys: the authorizer, which runs on every request to the protected route
/// with the caller's headers as input and only needs the public keys to validate, can sign
/// any access token (any client id, any scope) offline. The template says so itself ("the code has
/// no public-only path"); lambda.md tells readers the authorizer gets "never kms:Sign", which
/// with this signer is equivalent. A read of the published public keys (the issuer's JWKS, or a
/// public-only secret the proxy writes) would do.
///
/// Repro: `deploy/aws/authserver.yaml`, `AuthorizerOAuthPolicy`, statement `OAuthReadCurrentKeySet`.
///
/// Fixed: the authorizer is verify-only (`oauth_aws.signer = secrets_manager_public`) and reads
/// `OAuthPublicKeySecretArn`, the public half `authserver keys public-set` writes
/// (`authorizer_public_keys_moto.rs` runs it; scripts/check_iam_oauth.py checks the policy).
#[test]
fn the_authorizer_role_cannot_read_the_private_signing_keys() {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/aws/authserver.yaml"),
    )
    .unwrap();
    let start = template.find("\n  AuthorizerOAuthPolicy:\n").expect("the policy");
    let end = start
        + template[start + 1..]
            .find("\n  AuthorizerRole:\n")
            .expect("next resource");
    let policy = &template[start..end];
    let reads_private_keys =
        policy.contains("secretsmanager:GetSecretValue") && policy.contains("OAuthKeySecretArn");
    assert!(
        !reads_private_keys,
        "the authorizer role may read the key set secret (private keys):\n{policy}"
    );
}
