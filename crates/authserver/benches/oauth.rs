//! OAuth benchmarks (issue 14): a token request whose client secret is a verified-cache hit
//! (client authentication, scope checks, a CSPRNG jti, an ES256 signature), a bearer
//! validation (ES256 verify, claims, the jti denylist), and, for scale, a Basic cache hit
//! through the same `Gate`. Everything after the HTTP layer.
//!
//! Run: `cargo bench -p authserver --bench oauth` (add `-- --quick` for a fast pass).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authserver::oauth::token::{self, Request};
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
    let first = rt.block_on(token::token(gate, issuer, req)).unwrap();
    c.bench_function("oauth_token_issue_cache_hit", |b| {
        b.iter(|| rt.block_on(token::token(gate, issuer, black_box(req))).unwrap())
    });
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

criterion_group!(oauth, benches);

fn main() {
    oauth();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
