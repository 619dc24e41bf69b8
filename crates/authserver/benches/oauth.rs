//! OAuth benchmarks (issue 14): a token request whose client secret is a verified-cache hit
//! (client authentication, scope checks, a CSPRNG jti, an ES256 signature), a bearer
//! validation (ES256 verify, claims, the jti denylist), and, for scale, a Basic cache hit
//! through the same `Gate`. Everything after the HTTP layer.
//!
//! The `assertion_*` group times a forged `private_key_jwt` assertion (a signature by a key
//! the client never registered) naming an unknown client, a registered client with the kid of
//! its key, and a registered client with a kid it does not have: refusals an attacker can time
//! to learn which client ids exist, so their medians must not differ.
//!
//! Run: `cargo bench -p authserver --bench oauth` (add `-- --quick` for a fast pass).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::oauth::token::{self, Request};
use authserver::oauth::trail::Trail;
use authserver_testkit::oauth::*;
use criterion::{Criterion, criterion_group};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = fixture();
    let mut s = settings(&f);
    s.oauth.tokens_per_minute = u32::MAX;
    let state = rt.block_on(async { authserver::wiring::build(s).unwrap().state });
    let (gate, issuer) = (&state.gate, state.oauth.as_deref().unwrap());
    let basic = basic_client(BASIC_CLIENT, BASIC_SECRET);
    let auth = [basic.as_bytes()];
    let req = Request {
        authorization: &auth,
        body: b"grant_type=client_credentials",
        source: None,
    };
    let first = rt
        .block_on(token::token(gate, issuer, req, &mut Trail::default()))
        .unwrap();
    c.bench_function("oauth_token_issue_cache_hit", |b| {
        b.iter(|| {
            rt.block_on(token::token(gate, issuer, black_box(req), &mut Trail::default()))
                .unwrap()
        })
    });
    forged_assertions(c, &rt, &state, &f);
    let access = first.access_token;
    c.bench_function("oauth_bearer_validate", |b| {
        b.iter(|| {
            let attempt = rt.block_on(authserver::oauth::bearer::attempt(
                gate,
                issuer,
                black_box(&access),
            ));
            assert!(attempt.decision.reason().is_none());
        })
    });
    let plain = authserver_testkit::users::basic(PLAIN_USER, PLAIN_PW);
    let values = [plain.as_bytes()];
    rt.block_on(gate.attempt_from(values.iter().copied(), None));
    c.bench_function("basic_cache_hit", |b| {
        b.iter(|| {
            let attempt = rt.block_on(gate.attempt_from(black_box(values).iter().copied(), None));
            assert!(attempt.decision.reason().is_none());
        })
    });
}

/// Forged assertions (see the module docs): each refused as `invalid_client`.
fn forged_assertions(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    state: &std::sync::Arc<authserver::http::AppState>,
    f: &OAuthFixture,
) {
    let (gate, issuer) = (&state.gate, state.oauth.as_deref().unwrap());
    // Signed with the server's own signing key: a valid ES256 signature, by a key no client has.
    let list = authserver::oauth::keyset::read_manifest(&f.keys).unwrap();
    let other_key = f.keys.join(format!("{}.pem", list[0].kid));
    let now = authserver::oauth::signer::unix_now();
    let forged = |client: &str, kid: &str| {
        let claims = serde_json::json!({"iss": client, "sub": client, "aud": format!("{ISSUER}/oauth/token"),
            "iat": now, "exp": now + 3000, "jti": "bench-jti"});
        let jwt = sign(
            &other_key,
            &serde_json::json!({"alg": "ES256", "kid": kid}),
            &claims,
        );
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"
        )
    };
    let cases = [
        ("assertion_unknown_client", forged("svc-nobody", CLIENT_KID)),
        ("assertion_known_client_its_kid", forged(JWT_CLIENT, CLIENT_KID)),
        (
            "assertion_known_client_other_kid",
            forged(JWT_CLIENT, "no-such-kid"),
        ),
    ];
    for (name, body) in &cases {
        let req = Request {
            authorization: &[],
            body: body.as_bytes(),
            source: None,
        };
        c.bench_function(name, |b| {
            b.iter(|| {
                let answer = rt.block_on(token::token(gate, issuer, black_box(req), &mut Trail::default()));
                assert!(answer.is_err());
            })
        });
    }
}

criterion_group!(oauth, benches);

fn main() {
    oauth();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
