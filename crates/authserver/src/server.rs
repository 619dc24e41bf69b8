//! The standalone server: accepts connections on a listener it is given and serves [`app`] until
//! the shutdown future resolves, then drains in-flight requests.
//!
//! Its own accept loop (hyper-util) rather than `axum::serve`, for the limits a public auth
//! endpoint needs: request-head size, header read timeout (slowloris), a connection cap.

use crate::conn::{Activity, PerAddress};
use crate::http::{AppState, ClientAddr, FromSocket, app};
use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle connection closed gracefully may take to go (HTTP/2 sends GOAWAY and a
/// PING, and finishes when the client acks it: a client that never does is cut after this).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves [`app`] (over TLS when `tls` is given) until `shutdown` resolves. Returns after
/// in-flight connections drained (or [`DRAIN_TIMEOUT`] passed).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, app(state.clone()), state, tls, shutdown).await;
}

/// Serves `router` (the main app or the admin app) with the server limits from `state`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let server = state.settings.server.clone();
    let service = router.into_service::<hyper::body::Incoming>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(server.header_read_timeout_ms))
        .max_buf_size(server.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(server.max_header_bytes as u32)
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let limits = Limits {
        first_request: Duration::from_millis(server.header_read_timeout_ms),
        idle: Duration::from_millis(server.idle_timeout_ms),
    };
    let prefixes = crate::regulation::SourcePrefixes {
        v4: state.settings.regulation.ipv4_prefix,
        v6: state.settings.regulation.ipv6_prefix,
    };
    let per_address = PerAddress::new(server.max_connections_per_address);
    let connections = Arc::new(Semaphore::new(server.max_connections));
    // Each connection closes itself gracefully (HTTP/2 GOAWAY, HTTP/1 after the response in
    // flight) when it goes idle or when this turns true; its permit comes back when it is gone.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // Waiting for a permit before accepting leaves excess connections in the OS backlog.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Proxies concentrate many clients on one address: they are exempt from the cap.
        let counted = if state.proxies.trusts(peer.ip().to_canonical()) {
            None
        } else {
            match per_address.admit(prefixes.source_id(peer.ip())) {
                Some(c) => Some(c),
                None => {
                    if per_address.refused().is_power_of_two() {
                        tracing::warn!(
                            refused = per_address.refused(),
                            "connection refused: too many from one address (server.max_connections_per_address)"
                        );
                    }
                    continue; // drops the stream (closed) and the permit
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let svc = {
            let (service, activity) = (service.clone(), activity.clone());
            tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req.extensions_mut().insert(FromSocket);
                let in_flight = activity.begin();
                let call = tower::ServiceExt::oneshot(service.clone(), req);
                async move {
                    let response = call.await;
                    drop(in_flight);
                    response
                }
            })
        };
        let svc = TowerToHyperService::new(svc);
        let (builder, mut stopping, tls) = (builder.clone(), stopping.clone(), tls.clone());
        tokio::spawn(async move {
            let _held = (permit, counted);
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    drive!(conn, activity, limits, stopping);
                }
                Some(acceptor) => {
                    // The handshake counts against the first-request deadline.
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(limits.first_request, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    // The protocol is the one ALPN negotiated, never sniffed from the bytes.
                    let builder = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => builder.http2_only(),
                        _ => builder.http1_only(),
                    };
                    // `activity` counts from accept: the handshake spent part of the same budget.
                    // `serve_connection`, not `..._with_upgrades`: the latter ignores
                    // `http1_only`/`http2_only` and sniffs the preface (measured: an h2 preface
                    // on an ALPN `http/1.1` session was answered with HTTP/2 SETTINGS).
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    drive!(conn, activity, limits, stopping);
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    let _ = stop.send(true);
    // Every connection holds a permit until it is gone: all of them back means drained.
    let all = u32::try_from(server.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("drain timeout; closing remaining connections");
    }
    // Requests whose clients left during their verification owe a record (`audit::handoff`):
    // the runtime would drop their tasks with it.
    let unwritten = crate::audit::handoff::settled(RECORDS_TIMEOUT).await;
    if unwritten > 0 {
        tracing::warn!(
            unwritten,
            "stopping with the records of abandoned requests unwritten"
        );
    }
}

/// How long a stopping server waits for the records of requests abandoned during their
/// verification (one Argon2id run, or its queue for a slot).
const RECORDS_TIMEOUT: Duration = Duration::from_secs(5);

/// The deadlines a connection's watchdog enforces.
#[derive(Debug, Clone, Copy)]
struct Limits {
    first_request: Duration,
    idle: Duration,
}

/// Drives a hyper connection (`$conn`, of either connection type: a macro, so no trait bounds
/// need spelling out) until it ends. A connection that never sent a request by the deadline
/// is dropped; one idle past the idle timeout, or asked to stop by `$stopping`, is closed
/// gracefully (HTTP/2: GOAWAY, so the client knows it may retry; HTTP/1: after the response in
/// flight) and given [`IDLE_CLOSE_GRACE`] (idle) or [`DRAIN_TIMEOUT`] (shutdown) to finish.
macro_rules! drive {
    ($conn:expr, $activity:expr, $limits:expr, $stopping:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let mut closing: Option<tokio::time::Instant> = None;
        loop {
            let wait = if let Some(until) = closing {
                until.saturating_duration_since(tokio::time::Instant::now())
            } else {
                match $activity.check($limits.first_request, $limits.idle) {
                    Ok(wait) => wait,
                    Err(crate::conn::Expiry::NoRequest) => {
                        tracing::debug!("connection closed: no request before the deadline");
                        break;
                    }
                    Err(crate::conn::Expiry::Idle) => {
                        tracing::debug!("connection idle: closing gracefully");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
                        IDLE_CLOSE_GRACE
                    }
                }
            };
            tokio::select! {
                _ = conn.as_mut() => break,
                () = tokio::time::sleep(wait) => if closing.is_some() { break },
                _ = $stopping.changed(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                }
            }
        }
    }};
}
use drive;

/// The shipped example users (`examples/users.json`): their passwords are in the README.
const EXAMPLE_USERS: &str = include_str!("../../../examples/users.json");

/// Warns when users in service still hold an example user's hash (the image and the README's
/// run command serve them): anyone who read the README signs in, as an admin (an attack on the
/// image). Compared by hash string: no verification, no secret in the line.
fn warn_of_example_users(state: &crate::http::AppState) {
    let Ok(examples) = serde_json::from_str::<serde_json::Value>(EXAMPLE_USERS) else {
        return;
    };
    let Ok(snapshot) = state.gate.store.current() else {
        return;
    };
    // One lookup per example user, not a walk over the store (a million users at start-up).
    let published = examples
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, entry)| {
            snapshot
                .user(name)
                .is_some_and(|user| entry["passwordHash"].as_str() == Some(user.hash.expose()))
        })
        .count();
    if published > 0 {
        tracing::warn!(
            users = published,
            "the store holds example users from examples/users.json, whose passwords are published \
             in the README: replace the users file before exposing this server"
        );
    }
}

