//! OAuth endpoints in process: form POSTs from a peer, with the audit trail recorded, and the
//! admin `/metrics` read back (series values by name and label).

use crate::access::Answer;
use crate::fakes::Recorder;
use authserver::http::{AppState, ClientAddr, admin_app, app};
use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

/// `state` with its audit trail replaced by a [`Recorder`] (returned too).
pub fn recorded(state: Arc<AppState>) -> (Arc<AppState>, Arc<Recorder>) {
    let state = Arc::into_inner(state).expect("the only reference to the state");
    let recorder = Arc::new(Recorder::default());
    let state = Arc::new(AppState {
        audit: recorder.clone(),
        ..state
    });
    (state, recorder)
}

/// A form `POST path` from `peer` (`ip:port`) with an optional `Authorization` value.
pub async fn post_form(
    state: &Arc<AppState>,
    peer: &str,
    path: &str,
    auth: Option<&str>,
    form: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let mut req = req.body(Body::from(form.to_owned())).expect("request");
    req.extensions_mut()
        .insert(ClientAddr(peer.parse().expect("ip:port")));
    send(app(state.clone()), req).await
}

/// A form `POST path` with an optional `Authorization` value and no peer address.
pub async fn post(state: &Arc<AppState>, path: &str, auth: Option<&str>, form: &str) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    request(state, req.body(Body::from(form.to_owned())).expect("request")).await
}

/// Any request through the router of `state`.
pub async fn request(state: &Arc<AppState>, req: Request<Body>) -> Answer {
    send(app(state.clone()), req).await
}

/// A `GET path` with an optional `Authorization` value (the auth surfaces).
pub async fn get_with(state: &Arc<AppState>, path: &str, auth: Option<&str>) -> Answer {
    let mut req = Request::builder().method(Method::GET).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    send(app(state.clone()), req.body(Body::empty()).expect("request")).await
}

async fn send(router: axum::Router, req: Request<Body>) -> Answer {
    let res = router.oneshot(req).await.expect("answer");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or_default(),
    }
}

/// The admin `/metrics` text, as fetched from loopback.
pub async fn metrics(state: &Arc<AppState>) -> String {
    let req = Request::get("/metrics").header("host", "127.0.0.1:9090");
    let res = admin_app(state.clone())
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// The value of the series `name{label}` (`label` like `result="valid"`, or empty) in a
/// Prometheus text, 0 when absent.
pub fn series(text: &str, name: &str, label: &str) -> f64 {
    let want = if label.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{label}}}")
    };
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(k, _)| *k == want)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}