/// Builds the server from `settings`, binds the main (and admin) listener, serves until
/// `shutdown`, then drains and stops background tasks.
pub async fn start(
    settings: crate::config::Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listen = settings.server.listen;
    let tls_settings = settings.tls.clone();
    let admin_addr = settings.admin.addr();
    let grpc_addr = settings.server.grpc_listen.addr();
    let mut built = crate::wiring::build(settings)?;
    warn_of_example_users(&built.state);
    let tls = if tls_settings.enabled() {
        let certs = crate::tls::Reloading::open(
            Path::new(&tls_settings.cert_file),
            Path::new(&tls_settings.key_file),
        )?;
        built.tasks.push(
            certs
                .clone()
                .watch(Duration::from_millis(tls_settings.reload_interval_ms)),
        );
        Some(certs.acceptor()?)
    } else {
        None
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if admin_addr.is_some_and(|a| !a.ip().is_loopback()) {
        // Allowed (TLS, or plaintext explicitly allowed), but worth a line: these routes tell
        // unknown users from wrong passwords and list client addresses.
        tracing::warn!(
            "admin.listen is not a loopback address: /metrics and /stats enumerate users and show client addresses; restrict who can reach it"
        );
    }
    let admin = if let Some(admin_addr) = admin_addr {
        let admin = TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("cannot listen on {admin_addr} (admin.listen)"))?;
        tracing::info!(address = %admin.local_addr()?, scheme, "admin listening");
        let (router, state, tls, mut stopped) = (
            crate::http::admin_app(built.state.clone()),
            built.state.clone(),
            tls.clone(),
            stopped.clone(),
        );
        Some(tokio::spawn(async move {
            serve(admin, router, state, tls, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        }))
    } else {
        None
    };
    let grpc = match grpc_addr {
        Some(addr) => Some(serve_grpc(addr, &built.state, tls.clone(), stopped.clone()).await?),
        None => None,
    };
    // Logged last: whoever waits for this line finds the admin (and gRPC) listener already up.
    tracing::info!(address = %listener.local_addr()?, scheme, "listening");
    run(listener, built.state, tls, shutdown).await;
    let _ = stop.send(true);
    for task in [admin, grpc].into_iter().flatten() {
        let _ = task.await;
    }
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    tracing::info!("stopped");
    Ok(())
}

/// Binds `server.grpc_listen` and serves Envoy's ext_authz there ([`crate::http::grpc`]) with the
/// HTTP listener's TLS, limits and drain, until `stopped` turns true.
#[cfg(feature = "ext-authz-grpc")]
async fn serve_grpc(
    addr: std::net::SocketAddr,
    state: &Arc<AppState>,
    tls: Option<TlsAcceptor>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (server.grpc_listen)"))?;
    let scheme = if tls.is_some() { "grpcs" } else { "grpc" };
    tracing::info!(address = %listener.local_addr()?, scheme, "ext_authz gRPC listening");
    let (router, state) = (crate::http::grpc::app(state.clone()), state.clone());
    Ok(tokio::spawn(async move {
        serve(listener, router, state, tls, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    }))
}

/// Without the `ext-authz-grpc` feature a configured gRPC listener is refused at start-up
/// (silently not listening would leave Envoy failing every check).
#[cfg(not(feature = "ext-authz-grpc"))]
async fn serve_grpc(
    _addr: std::net::SocketAddr,
    _state: &Arc<AppState>,
    _tls: Option<TlsAcceptor>,
    _stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    anyhow::bail!(
        "server.grpc_listen is set but this build has no gRPC listener (cargo feature ext-authz-grpc)"
    )
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
